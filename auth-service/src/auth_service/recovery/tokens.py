"""Single-use account tokens (password reset, email verification), stored as SHA-256.

A token is 256 random bits: a high-entropy secret needs no slow hash, and a leaked table
yields nothing usable. Issuing one supersedes the user's earlier unused ones of the same
purpose; using one is a conditional ``UPDATE ... WHERE consumed_at IS NULL``, so of two
concurrent uses exactly one wins.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import AccountToken

PASSWORD_RESET = "password_reset"  # noqa: S105 (a token purpose, not a secret)
VERIFY_EMAIL = "verify_email"
MAX_TOKEN_LENGTH = 512


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue(
    session: AsyncSession,
    user_id: int,
    purpose: str,
    *,
    email: str | None,
    now: datetime,
    lifetime: timedelta,
) -> str:
    """A new token for ``user_id``; the user's older unused ones of ``purpose`` are void."""
    await void(session, user_id, purpose, now=now)
    token = secrets.token_urlsafe(32)
    session.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash(token),
            email=email,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return token


async def consume(
    session: AsyncSession, token: str, purpose: str, *, now: datetime
) -> AccountToken | None:
    """Use ``token`` up; ``None`` when it is unknown, used, superseded or expired."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    result = await session.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == token_hash(token),
            AccountToken.purpose == purpose,
            AccountToken.consumed_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(consumed_at=now)
        .returning(AccountToken)
    )
    return result.scalar_one_or_none()


async def void(session: AsyncSession, user_id: int, purpose: str, *, now: datetime) -> None:
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.consumed_at.is_(None),
        )
        .values(consumed_at=now)
    )


async def issued_since(
    session: AsyncSession, user_id: int, purpose: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many tokens of ``purpose`` the user got since ``since``, and when the oldest."""
    row = (
        await session.execute(
            select(func.count(), func.min(AccountToken.created_at)).where(
                AccountToken.user_id == user_id,
                AccountToken.purpose == purpose,
                AccountToken.created_at > since,
            )
        )
    ).one()
    return int(row[0]), row[1]


async def pending_email(
    session: AsyncSession, user_id: int, current_email: str, *, now: datetime
) -> str | None:
    """The address of a pending (unconfirmed, unexpired) email change, if any."""
    result = await session.execute(
        select(AccountToken.email)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == VERIFY_EMAIL,
            AccountToken.consumed_at.is_(None),
            AccountToken.expires_at > now,
            AccountToken.email != current_email,
        )
        .order_by(AccountToken.created_at.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def prune_expired(session: AsyncSession, *, before: datetime) -> int:
    """Delete tokens that expired before ``before`` (kept until then for the throttles)."""
    result = await session.execute(delete(AccountToken).where(AccountToken.expires_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
