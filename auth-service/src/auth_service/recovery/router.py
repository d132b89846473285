"""``/auth``: password reset and email verification (ARCHITECTURE.md, "Account recovery")."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response, status

from auth_service.deps import (
    ClockDep,
    CurrentUser,
    HasherDep,
    PolicyDep,
    SessionDep,
    SettingsDep,
    WakeMailDep,
)
from auth_service.recovery import service
from auth_service.recovery.schemas import (
    PasswordResetConfirm,
    PasswordResetRequest,
    VerifyEmailRequest,
)
from auth_service.responses import AUTHENTICATED, error_responses
from auth_service.users.schemas import UserRead
from svckit.schemas import Message

router = APIRouter(prefix="/auth", tags=["account recovery"])

RESET_ACCEPTED = "If the account exists, a message with a reset link is on its way"


@router.post(
    "/password-reset",
    response_model=Message,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail a password reset link (the same answer whether or not the account exists)",
    responses=error_responses(400, 422, 503, s400="A malformed body"),
)
async def request_password_reset(
    body: PasswordResetRequest, session: SessionDep, clock: ClockDep, response: Response
) -> Message:
    await service.request_password_reset(session, identifier=body.identifier, now=clock())
    # The relay is deliberately not woken here: it picks the row up on its next poll
    # (AUTH_OUTBOX_RELAY_INTERVAL_SECONDS), so the work an existing account causes never runs
    # right behind this answer, where it could slow the next request and hint at the account.
    response.headers["Cache-Control"] = "no-store"
    return Message(message=RESET_ACCEPTED)


@router.post(
    "/password-reset/confirm",
    response_model=Message,
    summary="Set a new password with a reset token (signs out every session)",
    responses=error_responses(
        400, 422, 503, s400="`invalid_token` (used, expired or unknown), or a malformed body"
    ),
)
async def confirm_password_reset(
    body: PasswordResetConfirm,
    session: SessionDep,
    hasher: HasherDep,
    policy: PolicyDep,
    clock: ClockDep,
) -> Message:
    await service.confirm_password_reset(
        session, hasher, policy, token=body.token, new_password=body.new_password, now=clock()
    )
    return Message(message="Password changed")


@router.post(
    "/verify-email",
    response_model=UserRead,
    summary="Confirm an email address with the token mailed to it",
    responses=error_responses(
        400, 422, 503, s400="`invalid_token`, `email_taken`, or a malformed body"
    ),
)
async def verify_email(body: VerifyEmailRequest, session: SessionDep, clock: ClockDep) -> UserRead:
    user = await service.verify_email(session, token=body.token, now=clock())
    return UserRead.model_validate(user)


@router.post(
    "/verify-email/resend",
    response_model=Message,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail the verification link again (to a pending new address first)",
    responses=error_responses(429, *AUTHENTICATED, s429="Too many messages for this account"),
)
async def resend_verification(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    wake_mail: WakeMailDep,
    background: BackgroundTasks,
) -> Message:
    sent = await service.resend_verification(session, settings, user, now=clock())
    if sent:
        background.add_task(wake_mail)
        return Message(message="A verification message is on its way")
    return Message(message="The email address is already verified")
