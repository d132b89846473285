"""Users: registration (the one way an account is created), lookups, case-insensitive
uniqueness, updates, deletion (with its outbox event) and the last-administrator guard.
Functions only ``flush()``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import outbox
from auth_service.auth import refresh
from auth_service.mfa import service as mfa
from auth_service.models import User
from auth_service.password_policy import PasswordPolicy
from auth_service.passwords import PasswordHasher
from auth_service.recovery import tokens as account_tokens
from auth_service.users.errors import EmailTaken, LastAdmin, UsernameTaken
from svckit.errors import ServiceError

_CONSTRAINT_ERRORS: dict[str, type[ServiceError]] = {
    "uq_users_username_lower": UsernameTaken,
    "uq_users_email": EmailTaken,
}


def _constraint_name(exc: IntegrityError) -> str | None:
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str):
            return name
    return None


async def _flush_unique(session: AsyncSession) -> None:
    """Flush, turning a lost uniqueness race into ``username_taken`` / ``email_taken``."""
    try:
        await session.flush()
    except IntegrityError as exc:
        error = _CONSTRAINT_ERRORS.get(_constraint_name(exc) or "")
        if error is None:
            raise
        raise error() from None


async def find_for_login(session: AsyncSession, identifier: str) -> User | None:
    """The user whose username (ignoring case) or email is ``identifier``: one indexed query."""
    key = identifier.strip().lower()
    if "\x00" in key:  # cannot match anything, and PostgreSQL would refuse the parameter
        return None
    condition = User.email == key if "@" in key else func.lower(User.username) == key
    result = await session.execute(select(User).where(condition))
    return result.scalar_one_or_none()


async def ensure_available(
    session: AsyncSession,
    *,
    username: str | None = None,
    email: str | None = None,
    exclude_id: int | None = None,
) -> None:
    conditions = []
    if username is not None:
        conditions.append(func.lower(User.username) == username.lower())
    if email is not None:
        conditions.append(User.email == email)
    if not conditions:
        return
    query = select(User.username, User.email).where(or_(*conditions))
    if exclude_id is not None:
        query = query.where(User.id != exclude_id)
    for taken_username, taken_email in await session.execute(query):
        if username is not None and taken_username.lower() == username.lower():
            raise UsernameTaken()
        if email is not None and taken_email == email:
            raise EmailTaken()


async def register_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    *,
    username: str,
    email: str,
    password: str,
    full_name: str | None = None,
    is_admin: bool = False,
    email_verified: bool = False,
    now: datetime,
) -> User:
    """Create an account: ``/auth/register``, ``auth-service create-superuser`` and the first
    administrator at start-up all come through here.

    Raises the policy's 422 (``RequestValidationError``) for a password it refuses, then
    :class:`UsernameTaken` / :class:`EmailTaken`: availability is checked before the slow
    hash, and again by the unique indexes at flush (a concurrent registration).
    """
    policy.check(password, username=username)
    await ensure_available(session, username=username, email=email)
    hashed = await hasher.hash(password)
    return await create_user(
        session,
        username=username,
        email=email,
        full_name=full_name,
        hashed_password=hashed,
        is_admin=is_admin,
        email_verified=email_verified,
        now=now,
    )


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    email: str,
    hashed_password: str,
    full_name: str | None = None,
    is_admin: bool = False,
    email_verified: bool = False,
    now: datetime,
) -> User:
    """The row of :func:`register_user`, for a password already hashed."""
    await ensure_available(session, username=username, email=email)
    user = User(
        username=username,
        email=email,
        full_name=full_name,
        hashed_password=hashed_password,
        is_active=True,
        is_admin=is_admin,
        email_verified=email_verified,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await _flush_unique(session)
    return user


async def update_user(
    session: AsyncSession, user: User, values: dict[str, Any], *, now: datetime
) -> User:
    """Apply ``values`` (already validated) to ``user``; guards email and admin invariants."""
    if "email" in values and values["email"] != user.email:
        await ensure_available(session, email=values["email"], exclude_id=user.id)
    removes_admin = (
        user.is_admin
        and user.is_active
        and (values.get("is_admin") is False or values.get("is_active") is False)
    )
    if removes_admin:
        await guard_last_admin(session, user)
    deactivated = user.is_active and values.get("is_active") is False
    for name, value in values.items():
        setattr(user, name, value)
    user.updated_at = now
    await _flush_unique(session)
    if deactivated:
        await refresh.revoke_user_families(session, user.id, now=now, reason="deactivated")
        await mfa.void_challenges(session, user.id)
    return user


async def set_password(
    session: AsyncSession, user: User, hashed_password: str, *, now: datetime
) -> None:
    """Store a new password hash, revoke every refresh token family of the user and void
    their outstanding password reset links."""
    user.hashed_password = hashed_password
    user.updated_at = now
    await session.flush()
    await refresh.revoke_user_families(session, user.id, now=now, reason="password_changed")
    await mfa.void_challenges(session, user.id)
    await account_tokens.void(session, user.id, account_tokens.PASSWORD_RESET, now=now)


async def guard_last_admin(session: AsyncSession, user: User) -> None:
    """Refuse to remove ``user``'s admin powers if no other active admin would remain.

    The active admins' rows are locked, so two admins demoting each other concurrently are
    serialised and cannot both succeed.
    """
    result = await session.execute(
        select(User.id).where(User.is_admin, User.is_active).with_for_update()
    )
    others = [uid for uid in result.scalars() if uid != user.id]
    if not others:
        raise LastAdmin()


async def delete_user(session: AsyncSession, user: User, *, now: datetime) -> None:
    """Delete ``user`` and record ``user.deleted`` in the outbox, in one transaction."""
    if user.is_admin and user.is_active:
        await guard_last_admin(session, user)
    user_id = user.id
    await session.delete(user)
    await session.flush()
    await outbox.add_user_deleted(session, user_id, now=now)


async def list_users(session: AsyncSession, *, skip: int, limit: int) -> tuple[Sequence[User], int]:
    total = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    users = (
        (await session.execute(select(User).order_by(User.id).offset(skip).limit(limit)))
        .scalars()
        .all()
    )
    return users, int(total)
