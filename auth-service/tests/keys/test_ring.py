import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from auth_service.db import Database
from auth_service.keys import store
from auth_service.keys.ring import KeyRing
from auth_service.models import SigningKey
from svckit.testing.servers import free_port
from svckit.tokens import KeysUnavailable

from ..conftest import AppContext, FakeClock


class Monotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def make_ring(
    database: Database, clock: FakeClock, monotonic: Monotonic | None = None, **kwargs: Any
) -> KeyRing:
    return KeyRing(
        database,
        passphrase=kwargs.pop("passphrase", None),
        key_bits=2048,
        retention=timedelta(minutes=31),
        reload_interval=kwargs.pop("reload_interval", 30),
        clock=clock,
        monotonic=monotonic or Monotonic(),
        **kwargs,
    )


def dead_database() -> Database:
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/auth",
        connect_args={"timeout": 1},
    )
    return Database(async_sessionmaker(engine), engine)


async def test_start_loads_the_existing_key_and_signs_with_it(database: Database) -> None:
    ring = make_ring(database, FakeClock())
    await ring.start()
    kid, private = await ring.signing_key()
    assert private.key_size == 2048
    assert await ring.get_key(kid) is not None
    assert (await ring.jwks())["keys"][0]["kid"] == kid


async def test_start_creates_the_first_key_on_an_empty_database(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(delete(SigningKey))
    ring = make_ring(database, FakeClock())
    await ring.start()
    assert ring.has_signer()
    assert len(ring.keys) == 1


async def test_an_unknown_kid_reloads_at_most_once_per_cooldown(database: Database) -> None:
    mono = Monotonic()
    ring = make_ring(database, FakeClock(), mono, unknown_kid_cooldown=1.0)
    await ring.start()
    loads = ring.load_count
    mono.value += 5
    assert await ring.get_key("nope") is None
    assert ring.load_count == loads + 1
    assert await ring.get_key("nope-again") is None
    assert ring.load_count == loads + 1  # within the cooldown
    mono.value += 1.5
    assert await ring.get_key("nope-3") is None
    assert ring.load_count == loads + 2


async def test_a_key_created_by_another_replica_is_found_on_unknown_kid(database: Database) -> None:
    clock = FakeClock()
    mono = Monotonic()
    ring = make_ring(database, clock, mono)
    await ring.start()
    async with database.transaction() as session:
        other = await store.create_key(
            session, bits=2048, passphrase=None, now=clock(), activates_at=clock()
        )
    mono.value += 5
    assert await ring.get_key(other.kid) is not None


async def test_periodic_reload_picks_up_rotations(database: Database) -> None:
    clock = FakeClock()
    mono = Monotonic()
    ring = make_ring(database, clock, mono, reload_interval=30)
    await ring.start()
    async with database.transaction() as session:
        new, _ = await store.rotate(
            session,
            bits=2048,
            passphrase=None,
            now=clock(),
            activation_delay=timedelta(seconds=60),
            retention=ring.retention,
        )
    assert new.kid not in {k["kid"] for k in (await ring.jwks())["keys"]}
    mono.value += 31
    loads = ring.load_count
    # Stale: this caller is answered from the keys held, and a reload starts behind it.
    assert new.kid not in {k["kid"] for k in (await ring.jwks())["keys"]}
    await ring.reloading()
    assert ring.load_count == loads + 1
    assert new.kid in {k["kid"] for k in (await ring.jwks())["keys"]}


async def test_a_stale_ring_never_makes_a_caller_wait_for_a_connection(
    database: Database,
) -> None:
    """A refresh signs inside its transaction, holding a pooled connection. With the pool
    exhausted, a reload that the caller awaited would wait for a connection that only the
    caller returns: a deadlock until the pool's timeout (503s under load, seen with a pool of
    one plus one). The stale reload runs behind the caller instead."""
    clock = FakeClock()
    mono = Monotonic()
    ring = make_ring(database, clock, mono, reload_interval=30)
    await ring.start()
    kid, _ = await ring.signing_key()
    release = asyncio.Event()
    real_transaction = database.transaction

    @contextlib.asynccontextmanager
    async def blocked() -> AsyncIterator[Any]:
        await release.wait()  # no connection until the caller lets go of its own
        async with real_transaction() as session:
            yield session

    database.transaction = blocked  # type: ignore[method-assign]
    try:
        mono.value += 31
        signed = await asyncio.wait_for(ring.signing_key(), timeout=5)
        assert signed[0] == kid
        assert (await asyncio.wait_for(ring.get_key(kid), timeout=5)) is not None
        release.set()
        await asyncio.wait_for(ring.reloading(), timeout=10)
    finally:
        release.set()
        database.transaction = real_transaction  # type: ignore[method-assign]


async def test_keys_survive_a_database_outage(database: Database) -> None:
    monotonic = Monotonic()
    ring = make_ring(database, FakeClock(), monotonic, reload_interval=1)
    await ring.start()
    kid, _ = await ring.signing_key()
    dead = dead_database()
    try:
        ring._database = dead
        monotonic.value += 10
        assert await ring.get_key(kid) is not None  # stale-if-error
        await ring.reloading()  # the reload that started behind it failed
        assert (await ring.signing_key())[0] == kid
        assert await ring.get_key(kid) is not None
    finally:
        await dead.close()


async def test_without_any_keys_verification_is_unavailable() -> None:
    dead = dead_database()
    try:
        ring = make_ring(dead, FakeClock())
        await ring.start()  # tolerated: the database may come back
        assert not ring.has_signer()
        with pytest.raises(KeysUnavailable):
            await ring.get_key("any")
        with pytest.raises(KeysUnavailable):
            await ring.jwks()
    finally:
        await dead.close()


async def test_plain_keys_are_reported_when_a_passphrase_is_set(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ring = make_ring(database, FakeClock(), passphrase=b"a-long-and-random-passphrase-1")
    with caplog.at_level("WARNING", logger="auth_service.keys"):
        await ring.start()
    assert ring.has_signer()  # the template's plain key still works
    assert "without encryption" in caplog.text


async def test_an_encrypted_key_without_the_passphrase_fails_startup(database: Database) -> None:
    from auth_service.keys.material import KeyMaterialError

    now = datetime.now(UTC)
    async with database.transaction() as session:
        await session.execute(delete(SigningKey))
        await store.create_key(
            session,
            bits=2048,
            passphrase=b"a-long-and-random-passphrase-1",
            now=now,
            activates_at=now,
        )
    with pytest.raises(KeyMaterialError):
        await make_ring(database, FakeClock()).start()
    ring = make_ring(database, FakeClock(), passphrase=b"a-long-and-random-passphrase-1")
    await ring.start()
    assert ring.has_signer()


async def test_no_active_key_answers_503_not_500(
    app_context: AppContext, database: Database, clock: FakeClock
) -> None:
    async with app_context() as (app, client):
        from ..helpers import register

        user = await register(client)
        async with database.transaction() as session:
            await session.execute(delete(SigningKey))
            # Only a key that is not active yet: nothing may sign.
            await store.create_key(
                session,
                bits=2048,
                passphrase=None,
                now=clock(),
                activates_at=clock() + timedelta(hours=1),
            )
        await app.state.runtime.keyring.reload()
        response = await client.post(
            "/auth/token", data={"username": user["username"], "password": "Corr3ct-Horse!"}
        )
    assert response.status_code == 503
    assert response.json()["code"] == "signing_unavailable"
    assert response.headers["retry-after"] == "5"
