"""Bodies and answers of ``/users/me/mfa/totp``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from auth_service.mfa.service import MAX_OTP_LENGTH
from auth_service.users.schemas import MAX_PASSWORD_CHARS

CurrentPassword = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PASSWORD_CHARS),
    Field(description="The caller's current password"),
]
Otp = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_OTP_LENGTH),
    Field(description="A 6-digit TOTP code (or, to disable, an unused recovery code)"),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TotpEnrol(_Input):
    password: CurrentPassword


class TotpConfirm(_Input):
    code: Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_OTP_LENGTH),
        Field(description="The 6-digit code the authenticator app shows now"),
    ]


class TotpDisable(_Input):
    password: CurrentPassword
    otp: Otp


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32 secret, for typing into an authenticator app")
    otpauth_uri: str = Field(description="`otpauth://totp/...` URI (Key URI Format)")
    qr_code: str = Field(description="The URI as a QR code: an SVG image as a `data:` URI")
    digits: int
    period: int
    algorithm: str


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(
        description="10 single-use codes, each usable instead of a TOTP code; shown only now"
    )


class MfaMessage(BaseModel):
    message: str
