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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis
from conftest import Tokens, eventually, make_settings, run_in_thread, serve

from items_service.auth import DeletedUsers
from items_service.cli import upgrade
from items_service.db import Database
from items_service.events import UserEventsConsumer
from items_service.items import service
from items_service.items.schemas import ItemCreate
from svckit.testing.keys import JWKSServer
from svckit.testing.servers import create_database


@dataclass
class OwnPostgres:
    server: Any

    @property
    def admin_url(self) -> str:
        socket_dir = self.server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/postgres?host={quote(str(socket_dir))}"

    def stop(self) -> None:
        from pgserver import pg_ctl

        pg_ctl(
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
        from pgserver import get_server

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
    run_in_thread(upgrade, url)
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
    caplog.set_level(logging.WARNING, logger="items_service.events")
    url = await _fresh_database(own_postgres)
    db = await Database.open(
        make_settings(url, "http://127.0.0.1:9/jwks", db_connect_timeout_seconds=1)
    )
    redis = aioredis.Redis.from_url(redis_url, protocol=2)
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
        assert (await redis.xpending(stream, "items-service"))["pending"] == 1

        await asyncio.to_thread(own_postgres.start)

        async def caught_up() -> bool:
            return consumer.handled == 1

        await eventually(caught_up)
        assert await db.fetchval("SELECT count(*) FROM items WHERE owner_id = 21") == 0
        assert (await redis.xpending(stream, "items-service"))["pending"] == 0
        assert consumer.dead_lettered == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()
        await db.close()
