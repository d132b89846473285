"""Registered confidential clients: creation, secret rotation, and client authentication.

* A client id is ``svc_`` and 16 hex digits: it starts with a letter, so it can never be
  mistaken for a user id in a token's ``sub`` (:data:`svckit.tokens.CLIENT_ID_PATTERN`).
* A secret is 256 random bits, shown once. Only its password hash is stored (the same bcrypt
  scheme as user passwords, computed off the event loop).
* Authentication costs the same whether or not the client exists: an unknown client is
  verified against the hasher's dummy hash, and every failure counts against a per-client
  throttle in Redis exactly like a failed login (:class:`~auth_service.throttle.LoginThrottle`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.errors import ClientNotFound
from auth_service.clients.schemas import ClientCreate
from auth_service.models import OAuthClient
from auth_service.oauth.errors import InvalidClient
from auth_service.passwords import PasswordHasher
from auth_service.throttle import LoginThrottle
from svckit.tokens import CLIENT_ID_PATTERN

MAX_SECRET_LENGTH = 256

_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)

AuthMethod = Literal["client_secret_basic", "client_secret_post"]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a request presented to authenticate a client (RFC 6749 §2.3.1)."""

    client_id: str
    client_secret: str
    method: AuthMethod


def new_client_id() -> str:
    return f"svc_{secrets.token_hex(8)}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def create_client(
    session: AsyncSession, hasher: PasswordHasher, data: ClientCreate, *, now: datetime
) -> tuple[OAuthClient, str]:
    """Register a client; returns it with its secret (which is not kept)."""
    secret = new_secret()
    client = OAuthClient(
        client_id=new_client_id(),
        name=data.name,
        secret_hash=await hasher.hash(secret),
        grant_types=list(data.grant_types),
        scopes=list(data.scopes),
        created_at=now,
        secret_rotated_at=now,
    )
    session.add(client)
    await session.flush()
    return client, secret


async def list_clients(
    session: AsyncSession, *, skip: int, limit: int
) -> tuple[list[OAuthClient], int]:
    rows = await session.scalars(
        select(OAuthClient)
        .order_by(OAuthClient.created_at, OAuthClient.client_id)
        .offset(skip)
        .limit(limit)
    )
    total = await session.scalar(select(func.count()).select_from(OAuthClient))
    return list(rows), int(total or 0)


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient:
    client = await session.get(OAuthClient, client_id)
    if client is None:
        raise ClientNotFound()
    return client


async def delete_client(session: AsyncSession, client_id: str) -> None:
    """Delete a client; its refresh token families go with it (ON DELETE CASCADE)."""
    result = await session.execute(delete(OAuthClient).where(OAuthClient.client_id == client_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise ClientNotFound()


async def rotate_secret(
    session: AsyncSession, hasher: PasswordHasher, client_id: str, *, now: datetime
) -> tuple[OAuthClient, str]:
    """Give the client a new secret; the old one stops working at once."""
    client = await get_client(session, client_id)
    secret = new_secret()
    client.secret_hash = await hasher.hash(secret)
    client.secret_rotated_at = now
    await session.flush()
    return client, secret


async def authenticate(
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    credentials: ClientCredentials,
) -> OAuthClient:
    """The client ``credentials`` prove to be, or :class:`InvalidClient`.

    An unknown client and a wrong secret take the same path, the same time and the same
    answer; a throttled client id answers 429 like a throttled login.
    """
    client_id = credentials.client_id
    await throttle.check(client_id)
    async with hasher.slot():
        known_shape = _CLIENT_ID.fullmatch(client_id) is not None
        client = await session.get(OAuthClient, client_id) if known_shape else None
        verification = await hasher.verify(
            credentials.client_secret, client.secret_hash if client is not None else None
        )
    if client is None or not verification.ok:
        await throttle.record_failure(client_id)
        raise InvalidClient()
    await throttle.reset(client_id)
    return client
