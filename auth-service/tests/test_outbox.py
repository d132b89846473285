import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from auth_service import outbox
from auth_service.db import Database
from auth_service.models import OutboxEvent
from auth_service.settings import Settings
from svckit.testing.servers import EmbeddedRedis

from .conftest import AppContext, FakeClock, unique
from .helpers import bearer, user_with_token


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator["Redis[str]"]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5


async def add_events(database: Database, user_ids: Iterable[int]) -> None:
    async with database.transaction() as session:
        for user_id in user_ids:
            await outbox.add_user_deleted(session, user_id, now=datetime.now(UTC))


async def stream_user_ids(redis: "Redis[str]", stream: str) -> list[int]:
    return [int(fields["user_id"]) for _, fields in await redis.xrange(stream)]


async def test_relay_publishes_the_documented_fields_once(
    database: Database, redis: "Redis[str]"
) -> None:
    stream = unique("events")
    await add_events(database, [41])
    assert (
        await outbox.relay_all(database, redis, stream=stream, batch_size=10, clock=FakeClock())
        == 1
    )
    entries = await redis.xrange(stream)
    assert len(entries) == 1
    fields = entries[0][1]
    assert set(fields) == {"type", "user_id", "event_id", "occurred_at"}
    assert fields["type"] == "user.deleted"
    assert fields["user_id"] == "41"
    assert uuid.UUID(hex=fields["event_id"]).hex == fields["event_id"]
    occurred = datetime.fromisoformat(fields["occurred_at"])
    offset = occurred.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0

    # Marked published: a second run sends nothing.
    assert (
        await outbox.relay_all(database, redis, stream=stream, batch_size=10, clock=FakeClock())
        == 0
    )
    assert len(await redis.xrange(stream)) == 1


async def test_relay_works_in_batches(database: Database, redis: "Redis[str]") -> None:
    stream = unique("events")
    await add_events(database, range(1, 8))
    published = await outbox.relay_all(
        database, redis, stream=stream, batch_size=3, clock=FakeClock()
    )
    assert published == 7
    assert await stream_user_ids(redis, stream) == list(range(1, 8))


async def test_deletion_succeeds_while_redis_is_down_and_the_event_follows(
    app_context: AppContext, fresh_database_url: str
) -> None:
    own_redis = EmbeddedRedis()
    redis_url = own_redis.start()
    stream = unique("events")
    try:
        async with app_context(
            use_database=False,
            database_url=fresh_database_url,
            redis_url=redis_url,
            events_stream=stream,
        ) as (app, client):
            runtime = app.state.runtime
            user, tokens = await user_with_token(client)
            own_redis.stop()

            response = await client.delete("/users/me", headers=bearer(tokens["access_token"]))
            assert response.status_code == 200

            with pytest.raises((RedisError, OSError)):
                await outbox.relay_all(
                    runtime.database,
                    runtime.redis,
                    stream=stream,
                    batch_size=10,
                    clock=runtime.clock,
                )
            async with runtime.database.transaction() as session:
                pending = (
                    await session.scalars(
                        select(OutboxEvent).where(OutboxEvent.published_at.is_(None))
                    )
                ).all()
            assert [e.payload["user_id"] for e in pending] == [user["id"]]

            own_redis.start()  # same port
            published = await outbox.relay_all(
                runtime.database,
                runtime.redis,
                stream=stream,
                batch_size=10,
                clock=runtime.clock,
            )
            assert published == 1
            assert await stream_user_ids(runtime.redis, stream) == [user["id"]]
    finally:
        own_redis.stop()


async def test_concurrent_relays_never_publish_a_row_twice(
    fresh_database_url: str, redis: "Redis[str]"
) -> None:
    """A relay holding rows (another replica mid-batch) is skipped, not waited for."""
    database = Database.from_settings(Settings(database_url=fresh_database_url))
    stream = unique("events")
    try:
        await add_events(database, range(1, 21))
        async with database.transaction() as holder:
            held = (
                await holder.scalars(
                    select(OutboxEvent.id)
                    .order_by(OutboxEvent.id)
                    .limit(5)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            assert len(held) == 5
            published = await asyncio.wait_for(
                outbox.relay_all(database, redis, stream=stream, batch_size=4, clock=FakeClock()),
                timeout=10,
            )
            assert published == 15
        # The other "replica" gave its rows back unpublished; they are picked up now.
        assert (
            await outbox.relay_all(database, redis, stream=stream, batch_size=4, clock=FakeClock())
            == 5
        )
        ids = await stream_user_ids(redis, stream)
        assert sorted(ids) == list(range(1, 21))  # every event exactly once

        # Truly concurrent relays on fresh rows: still exactly once.
        await add_events(database, range(100, 160))
        results = await asyncio.gather(
            *(
                outbox.relay_all(database, redis, stream=stream, batch_size=7, clock=FakeClock())
                for _ in range(4)
            )
        )
        assert sum(results) == 60
        ids = await stream_user_ids(redis, stream)
        assert sorted(ids) == [*range(1, 21), *range(100, 160)]
    finally:
        await database.close()


async def test_the_background_relay_delivers_by_itself(
    app_context: AppContext, fresh_database_url: str, redis: "Redis[str]"
) -> None:
    stream = unique("events")
    async with app_context(
        use_database=False,
        database_url=fresh_database_url,
        events_stream=stream,
        background_tasks=True,
        outbox_relay_interval_seconds=0.2,
    ) as (_, client):
        user, tokens = await user_with_token(client)
        assert (
            await client.delete("/users/me", headers=bearer(tokens["access_token"]))
        ).status_code == 200
        for _ in range(50):
            if await stream_user_ids(redis, stream):
                break
            await asyncio.sleep(0.1)
    assert await stream_user_ids(redis, stream) == [user["id"]]
