from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from auth_service.db import Database
from auth_service.keys import material, store
from auth_service.models import SigningKey

PASSPHRASE = b"a-long-and-random-passphrase-1"


async def test_private_keys_are_encrypted_at_rest_with_a_passphrase(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.transaction() as session:
        key = await store.create_key(
            session, bits=2048, passphrase=PASSPHRASE, now=now, activates_at=now
        )
        row = await session.scalar(select(SigningKey).where(SigningKey.kid == key.kid))
    assert row is not None
    assert row.private_key_pem is not None
    assert row.encrypted
    assert row.private_key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = material.load_private_key(row.private_key_pem, PASSPHRASE, encrypted=True)
    assert loaded.key_size == 2048
    assert material.public_pem(loaded.public_key()) == row.public_key_pem


async def test_an_encrypted_key_needs_the_right_passphrase(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.transaction() as session:
        key = await store.create_key(
            session, bits=2048, passphrase=PASSPHRASE, now=now, activates_at=now
        )
    assert key.private_key_pem is not None
    with pytest.raises(material.KeyMaterialError, match="wrong AUTH_KEY_PASSPHRASE"):
        material.load_private_key(key.private_key_pem, b"another-passphrase", encrypted=True)
    with pytest.raises(material.KeyMaterialError, match="not set"):
        material.load_private_key(key.private_key_pem, None, encrypted=True)


async def test_without_a_passphrase_keys_are_plain_pkcs8(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.transaction() as session:
        key = await store.create_key(session, bits=2048, passphrase=None, now=now, activates_at=now)
    assert key.private_key_pem is not None
    assert not key.encrypted
    assert key.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


async def test_ensure_creates_a_key_only_when_there_is_none(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.transaction() as session:
        # The template database already holds a key.
        assert await store.ensure_signing_key(session, bits=2048, passphrase=None, now=now) is None
        await session.execute(delete(SigningKey))
        created = await store.ensure_signing_key(session, bits=2048, passphrase=None, now=now)
        assert created is not None
        assert created.activates_at == now  # nobody can have cached an empty JWKS
        assert [k.kid for k in await store.live_keys(session)] == [created.kid]


async def test_rotate_schedules_the_new_key_and_retires_expired_ones(database: Database) -> None:
    now = datetime.now(UTC)
    retention = timedelta(minutes=31)
    async with database.transaction() as session:
        await session.execute(delete(SigningKey))
        first = await store.create_key(
            session, bits=2048, passphrase=None, now=now, activates_at=now
        )
        second, retired = await store.rotate(
            session,
            bits=2048,
            passphrase=None,
            now=now + timedelta(minutes=1),
            activation_delay=timedelta(minutes=5),
            retention=retention,
        )
        assert retired == []
        assert second.activates_at == now + timedelta(minutes=6)

        later = now + timedelta(minutes=6) + retention
        third, retired = await store.rotate(
            session,
            bits=2048,
            passphrase=None,
            now=later,
            activation_delay=timedelta(minutes=5),
            retention=retention,
        )
        assert retired == [first.kid]
        rows = {k.kid: k for k in (await session.scalars(select(SigningKey))).all()}
        await session.refresh(rows[first.kid])
    assert rows[first.kid].retired_at == later
    assert rows[first.kid].private_key_pem is None  # the private half is erased
    assert rows[second.kid].retired_at is None
    assert rows[third.kid].activates_at == later + timedelta(minutes=5)


async def test_reencrypt_changes_the_passphrase_and_is_idempotent(database: Database) -> None:
    now = datetime.now(UTC)
    new = b"another-long-passphrase-2"
    async with database.transaction() as session:
        await session.execute(delete(SigningKey))
        plain = await store.create_key(
            session, bits=2048, passphrase=None, now=now, activates_at=now
        )
        old = await store.create_key(
            session, bits=2048, passphrase=PASSPHRASE, now=now, activates_at=now
        )
        with pytest.raises(material.KeyMaterialError):
            await store.reencrypt(session, old_passphrase=b"wrong-passphrase", new_passphrase=new)
    async with database.transaction() as session:
        changed = await store.reencrypt(session, old_passphrase=PASSPHRASE, new_passphrase=new)
        assert sorted(changed) == sorted([plain.kid, old.kid])
        assert await store.reencrypt(session, old_passphrase=PASSPHRASE, new_passphrase=new) == []
        for key in await store.live_keys(session):
            assert key.encrypted
            assert key.private_key_pem is not None
            material.load_private_key(key.private_key_pem, new, encrypted=True)
