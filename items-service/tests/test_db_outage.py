"""A database outage: quick 503s in the envelope, then recovery without a restart.

This test runs its own PostgreSQL (pgserver's binaries, in a temporary directory) so it can
stop and start it under the running service.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from items_service.items import service
from items_service.items.schemas import ItemCreate
from items_service.migrations import LOCATION as MIGRATIONS
from items_service.tokens import DeletedUsers
from items_service.user_events import UserEventsConsumer
from svckit import migrations
from svckit.db import Pool, is_connection_error
from svckit.redis import close_redis, connect_stream_reader
from svckit.testing.keys import JWKSServer
from svckit.testing.servers import create_database

from .conftest import Tokens, eventually, make_settings, serve


@dataclass
class OwnPostgres:
    server: Any

    @property
    def admin_url(self) -> str:
        socket_dir = self.server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/postgres?host={quote(str(socket_dir))}"

    def stop(self) -> None:
        import pgserver

        # pg_ctl is one of the wrappers pgserver creates at import, one per PostgreSQL binary.
        pgserver.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    # A short path: the server's Unix socket lives in it.
    root = Path(tempfile.mkdtemp(prefix="items-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(root / "data", cleanup_mode="stop")
    own = OwnPostgres(server)
    yield own
    own.start()  # leave it running for pgserver's own cleanup
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def outage_client(
    own_postgres: OwnPostgres, jwks_server: JWKSServer
) -> AsyncIterator[httpx.AsyncClient]:
    url = await _fresh_database(own_postgres)
    settings = make_settings(url, jwks_server.url, db_connect_timeout_seconds=1.0)
    async with serve(settings) as (_app, client):
        yield client


async def _fresh_database(own_postgres: OwnPostgres) -> str:
    await asyncio.to_thread(own_postgres.start)  # running, even if a previous test failed
    url = await create_database(own_postgres.admin_url, f"items_{uuid.uuid4().hex[:8]}")
    await migrations.upgrade(MIGRATIONS, url)
    return url


async def _timed(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.request(method, path, **kwargs)
    return response, time.perf_counter() - started


async def test_outage_gives_quick_503s_and_the_service_recovers(
    own_postgres: OwnPostgres, outage_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    client = outage_client
    created = await client.post("/items/", json={"title": "before"}, headers=tokens.headers(1))
    assert created.status_code == 200
    item_path = f"/items/{created.json()['id']}"
    assert (await client.get("/items/")).status_code == 200

    await asyncio.to_thread(own_postgres.stop)

    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/items/", {}),
        ("GET", item_path, {}),
        ("GET", "/items/my-items", {"headers": tokens.headers(1)}),
        ("POST", "/items/", {"json": {"title": "during"}, "headers": tokens.headers(1)}),
        ("PATCH", item_path, {"json": {"title": "x"}, "headers": tokens.headers(1)}),
        ("DELETE", item_path, {"headers": tokens.headers(1)}),
    ]
    for method, path, kwargs in requests:
        response, elapsed = await _timed(client, method, path, **kwargs)
        assert response.status_code == 503, (method, path, response.text)
        assert elapsed < 2.0, (method, path, elapsed)
        body = response.json()
        assert body["code"] == "database_unavailable"
        assert body["path"] == path
        assert response.headers["retry-after"]
        assert "postgres" not in response.text.lower()
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unavailable"
    assert (await client.get("/healthz")).status_code == 200

    await asyncio.to_thread(own_postgres.start)

    # No restart of the service: the pool reconnects on its own.
    recovered = await client.get("/items/")
    assert recovered.status_code == 200
    assert recovered.headers["x-total-count"] == "1"
    after = await client.post("/items/", json={"title": "after"}, headers=tokens.headers(1))
    assert after.status_code == 200
    assert (await client.get(item_path)).json()["title"] == "before"
    assert (await client.get("/readyz")).status_code == 200


async def test_unreachable_database_at_start_then_available(
    own_postgres: OwnPostgres, jwks_server: JWKSServer, tokens: Tokens
) -> None:
    url = await _fresh_database(own_postgres)
    await asyncio.to_thread(own_postgres.stop)
    # The service starts without its database and answers 503 until it is back.
    settings = make_settings(url, jwks_server.url, db_connect_timeout_seconds=1.0)
    async with serve(settings) as (_app, client):
        response, elapsed = await _timed(client, "GET", "/items/")
        assert response.status_code == 503
        assert elapsed < 2.0
        await asyncio.to_thread(own_postgres.start)
        assert (await client.get("/items/")).status_code == 200
        created = await client.post("/items/", json={"title": "t"}, headers=tokens.headers(1))
        assert created.status_code == 200


async def test_consumer_waits_out_a_database_outage(
    own_postgres: OwnPostgres, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="items_service.user_events")
    url = await _fresh_database(own_postgres)
    db = await Pool.from_settings(
        make_settings(url, "http://127.0.0.1:9/jwks", db_connect_timeout_seconds=1),
        application_name="items-service",
    )
    redis = connect_stream_reader(redis_url, block_seconds=0.05)
    stream = f"user-events-{uuid.uuid4().hex[:8]}"
    consumer = UserEventsConsumer(
        redis,
        db,
        DeletedUsers(),
        stream=stream,
        dead_stream=f"{stream}:dead",
        block_seconds=0.05,
        backoff_max_seconds=0.1,
        max_attempts=2,
    )
    task = asyncio.create_task(consumer.run())
    try:
        for i in range(3):
            await service.create_item(db, ItemCreate(title=f"t{i}"), 21)
        await asyncio.to_thread(own_postgres.stop)
        await redis.xadd(
            stream, {"type": "user.deleted", "user_id": "21", "event_id": uuid.uuid4().hex}
        )

        async def retried_a_few_times() -> bool:
            return sum("database unavailable" in r.getMessage() for r in caplog.records) >= 4

        await eventually(retried_a_few_times)
        # Far more attempts than max_attempts, yet an outage is no reason to give up on it.
        assert consumer.dead_lettered == 0
        assert consumer.handled == 0
        pending = await redis.xpending(stream, "items-service")  # type: ignore[no-untyped-call]
        assert pending["pending"] == 1

        await asyncio.to_thread(own_postgres.start)

        async def caught_up() -> bool:
            return consumer.handled == 1

        await eventually(caught_up)
        assert await db.fetchval("SELECT count(*) FROM items WHERE owner_id = 21") == 0
        pending = await redis.xpending(stream, "items-service")  # type: ignore[no-untyped-call]
        assert pending["pending"] == 0
        assert consumer.dead_lettered == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await close_redis(redis)
        await db.close()


async def _terminate_soon(sql: asyncpg.Connection, pid: int, yields: int) -> asyncio.Task[Any]:
    """Have the server end session ``pid`` while the caller's next query is on its way.

    Varying ``yields`` moves the moment the server's FATAL error lands relative to that query,
    which is how a PostgreSQL shutdown under load meets the pool's connections.
    """
    kill = asyncio.create_task(sql.fetchval("SELECT pg_terminate_backend($1)", pid))
    for _ in range(yields):
        await asyncio.sleep(0)
    return kill


async def test_sessions_ended_by_the_server_are_connection_errors_and_never_reused(
    database_url: str, jwks_server: JWKSServer, sql: asyncpg.Connection
) -> None:
    # One connection in the pool: a broken one handed out again would keep failing.
    settings = make_settings(database_url, jwks_server.url, db_pool_size=1, db_max_overflow=0)
    db = await Pool.from_settings(settings, application_name="items-service")
    failures: list[Exception] = []

    async def query(value: int) -> bool:
        try:
            assert await db.fetchval("SELECT $1::int", value) == value
        except Exception as exc:
            failures.append(exc)
            return False
        return True

    try:
        for i in range(120):
            kill: asyncio.Task[Any] | None = None
            try:
                async with db.connection() as conn:
                    await conn.fetchval("SELECT 1")
                    kill = await _terminate_soon(sql, conn.get_server_pid(), i % 7)
                    await conn.fetchval("SELECT $1::int", i)
            except Exception as exc:
                failures.append(exc)
            if kill is not None:
                assert await kill
            # The ended session costs at most one more failed query (when the server's
            # goodbye was still in flight); then the pool has a fresh connection.
            assert await query(i) or await query(i)
    finally:
        await db.close()
    assert failures, "the server never cut a query off"
    # Every failure is one svckit answers with a 503, never a 500.
    assert [exc for exc in failures if not is_connection_error(exc)] == []


async def test_writes_racing_a_session_ended_by_the_server_get_503_not_500(
    database_url: str, jwks_server: JWKSServer, sql: asyncpg.Connection, tokens: Tokens
) -> None:
    settings = make_settings(database_url, jwks_server.url, db_pool_size=1, db_max_overflow=0)
    statuses: Counter[int] = Counter()

    async def create(client: httpx.AsyncClient) -> int:
        response = await client.post("/items/", json={"title": "t"}, headers=tokens.headers(1))
        statuses[response.status_code] += 1
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert response.json()["code"] == "database_unavailable"
        return response.status_code

    async with serve(settings) as (_app, client):
        for i in range(60):
            assert await create(client) == 200 or await create(client) == 200
            pid = await sql.fetchval(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'items-service'"
            )
            kill = await _terminate_soon(sql, pid, i % 7)
            await create(client)
            assert await kill
    assert statuses[503] > 0, statuses
