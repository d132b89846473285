"""Errors of signing in and of the caller's standing, in the shared envelope."""

from __future__ import annotations

from auth_service.db import KeepWritesError
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


# RFC 6749 §5.2 members, for the token endpoint's refresh_token grant (401 kept from the seed).
_INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The refresh token is invalid, expired, revoked or was used",
}


class InvalidRefreshToken(ServiceError):
    status_code = 401
    code = "invalid_refresh_token"
    detail = "Invalid or expired refresh token"

    def __init__(self) -> None:
        super().__init__(extra=_INVALID_GRANT)


class RefreshTokenReused(KeepWritesError):
    """A used token came back: the family is revoked, and that revocation is committed."""

    status_code = 401
    code = "invalid_refresh_token"
    detail = "Invalid or expired refresh token"

    def __init__(self) -> None:
        super().__init__(extra=_INVALID_GRANT)
