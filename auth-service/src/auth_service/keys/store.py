"""Signing keys in the auth database, so every replica signs and publishes the same keys."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.keys import material, schedule
from auth_service.models import SigningKey

logger = logging.getLogger("auth_service.keys")

# Serialises key creation across replicas (first start, rotation).
KEY_LOCK_ID = 0x6B657973  # "keys"


async def _lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": KEY_LOCK_ID})


async def live_keys(session: AsyncSession) -> list[SigningKey]:
    result = await session.execute(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.activates_at)
    )
    return list(result.scalars())


async def create_key(
    session: AsyncSession,
    *,
    bits: int,
    passphrase: bytes | None,
    now: datetime,
    activates_at: datetime,
) -> SigningKey:
    """Generate and store a key pair (generation and encryption run in a worker thread)."""

    def build() -> tuple[str, bytes]:
        private = material.generate_private_key(bits)
        return (
            material.public_pem(private.public_key()),
            material.private_pem(private, passphrase),
        )

    public_pem, private_pem = await asyncio.to_thread(build)
    key = SigningKey(
        kid=material.new_kid(),
        public_key_pem=public_pem,
        private_key_pem=private_pem,
        encrypted=passphrase is not None,
        created_at=now,
        activates_at=activates_at,
        retired_at=None,
    )
    session.add(key)
    await session.flush()
    logger.info(
        "signing key created",
        extra={
            "kid": key.kid,
            "activates_at": activates_at.isoformat(),
            "encrypted": key.encrypted,
        },
    )
    return key


async def ensure_signing_key(
    session: AsyncSession, *, bits: int, passphrase: bytes | None, now: datetime
) -> SigningKey | None:
    """On first start (no live key at all) create one that signs at once.

    Nothing can have cached a JWKS of a service without keys, so no activation delay is
    needed. Returns the new key, or ``None`` when keys exist.
    """
    await _lock(session)
    if await live_keys(session):
        return None
    return await create_key(session, bits=bits, passphrase=passphrase, now=now, activates_at=now)


async def rotate(
    session: AsyncSession,
    *,
    bits: int,
    passphrase: bytes | None,
    now: datetime,
    activation_delay: timedelta,
    retention: timedelta,
) -> tuple[SigningKey, list[str]]:
    """Create the next key, signing from ``now + activation_delay``; retire expired keys.

    Returns the new key and the kids retired by this call.
    """
    await _lock(session)
    retired = await retire_expired(session, now=now, retention=retention)
    key = await create_key(
        session, bits=bits, passphrase=passphrase, now=now, activates_at=now + activation_delay
    )
    return key, retired


async def retire_expired(
    session: AsyncSession, *, now: datetime, retention: timedelta
) -> list[str]:
    """Mark keys no live token can need as retired and erase their private halves."""
    keys = await live_keys(session)
    kids = [k.kid for k in schedule.retirable(keys, now, retention)]
    if kids:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid.in_(kids))
            .values(retired_at=now, private_key_pem=None)
        )
        logger.info("signing keys retired", extra={"kids": kids})
    return kids


async def reencrypt(
    session: AsyncSession, *, old_passphrase: bytes | None, new_passphrase: bytes | None
) -> list[str]:
    """Re-encrypt every live private key with ``new_passphrase`` (``None``: store in clear).

    Keys are decrypted with ``old_passphrase``, or with the new one if they already use it, so
    running it twice is harmless. Returns the kids that changed. Raises
    :class:`~auth_service.keys.material.KeyMaterialError` (and changes nothing) when a key
    opens with neither passphrase.
    """
    await _lock(session)
    # Convert everything first, write only if every key converted.
    converted_by_key: list[tuple[SigningKey, bytes]] = []
    for key in await live_keys(session):
        pem = key.private_key_pem
        if pem is None:
            continue

        def convert(pem: bytes = pem, encrypted: bool = key.encrypted) -> bytes | None:
            if encrypted and new_passphrase:
                try:
                    material.load_private_key(pem, new_passphrase, encrypted=True)
                except material.KeyMaterialError:
                    pass
                else:
                    return None  # already under the new passphrase
            if not encrypted and not new_passphrase:
                return None
            private = material.load_private_key(pem, old_passphrase, encrypted=encrypted)
            return material.private_pem(private, new_passphrase)

        converted = await asyncio.to_thread(convert)
        if converted is not None:
            converted_by_key.append((key, converted))
    for key, converted in converted_by_key:
        key.private_key_pem = converted
        key.encrypted = new_passphrase is not None
    await session.flush()
    return [key.kid for key, _ in converted_by_key]
