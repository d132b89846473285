"""Errors of the registered-clients domain."""

from __future__ import annotations

from svckit.errors import ServiceError


class ClientNotFound(ServiceError):
    status_code = 404
    code = "not_found"
    detail = "Client not found"
