"""Password reset, email verification and email changes. Functions only ``flush()``.

Mail is queued in the mail outbox (:mod:`auth_service.mail.outbox`) in the caller's
transaction and sent by the relay after the commit.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.mail import outbox
from auth_service.models import MailMessage, User
from auth_service.password_policy import PasswordPolicy
from auth_service.passwords import PasswordHasher
from auth_service.recovery import tokens
from auth_service.recovery.errors import EmailNotVerified, InvalidToken, TooManyVerificationMails
from auth_service.settings import Settings
from auth_service.users import service as users

logger = logging.getLogger("auth_service.recovery")

RESET_REQUEST = "password_reset_request"
RESET_MAIL = "password_reset"
VERIFY_MAIL = "verify_email"
CHANGE_NOTICE = "email_change_notice"


def link(settings: Settings, path: str, token: str) -> str:
    """A link to the public URL (never a request's Host header) carrying ``token``."""
    return f"{settings.link_base}{path}?token={token}"


def refuse_unverified_login(settings: Settings, user: User) -> None:
    """With ``AUTH_REQUIRE_VERIFIED_EMAIL``, a password login needs a confirmed address.

    Called after the password was verified, so the 403 tells nothing to a guesser.
    """
    if settings.require_verified_email and not user.email_verified:
        raise EmailNotVerified()


# ------------------------------------------------------------------ password reset


async def request_password_reset(session: AsyncSession, *, identifier: str, now: datetime) -> None:
    """Queue a reset request for whatever account ``identifier`` names, if any.

    The request only writes one outbox row, the same row for an existing account and an
    unknown one: the lookup, the throttle and the token happen in the relay
    (:func:`prepare_password_reset`), so the answer and its timing cannot tell them apart.
    """
    await outbox.enqueue(
        session, template=RESET_REQUEST, recipient=None, context={"identifier": identifier}, now=now
    )


async def prepare_password_reset(
    session: AsyncSession, row: MailMessage, now: datetime, *, settings: Settings
) -> None:
    """The relay's step for a reset request: the message with its link, or nothing."""
    identifier = str(row.context.get("identifier", ""))
    row.context = {}
    user = await users.find_for_login(session, identifier)
    if user is None or not user.is_active:
        row.status = outbox.SKIPPED
        return
    since = now - timedelta(seconds=settings.reset_throttle_window_seconds)
    recent, _oldest = await tokens.issued_since(session, user.id, tokens.PASSWORD_RESET, since)
    if recent >= settings.reset_throttle_max:
        row.status = outbox.SKIPPED
        logger.info("password reset throttled for an account", extra={"user_id": user.id})
        return
    token = await tokens.issue(
        session,
        user.id,
        tokens.PASSWORD_RESET,
        email=user.email,
        now=now,
        lifetime=timedelta(seconds=settings.reset_token_ttl_seconds),
    )
    row.template = RESET_MAIL
    row.recipient = user.email
    row.context = {
        "username": user.username,
        "link": link(settings, settings.reset_link_path, token),
        "token": token,
        "expires_minutes": max(1, settings.reset_token_ttl_seconds // 60),
    }


async def confirm_password_reset(
    session: AsyncSession,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    *,
    token: str,
    new_password: str,
    now: datetime,
) -> None:
    """Set the password the token allows, revoking every refresh token family.

    A policy failure (422) rolls the transaction back, so the token stays usable.
    """
    record = await tokens.consume(session, token, tokens.PASSWORD_RESET, now=now)
    if record is None:
        raise InvalidToken()
    user = await session.get(User, record.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise InvalidToken()
    policy.check(new_password, username=user.username)
    hashed = await hasher.hash(new_password)
    # The link reached the address it was sent to: that address is confirmed too.
    if record.email == user.email:
        user.email_verified = True
    await users.set_password(session, user, hashed, now=now)


# ------------------------------------------------------------------ email verification


async def send_verification(
    session: AsyncSession, settings: Settings, user: User, email: str, *, now: datetime
) -> None:
    """Queue a verification link for ``email`` (the current address or a new one)."""
    token = await tokens.issue(
        session,
        user.id,
        tokens.VERIFY_EMAIL,
        email=email,
        now=now,
        lifetime=timedelta(seconds=settings.verify_token_ttl_seconds),
    )
    await outbox.enqueue(
        session,
        template=VERIFY_MAIL,
        recipient=email,
        context={
            "username": user.username,
            "email": email,
            "link": link(settings, settings.verify_link_path, token),
            "token": token,
            "expires_hours": max(1, settings.verify_token_ttl_seconds // 3600),
        },
        now=now,
    )


async def verify_email(session: AsyncSession, *, token: str, now: datetime) -> User:
    """Confirm the address the token was sent to; a pending change takes effect now."""
    record = await tokens.consume(session, token, tokens.VERIFY_EMAIL, now=now)
    if record is None or record.email is None:
        raise InvalidToken()
    user = await session.get(User, record.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise InvalidToken()
    values: dict[str, object] = {"email_verified": True}
    if record.email != user.email:
        values["email"] = record.email  # update_user checks it is still free
    await users.update_user(session, user, values, now=now)
    return user


async def resend_verification(
    session: AsyncSession, settings: Settings, user: User, *, now: datetime
) -> bool:
    """Send the verification link again (for a pending change first); ``False`` when there
    is nothing to confirm. Raises :class:`TooManyVerificationMails` past the account's limit."""
    window = settings.verify_resend_window_seconds
    recent, oldest = await tokens.issued_since(
        session, user.id, tokens.VERIFY_EMAIL, now - timedelta(seconds=window)
    )
    if recent >= settings.verify_resend_max:
        retry = window if oldest is None else (oldest - now).total_seconds() + window
        raise TooManyVerificationMails(retry_after=max(1, math.ceil(retry)))
    target = await tokens.pending_email(session, user.id, user.email, now=now)
    if target is None and not user.email_verified:
        target = user.email
    if target is None:
        return False
    await send_verification(session, settings, user, target, now=now)
    return True


async def request_email_change(
    session: AsyncSession, settings: Settings, user: User, new_email: str, *, now: datetime
) -> None:
    """A new address is only used once confirmed: send it a link, tell the old one."""
    if new_email == user.email:
        return
    await users.ensure_available(session, email=new_email, exclude_id=user.id)
    await send_verification(session, settings, user, new_email, now=now)
    await outbox.enqueue(
        session,
        template=CHANGE_NOTICE,
        recipient=user.email,
        context={"username": user.username, "new_email": new_email},
        now=now,
    )
