"""The second factor's errors, in the shared envelope."""

from __future__ import annotations

from auth_service.db import KeepWritesError
from svckit.errors import ServiceError


class MfaAlreadyEnabled(ServiceError):
    status_code = 409
    code = "mfa_already_enabled"
    detail = "Two-factor sign-in is already enabled; disable it first"


class MfaNotEnrolled(ServiceError):
    status_code = 409
    code = "mfa_not_enrolled"
    detail = "No pending TOTP enrolment; start one with POST /users/me/mfa/totp"


class MfaNotEnabled(ServiceError):
    status_code = 409
    code = "mfa_not_enabled"
    detail = "Two-factor sign-in is not enabled"


class InvalidOtp(ServiceError):
    status_code = 400
    code = "invalid_otp"
    detail = "The code is wrong, expired or was already used"


class SecondFactorUnavailable(ServiceError):
    """A TOTP secret cannot be opened here (this replica's ``AUTH_KEY_PASSPHRASE`` is not the
    one it was sealed with, e.g. mid-way through a passphrase change)."""

    status_code = 503
    code = "mfa_unavailable"
    detail = "Two-factor sign-in is temporarily unavailable; try again shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "5"})


class MfaRequired(KeepWritesError):
    """The password was right, and the account has a second factor: finish with the MFA
    grant. 401 as for bad credentials; the ``mfa_token`` is only good for that grant, and
    its row (written in the request's transaction) is committed before this is answered."""

    status_code = 401
    code = "mfa_required"
    detail = "A second factor is required: complete the sign-in with the MFA grant"

    def __init__(self, mfa_token: str, *, grant_type: str, expires_in: int) -> None:
        super().__init__(
            headers={
                "WWW-Authenticate": "Bearer",
                "Cache-Control": "no-store",
                "Pragma": "no-cache",
            },
            extra={
                "error": self.code,
                "error_description": str(self.detail),
                "mfa_token": mfa_token,
                "mfa_token_expires_in": expires_in,
                "grant_type": grant_type,
            },
        )
