"""Refresh tokens: opaque, stored as hashes, rotated on each use, grouped in families.

* A token is 256 random bits (URL-safe base64). Only its SHA-256 is stored: a high-entropy
  secret needs no slow hash, and a leaked table yields nothing usable.
* Every login starts a *family* with an absolute expiry; each refresh marks the presented token
  used and adds its successor to the same family (the expiry does not move).
* Presenting a token that was already used revokes the whole family (RFC 9700 §4.14.2): either
  the client or an attacker holds a stolen copy, and the server cannot tell which.
* Of concurrent refreshes with one token exactly one wins: the token is claimed with a
  conditional ``UPDATE ... WHERE used_at IS NULL``, which PostgreSQL serialises on the row.
  The losers find it used, which is reuse, so the family is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.auth.errors import InvalidRefreshToken, RefreshTokenReused
from auth_service.models import RefreshFamily, RefreshToken, User
from svckit.scopes import default_scopes, parse_scope

MAX_TOKEN_LENGTH = 512
# RFC 8176: a family that recorded nothing (older than the amr column) began with a password.
PASSWORD_AMR = ("pwd",)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Rotation:
    user: User
    refresh_token: str
    client_id: str | None  # None: the first-party public client
    scope: str | None  # None: the user's default scopes
    amr: tuple[str, ...]  # how the login authenticated the user (RFC 8176)


async def _add_token(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> str:
    token = new_token()
    session.add(RefreshToken(family_id=family_id, token_hash=token_hash(token), created_at=now))
    await session.flush()
    return token


async def start_family(
    session: AsyncSession,
    user: User,
    *,
    now: datetime,
    lifetime: timedelta,
    client_id: str | None = None,
    scope: str | None = None,
    amr: Sequence[str] | None = None,
) -> str:
    """Begin a family for a fresh login; return its first refresh token.

    ``client_id`` is the registered client the login went through (``None``: the first-party
    public client); ``scope`` what it was granted (``None``: the user's default scopes);
    ``amr`` how the user authenticated, kept for every refreshed token (``None``: a password).
    """
    family = RefreshFamily(
        id=uuid.uuid4(),
        user_id=user.id,
        created_at=now,
        expires_at=now + lifetime,
        client_id=client_id,
        scope=scope,
        amr=list(amr) if amr else None,
    )
    session.add(family)
    await session.flush()
    return await _add_token(session, family.id, now)


async def rotate(
    session: AsyncSession, token: str, *, now: datetime, client_id: str | None = None
) -> Rotation:
    """Use ``token`` up and return its successor with the user it belongs to.

    ``client_id`` is the client presenting it (``None``: the first-party public client); a
    token issued to another client is refused (RFC 6749 §6) and stays unused (the caller's
    transaction rolls back).

    Raises :class:`InvalidRefreshToken` for an unknown, expired or revoked token, an
    inactive user or another client's token, and :class:`RefreshTokenReused` for a token
    used before.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidRefreshToken()
    digest = token_hash(token)
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == digest, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .returning(RefreshToken.family_id)
    )
    family_id = claimed.scalar_one_or_none()
    if family_id is None:
        used = await session.execute(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == digest)
        )
        reused_family = used.scalar_one_or_none()
        if reused_family is None:
            raise InvalidRefreshToken()
        await revoke_family(session, reused_family, now=now, reason="reuse")
        raise RefreshTokenReused()

    row = (
        await session.execute(
            select(RefreshFamily, User)
            .join(User, User.id == RefreshFamily.user_id)
            .where(RefreshFamily.id == family_id)
            .with_for_update(of=RefreshFamily)
        )
    ).one()
    family, user = row
    if family.revoked_at is not None or family.expires_at <= now or not user.is_active:
        raise InvalidRefreshToken()
    if family.client_id != client_id:
        raise InvalidRefreshToken()
    return Rotation(
        user=user,
        refresh_token=await _add_token(session, family.id, now),
        client_id=family.client_id,
        scope=family.scope,
        amr=tuple(family.amr) if family.amr else PASSWORD_AMR,
    )


def family_scopes(user: User, family_scope: str | None) -> frozenset[str]:
    """What a refresh of a family may grant now: its login's scopes, minus whatever the user
    may no longer have (a demoted administrator loses the administrator's scopes)."""
    allowed = default_scopes(is_admin=user.is_admin)
    if family_scope is None:
        return allowed
    return parse_scope(family_scope) & allowed


@dataclass(frozen=True, slots=True)
class FamilyState:
    """What revocation and introspection need to know of a refresh token."""

    family: RefreshFamily
    user: User
    token_used: bool
    issued_at: datetime


async def find(session: AsyncSession, token: str) -> FamilyState | None:
    """The family, user and state of ``token`` (``None`` when unknown); changes nothing."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = (
        await session.execute(
            select(RefreshToken, RefreshFamily, User)
            .join(RefreshFamily, RefreshFamily.id == RefreshToken.family_id)
            .join(User, User.id == RefreshFamily.user_id)
            .where(RefreshToken.token_hash == token_hash(token))
        )
    ).one_or_none()
    if row is None:
        return None
    refresh_token, family, user = row
    return FamilyState(
        family=family,
        user=user,
        token_used=refresh_token.used_at is not None,
        issued_at=refresh_token.created_at,
    )


async def revoke_family(
    session: AsyncSession, family_id: uuid.UUID, *, now: datetime, reason: str
) -> None:
    await session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )


async def revoke_token_family(
    session: AsyncSession, token: str, *, user_id: int, now: datetime
) -> bool:
    """Logout: revoke the family of ``token`` if it belongs to ``user_id``."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    result = await session.execute(
        select(RefreshFamily.id)
        .join(RefreshToken, RefreshToken.family_id == RefreshFamily.id)
        .where(RefreshToken.token_hash == token_hash(token), RefreshFamily.user_id == user_id)
    )
    family_id = result.scalar_one_or_none()
    if family_id is None:
        return False
    await revoke_family(session, family_id, now=now, reason="logout")
    return True


async def revoke_user_families(
    session: AsyncSession, user_id: int, *, now: datetime, reason: str
) -> None:
    """Revoke every family of the user (password change, deactivation)."""
    await session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.user_id == user_id, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )


async def prune_expired(session: AsyncSession, *, now: datetime, grace: timedelta) -> int:
    """Delete families (and their tokens) that expired more than ``grace`` ago."""
    result = await session.execute(
        delete(RefreshFamily).where(RefreshFamily.expires_at < now - grace)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
