"""Errors of the users domain, in the shared envelope."""

from __future__ import annotations

from svckit.errors import ServiceError


class UserNotFound(ServiceError):
    status_code = 404
    code = "not_found"
    detail = "User not found"


class UsernameTaken(ServiceError):
    status_code = 400
    code = "username_taken"
    detail = "Username already registered"


class EmailTaken(ServiceError):
    status_code = 400
    code = "email_taken"
    detail = "Email already registered"


class LastAdmin(ServiceError):
    status_code = 409
    code = "last_admin"
    detail = "The last active administrator cannot be removed, deactivated or demoted"


class IncorrectPassword(ServiceError):
    status_code = 400
    code = "incorrect_password"
    detail = "Current password is incorrect"
