"""The user-events consumer against real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from items_service.items import service
from items_service.items.schemas import ItemCreate
from items_service.settings import Settings
from items_service.tokens import DeletedUsers, RevokedTokens
from items_service.user_events import UserEventsConsumer, apply_token_revoked
from svckit.db import Pool
from svckit.events import PoisonMessage, TokenRevokedEvent, UserDeletedEvent, parse_event
from svckit.redis import StreamClient, close_redis, connect_stream_reader
from svckit.testing.keys import JWKSServer
from svckit.testing.servers import EmbeddedRedis

from .conftest import Tokens, eventually, make_settings, serve

GROUP = "items-service"


def user_deleted(user_id: int | str, event_id: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "type": "user.deleted",
        "user_id": str(user_id),
        "event_id": event_id or uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC).isoformat(),
        **extra,
    }


@pytest.fixture
def stream() -> str:
    return f"user-events-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[StreamClient]:
    # The consumer's kind of client: RESP2 replies as bytes.
    client = connect_stream_reader(redis_url, block_seconds=1.0)
    yield client
    await close_redis(client)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Pool]:
    database = await Pool.from_settings(settings, application_name="items-service")
    yield database
    await database.close()


ConsumerFactory = Callable[..., UserEventsConsumer]


@pytest.fixture
async def consumers(
    redis: StreamClient, db: Pool, stream: str
) -> AsyncIterator[tuple[ConsumerFactory, list[asyncio.Task[None]]]]:
    tasks: list[asyncio.Task[None]] = []

    def make(**overrides: Any) -> UserEventsConsumer:
        options: dict[str, Any] = {
            "stream": stream,
            "group": GROUP,
            "dead_stream": f"{stream}:dead",
            "consumer": f"test-{uuid.uuid4().hex[:6]}",
            "block_seconds": 0.05,
            "claim_idle_seconds": 60,
            "backoff_max_seconds": 0.1,
        }
        options.update(overrides)
        client = options.pop("redis", redis)
        return UserEventsConsumer(client, db, DeletedUsers(), **options)

    yield make, tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def start(
    consumers: tuple[ConsumerFactory, list[asyncio.Task[None]]], **overrides: Any
) -> UserEventsConsumer:
    make, tasks = consumers
    consumer = make(**overrides)
    tasks.append(asyncio.create_task(consumer.run()))
    return consumer


async def make_items(db: Pool, owner: int, count: int) -> list[int]:
    return [
        (await service.create_item(db, ItemCreate(title=f"t{i}"), owner))["id"]
        for i in range(count)
    ]


async def count_items(sql: asyncpg.Connection, owner: int | None = None) -> int:
    if owner is None:
        value: int = await sql.fetchval("SELECT count(*) FROM items")
    else:
        value = await sql.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner)
    return value


async def pending(redis: StreamClient, stream: str) -> int:
    info = await redis.xpending(stream, GROUP)  # type: ignore[no-untyped-call]
    return int(info["pending"])


# ---------------------------------------------------------------------- parsing


def test_parse_event() -> None:
    event_id = uuid.uuid4()
    fields = {
        b"type": b"user.deleted",
        b"user_id": b"42",
        b"event_id": event_id.hex.encode(),
        b"occurred_at": b"2026-01-02T03:04:05Z",
    }
    assert parse_event(fields) == UserDeletedEvent(
        event_id, 42, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    assert parse_event({**fields, b"type": b"user.renamed"}) is None
    naive = parse_event({**fields, b"occurred_at": b"2026-01-02T03:04:05"})
    assert isinstance(naive, UserDeletedEvent)
    assert naive.occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"user_id": b"1"},
        {b"type": b"user.deleted", b"event_id": uuid.uuid4().hex.encode()},
        {b"type": b"user.deleted", b"user_id": b"abc", b"event_id": uuid.uuid4().hex.encode()},
        {b"type": b"user.deleted", b"user_id": b"-1", b"event_id": uuid.uuid4().hex.encode()},
        {b"type": b"user.deleted", b"user_id": b"9" * 19, b"event_id": uuid.uuid4().hex.encode()},
        {
            b"type": b"user.deleted",
            b"user_id": "\u0661".encode(),  # ARABIC-INDIC DIGIT ONE: isdecimal(), not ASCII
            b"event_id": uuid.uuid4().hex.encode(),
        },
        {b"type": b"user.deleted", b"user_id": b"1", b"event_id": b"nope"},
        {b"type": b"user.deleted", b"user_id": b"1"},
        {b"type": b"\xff\xfe", b"user_id": b"1"},
        {
            b"type": b"user.deleted",
            b"user_id": b"1",
            b"event_id": uuid.uuid4().hex.encode(),
            b"occurred_at": b"yesterday",
        },
    ],
)
def test_parse_event_rejects_poison(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(PoisonMessage):
        parse_event(fields)


# ---------------------------------------------------------------------- the service


async def test_event_deletes_the_users_items_and_refuses_their_tokens(
    redis: StreamClient,
    database_url: str,
    jwks_server: JWKSServer,
    redis_url: str,
    stream: str,
    tokens: Tokens,
    sql: asyncpg.Connection,
) -> None:
    settings = make_settings(
        database_url,
        jwks_server.url,
        events_enabled=True,
        redis_url=redis_url,
        events_stream=stream,
        events_dead_stream=f"{stream}:dead",
        events_block_seconds=0.1,
    )
    async with serve(settings) as (_app, client):
        for owner in (1, 1, 1, 2):
            response = await client.post(
                "/items/", json={"title": "t"}, headers=tokens.headers(owner)
            )
            assert response.status_code == 200
        headers = tokens.headers(1)
        assert (await client.get("/items/my-items", headers=headers)).status_code == 200

        await redis.xadd(stream, user_deleted(1))

        async def gone() -> bool:
            return await count_items(sql, 1) == 0

        await eventually(gone)
        await eventually(lambda: _no_pending(redis, stream))
        assert await count_items(sql, 2) == 1
        listed = await client.get("/items/")
        assert listed.headers["x-total-count"] == "1"
        assert [item["owner_id"] for item in listed.json()] == [2]
        # The deleted user's still-unexpired token is refused from now on.
        refused = await client.get("/items/my-items", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert (
            await client.post("/items/", json={"title": "t"}, headers=headers)
        ).status_code == 401
        assert await sql.fetchval("SELECT count(*) FROM deleted_users WHERE user_id = 1") == 1


async def _no_pending(redis: StreamClient, stream: str) -> bool:
    return await pending(redis, stream) == 0


# ---------------------------------------------------------------------- the consumer


async def test_duplicate_delivery_deletes_once_and_does_not_fail(
    consumers: Any, redis: StreamClient, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    await make_items(db, 7, 3)
    event = user_deleted(7)
    await redis.xadd(stream, event)
    await redis.xadd(stream, event)  # the relay delivered it twice
    consumer = start(consumers)
    await eventually(lambda: _handled(consumer, 2))
    assert await count_items(sql, 7) == 0
    assert consumer.dead_lettered == 0
    assert await pending(redis, stream) == 0
    assert await sql.fetchval("SELECT count(*) FROM deleted_users") == 1
    assert await sql.fetchval("SELECT sum(count) FROM item_count_shards") == 0
    # Applying it yet again is a no-op.
    parsed = parse_event({k.encode(): v.encode() for k, v in event.items()})
    assert isinstance(parsed, UserDeletedEvent)
    assert await service.delete_user_items(db, parsed) == 0


async def _handled(consumer: UserEventsConsumer, count: int) -> bool:
    return consumer.handled >= count


async def test_consumer_started_after_the_events_catches_up(
    consumers: Any, redis: StreamClient, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    for owner in (1, 2, 3):
        await make_items(db, owner, 2)
    await make_items(db, 4, 1)
    # Written before the group exists: it is created at the stream's start, not its end.
    for owner in (1, 2, 3):
        await redis.xadd(stream, user_deleted(owner))
    consumer = start(consumers)
    await eventually(lambda: _handled(consumer, 3))
    assert await count_items(sql) == 1
    assert await count_items(sql, 4) == 1
    assert {1, 2, 3} <= consumer.deleted_users._ids

    # Group exists, no consumer running: events wait for the next one.
    consumer_task = consumers[1].pop()
    consumer_task.cancel()
    await asyncio.gather(consumer_task, return_exceptions=True)
    await redis.xadd(stream, user_deleted(4))
    later = start(consumers)
    await eventually(lambda: _handled(later, 1))
    assert await count_items(sql) == 0


async def test_poison_entries_go_to_the_dead_stream(
    consumers: Any,
    redis: StreamClient,
    db: Pool,
    stream: str,
    sql: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="items_service.user_events")
    await make_items(db, 5, 2)
    poison: list[dict[str, str | bytes]] = [
        {"type": "user.deleted", "user_id": "not-a-number", "event_id": uuid.uuid4().hex},
        {"nothing": "useful"},
        {"type": b"\xff\xfe", "user_id": "1"},
    ]
    for fields in poison:
        await redis.xadd(stream, fields)
    await redis.xadd(stream, {"type": "user.renamed", "user_id": "5"})  # not ours: ignored
    await redis.xadd(stream, user_deleted(5))
    consumer = start(consumers)
    await eventually(lambda: _handled(consumer, 1))
    assert await count_items(sql, 5) == 0  # the good event after the poison was handled
    assert consumer.dead_lettered == 3
    assert await pending(redis, stream) == 0
    dead = await redis.xrange(f"{stream}:dead")
    assert len(dead) == 3
    reasons = [fields[b"dead_letter_reason"].decode() for _id, fields in dead]
    assert all(reason.startswith("unparseable") for reason in reasons)
    assert dead[0][1][b"user_id"] == b"not-a-number"  # the original fields are kept
    assert dead[2][1][b"type"] == b"\xff\xfe"
    assert sum("dead-letter" in r.getMessage() for r in caplog.records) == 3


async def test_entry_failing_repeatedly_is_dead_lettered(
    consumers: Any, redis: StreamClient, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    await make_items(db, 6, 1)
    # A real, non-connection failure: the table the handler writes to is gone.
    await sql.execute("ALTER TABLE deleted_users RENAME TO deleted_users_away")
    await redis.xadd(stream, user_deleted(6))
    consumer = start(consumers, max_attempts=3)
    await eventually(lambda: _dead(consumer, 1))
    (entry,) = await redis.xrange(f"{stream}:dead")
    assert entry[1][b"dead_letter_reason"].startswith(b"failed 3 times")
    assert await pending(redis, stream) == 0
    assert await count_items(sql, 6) == 1  # rolled back with the failed statement

    await sql.execute("ALTER TABLE deleted_users_away RENAME TO deleted_users")
    await redis.xadd(stream, user_deleted(6))  # the consumer carries on with later entries
    await eventually(lambda: _handled(consumer, 1))
    assert await count_items(sql, 6) == 0


async def _dead(consumer: UserEventsConsumer, count: int) -> bool:
    return consumer.dead_lettered >= count


async def test_pending_entries_of_a_crashed_consumer_are_taken_over(
    consumers: Any, redis: StreamClient, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    await make_items(db, 8, 2)
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xadd(stream, user_deleted(8))
    # A consumer read it and died before acknowledging.
    taken = await redis.xreadgroup(GROUP, "crashed", {stream: ">"}, count=10)
    assert len(taken[0][1]) == 1
    assert await pending(redis, stream) == 1

    consumer = start(consumers, claim_idle_seconds=0.2)
    await eventually(lambda: _handled(consumer, 1))
    assert await count_items(sql, 8) == 0
    assert await pending(redis, stream) == 0


async def test_entry_delivered_too_often_is_dead_lettered(
    consumers: Any, redis: StreamClient, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    await make_items(db, 9, 1)
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    message_id = await redis.xadd(stream, user_deleted(9))
    # It was handed out again and again (each consumer that took it crashed).
    await redis.xreadgroup(GROUP, "crashed-0", {stream: ">"})
    for i in range(1, 4):
        await redis.xclaim(stream, GROUP, f"crashed-{i}", 0, [message_id])  # type: ignore[no-untyped-call]

    consumer = start(consumers, claim_idle_seconds=0.05, max_deliveries=3)
    await eventually(lambda: _dead(consumer, 1))
    (entry,) = await redis.xrange(f"{stream}:dead")
    assert entry[1][b"dead_letter_reason"].startswith(b"delivered 5 times")
    assert entry[1][b"dead_letter_source_id"] == message_id
    assert await pending(redis, stream) == 0
    assert await count_items(sql, 9) == 1


async def test_consumer_rides_out_a_redis_outage(
    consumers: Any, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    datadir = Path(tempfile.mkdtemp(prefix="items-redis-"))
    own = EmbeddedRedis(datadir=datadir)
    url = own.start()
    # Short timeouts, so the outage is noticed quickly; the workspace's types-redis stubs do not
    # know redis-py's protocol= (as in svckit.redis).
    client: StreamClient = aioredis.Redis.from_url(  # type: ignore[call-overload]
        url, protocol=2, socket_connect_timeout=1, socket_timeout=2
    )
    try:
        await make_items(db, 11, 2)
        await make_items(db, 12, 2)
        consumer = start(consumers, redis=client)
        await client.xadd(stream, user_deleted(11))
        await eventually(lambda: _handled(consumer, 1))

        own.stop()
        await eventually(lambda: _disconnected(consumer))
        await asyncio.sleep(0.3)  # a few failed, backed-off attempts

        own = EmbeddedRedis(port=own.port, datadir=datadir)
        own.start()
        await client.xadd(stream, user_deleted(12))
        await eventually(lambda: _handled(consumer, 2), timeout=20)
        assert await count_items(sql) == 0
        assert consumer.connected
    finally:
        await close_redis(client)
        own.stop()


async def _disconnected(consumer: UserEventsConsumer) -> bool:
    return not consumer.connected


async def test_group_lost_with_redis_data_is_recreated(
    consumers: Any, redis: StreamClient, db: Pool, stream: str, sql: asyncpg.Connection
) -> None:
    await make_items(db, 13, 1)
    consumer = start(consumers)
    await eventually(lambda: _group_exists(redis, stream))
    await redis.delete(stream)  # e.g. Redis restarted without persistence
    await asyncio.sleep(0.2)
    await redis.xadd(stream, user_deleted(13))
    await eventually(lambda: _handled(consumer, 1))
    assert await count_items(sql, 13) == 0


async def _group_exists(redis: StreamClient, stream: str) -> bool:
    try:
        groups = await redis.xinfo_groups(stream)  # type: ignore[no-untyped-call]
    except aioredis.ResponseError:
        return False
    return any(g["name"] in (GROUP, GROUP.encode()) for g in groups)


async def test_idle_consumers_without_pending_entries_are_forgotten(
    consumers: Any, redis: StreamClient, db: Pool, stream: str
) -> None:
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xreadgroup(GROUP, "exited-process", {stream: ">"})  # registers, reads nothing
    await redis.xadd(stream, user_deleted(14))
    await redis.xreadgroup(GROUP, "crashed-holding-one", {stream: ">"})
    await asyncio.sleep(0.1)
    consumer = start(consumers, claim_idle_seconds=60, forget_consumers_after_seconds=0.05)

    async def only_live_ones_left() -> bool:
        names = {c["name"] for c in await redis.xinfo_consumers(stream, GROUP)}  # type: ignore[no-untyped-call]
        return names == {b"crashed-holding-one", consumer.consumer.encode()}

    await eventually(only_live_ones_left)


# ---------------------------------------------------------------------- token revocation


def token_revoked(jti: str, expires_at: datetime) -> dict[str, str]:
    return {
        "type": "token.revoked",
        "jti": jti,
        "expires_at": expires_at.isoformat(),
        "event_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC).isoformat(),
    }


def test_parse_token_revoked() -> None:
    expires = datetime.now(UTC)
    fields = {k.encode(): v.encode() for k, v in token_revoked("abc", expires).items()}
    event = parse_event(fields)
    assert isinstance(event, TokenRevokedEvent)
    assert event.jti == "abc"
    assert event.expires_at == expires
    for broken in ({b"jti": b""}, {b"jti": b"x" * 65}, {b"expires_at": b"soon"}):
        with pytest.raises(PoisonMessage):
            parse_event({**fields, **broken})


async def test_a_revoked_token_is_refused_within_2_s_and_after_a_restart(
    redis: StreamClient,
    database_url: str,
    jwks_server: JWKSServer,
    redis_url: str,
    stream: str,
    tokens: Tokens,
) -> None:
    settings = make_settings(
        database_url,
        jwks_server.url,
        events_enabled=True,
        redis_url=redis_url,
        events_stream=stream,
        events_dead_stream=f"{stream}:dead",
        events_block_seconds=0.1,
    )
    jti = uuid.uuid4().hex
    headers = tokens.headers(7, jti=jti)
    other = tokens.headers(7)
    async with serve(settings) as (_app, client):
        assert (await client.get("/items/my-items", headers=headers)).status_code == 200
        expires = datetime.fromtimestamp(time.time() + 300, UTC)
        await redis.xadd(stream, token_revoked(jti, expires))
        started = time.monotonic()

        async def refused() -> bool:
            response = await client.get("/items/my-items", headers=headers)
            return response.status_code == 401

        await eventually(refused, timeout=2.0)
        assert time.monotonic() - started < 2.0
        assert (await client.get("/items/my-items", headers=other)).status_code == 200
    # a restart (a fresh process, no events) still refuses it: it is in the items database
    async with serve(make_settings(database_url, jwks_server.url)) as (_app, client):
        response = await client.get("/items/my-items", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_other_replicas_pick_up_revocations_from_the_database(
    database_url: str, jwks_server: JWKSServer, tokens: Tokens, db: Pool
) -> None:
    settings = make_settings(database_url, jwks_server.url, revoked_tokens_refresh_seconds=0.1)
    jti = uuid.uuid4().hex
    headers = tokens.headers(8, jti=jti)
    async with serve(settings) as (_app, client):
        assert (await client.get("/items/my-items", headers=headers)).status_code == 200
        # what another replica's consumer did
        await apply_token_revoked(
            db,
            TokenRevokedEvent(uuid.uuid4(), jti, datetime.fromtimestamp(time.time() + 300, UTC)),
        )

        async def refused() -> bool:
            return (await client.get("/items/my-items", headers=headers)).status_code == 401

        await eventually(refused, timeout=2.0)
        assert (await client.get("/items/my-items", headers=headers)).status_code == 401


async def test_expired_revocations_are_forgotten_and_pruned(db: Pool) -> None:
    revoked = RevokedTokens()
    long_ago = datetime.fromtimestamp(time.time() - 3600, UTC)
    await apply_token_revoked(db, TokenRevokedEvent(uuid.uuid4(), "old", long_ago))
    await apply_token_revoked(db, TokenRevokedEvent(uuid.uuid4(), "old", long_ago))  # idempotent
    await revoked.refresh(db)
    assert "old" not in revoked
    await revoked.prune(db)
    assert await db.fetchval("SELECT count(*) FROM revoked_tokens WHERE jti = 'old'") == 0
