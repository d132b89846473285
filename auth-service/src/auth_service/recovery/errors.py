"""The errors of account recovery and verification."""

from __future__ import annotations

from svckit.errors import ServiceError


class InvalidToken(ServiceError):
    """One answer for a used, expired, superseded or unknown token."""

    status_code = 400
    code = "invalid_token"
    detail = "Invalid or expired token"


class EmailNotVerified(ServiceError):
    status_code = 403
    code = "email_not_verified"
    detail = "Confirm your email address before logging in"


class TooManyVerificationMails(ServiceError):
    status_code = 429
    code = "too_many_requests"
    detail = "Too many verification messages for this account; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})
