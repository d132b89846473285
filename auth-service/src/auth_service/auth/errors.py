"""Errors of signing in and of the caller's standing, in the shared envelope."""

from __future__ import annotations

from svckit.errors import ServiceError


class BadCredentials(ServiceError):
    """One answer for an unknown user and a wrong password: status, body and headers."""

    status_code = 401
    code = "invalid_credentials"
    detail = "Incorrect username or password"

    def __init__(self) -> None:
        super().__init__(
            headers={"WWW-Authenticate": "Bearer"},
            # RFC 6749 §5.2 members; the status stays the seed's 401.
            extra={"error": "invalid_grant", "error_description": self.detail},
        )


class InactiveUser(ServiceError):
    status_code = 403
    code = "inactive_user"
    detail = "Inactive user"


class AdminRequired(ServiceError):
    status_code = 403
    code = "forbidden"
    detail = "Administrator privileges required"
