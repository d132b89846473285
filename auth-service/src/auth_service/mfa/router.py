"""``/users/me/mfa/totp`` (the caller's own factor) and ``/users/{id}/mfa/totp`` (admin reset)."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from auth_service.deps import (
    AdminUser,
    ClockDep,
    CurrentUser,
    HasherDep,
    LoginThrottleDep,
    MfaThrottleDep,
    SessionDep,
    SettingsDep,
    TotpBoxDep,
    UserById,
)
from auth_service.mfa import service
from auth_service.mfa.errors import InvalidOtp, MfaNotEnabled
from auth_service.mfa.schemas import (
    MfaMessage,
    RecoveryCodes,
    TotpConfirm,
    TotpDisable,
    TotpEnrol,
    TotpEnrolment,
)
from auth_service.models import User
from auth_service.passwords import PasswordHasher
from auth_service.responses import AUTHENTICATED, error_responses
from auth_service.throttle import LoginThrottle
from auth_service.users.errors import IncorrectPassword

logger = logging.getLogger("auth_service.mfa")

router = APIRouter(prefix="/users", tags=["mfa"])


async def _check_password(
    hasher: PasswordHasher, throttle: LoginThrottle, user: User, password: str
) -> None:
    """The current password, with wrong ones counted like failed logins of the username, so
    a stolen access token is no way around the login throttle to guess the password."""
    await throttle.check(user.username)
    verification = await hasher.verify(password, user.hashed_password)
    if not verification.ok:
        await throttle.record_failure(user.username)
        raise IncorrectPassword()


@router.post(
    "/me/mfa/totp",
    response_model=TotpEnrolment,
    summary="Start TOTP enrolment (current password required)",
    description=(
        "A fresh secret, its `otpauth://` URI and the same as a QR code. The factor is "
        "active only after `POST /users/me/mfa/totp/confirm` with a code from the app; "
        "enrolling again before that replaces the pending secret."
    ),
    responses=error_responses(
        400,
        409,
        422,
        429,
        *AUTHENTICATED,
        s400="`incorrect_password`",
        s409="`mfa_already_enabled`",
        s429="Too many wrong passwords for this account; see `Retry-After`",
    ),
)
async def enrol(
    body: TotpEnrol,
    user: CurrentUser,
    session: SessionDep,
    hasher: HasherDep,
    throttle: LoginThrottleDep,
    totp_box: TotpBoxDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> TotpEnrolment:
    await _check_password(hasher, throttle, user, body.password)
    enrolment = await service.enrol(
        session, totp_box, user, issuer=settings.mfa_issuer, now=clock()
    )
    return TotpEnrolment(
        secret=enrolment.secret,
        otpauth_uri=enrolment.otpauth_uri,
        qr_code=enrolment.qr_svg,
        digits=service.DIGITS,
        period=service.INTERVAL,
        algorithm="SHA1",
    )


@router.post(
    "/me/mfa/totp/confirm",
    response_model=RecoveryCodes,
    summary="Activate TOTP with a code; answers the recovery codes (shown once)",
    responses=error_responses(
        400,
        409,
        422,
        *AUTHENTICATED,
        s400="`invalid_otp`",
        s409="`mfa_not_enrolled`, `mfa_already_enabled`",
    ),
)
async def confirm(
    body: TotpConfirm, user: CurrentUser, session: SessionDep, totp_box: TotpBoxDep, clock: ClockDep
) -> RecoveryCodes:
    codes = await service.confirm(session, totp_box, user, body.code, now=clock())
    logger.info("two-factor sign-in enabled", extra={"user_id": user.id})
    return RecoveryCodes(recovery_codes=codes)


@router.delete(
    "/me/mfa/totp",
    response_model=MfaMessage,
    summary="Disable TOTP (current password and a code or a recovery code required)",
    responses=error_responses(
        400,
        409,
        422,
        429,
        *AUTHENTICATED,
        s400="`incorrect_password`, `invalid_otp`",
        s409="`mfa_not_enabled`",
        s429="Too many wrong passwords or codes for this account; see `Retry-After`",
    ),
)
async def disable(
    body: TotpDisable,
    user: CurrentUser,
    session: SessionDep,
    hasher: HasherDep,
    throttle: LoginThrottleDep,
    mfa_throttle: MfaThrottleDep,
    totp_box: TotpBoxDep,
    clock: ClockDep,
) -> MfaMessage:
    await _check_password(hasher, throttle, user, body.password)
    throttle_key = service.throttle_key(user.id)
    await mfa_throttle.check(throttle_key)
    try:
        await service.disable(session, totp_box, user, body.otp, now=clock())
    except InvalidOtp:
        await mfa_throttle.record_failure(throttle_key)
        raise
    await mfa_throttle.reset(throttle_key)
    logger.info("two-factor sign-in disabled", extra={"user_id": user.id})
    return MfaMessage(message="Two-factor sign-in disabled")


@router.delete(
    "/{user_id}/mfa/totp",
    response_model=MfaMessage,
    summary="Reset a user's second factor (admin)",
    description=(
        "Removes the user's TOTP factor and recovery codes and voids their pending MFA "
        "sign-ins; the user signs in with the password alone until they enrol again."
    ),
    responses=error_responses(404, 409, 422, *AUTHENTICATED, s409="`mfa_not_enabled`"),
)
async def reset(
    user: UserById, admin: AdminUser, session: SessionDep, mfa_throttle: MfaThrottleDep
) -> MfaMessage:
    if not await service.reset(session, user.id):
        raise MfaNotEnabled()
    await mfa_throttle.reset(service.throttle_key(user.id))
    logger.warning(
        "second factor reset by an administrator",
        extra={"user_id": user.id, "admin_id": admin.id},
    )
    return MfaMessage(message="Second factor reset")
