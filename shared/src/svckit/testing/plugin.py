"""pytest plugin (auto-loaded through the ``pytest11`` entry point): real PostgreSQL and Redis.

Fixtures:

* ``postgres_admin_url`` — a server for this test session, resolved as ``TEST_POSTGRES_URL``,
  else a testcontainers container when a Docker engine answers, else embedded ``pgserver``.
* ``database_factory`` — ``database_factory("auth")`` creates a fresh, uniquely named database
  on that server and returns its URL; every one is dropped when the session ends.
* ``redis_url`` — ``TEST_REDIS_URL`` (flushed first: point it only at a Redis for tests),
  else a container, else an embedded ``redis-server`` that keeps nothing.

A dependency that cannot be provided is an error, never a skip: a test that needs PostgreSQL
must not pass without one.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from svckit.testing.servers import (
    Containers,
    DependencyUnavailable,
    EmbeddedPostgres,
    EmbeddedRedis,
    create_database,
    docker_available,
    drop_database,
    env_url,
)

T = TypeVar("T")
DatabaseFactory = Callable[[str], str]


def run_sync(coro_fn: Callable[[], Any]) -> Any:
    """Run a coroutine function to completion from sync code, even inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def _data_root(config: pytest.Config) -> Path:
    override = os.environ.get("SVCKIT_TEST_DATA_DIR")
    return Path(override) if override else config.rootpath / ".data" / "test"


@pytest.fixture(scope="session")
def _containers() -> Iterator[Containers | None]:
    if os.environ.get("TEST_POSTGRES_URL") and os.environ.get("TEST_REDIS_URL"):
        yield None
        return
    containers = Containers() if docker_available() else None
    yield containers
    if containers is not None:
        containers.stop()


@pytest.fixture(scope="session")
def postgres_admin_url(
    request: pytest.FixtureRequest, _containers: Containers | None
) -> Iterator[str]:
    explicit = env_url("TEST_POSTGRES_URL")
    if explicit:
        yield explicit
        return
    if _containers is not None:
        yield _containers.postgres()
        return
    embedded = EmbeddedPostgres(_data_root(request.config) / "postgres")
    try:
        url = embedded.start()
    except DependencyUnavailable as exc:
        pytest.fail(f"PostgreSQL for tests is unavailable: {exc}", pytrace=False)
    yield url
    embedded.stop()


@pytest.fixture(scope="session")
def database_factory(postgres_admin_url: str) -> Iterator[DatabaseFactory]:
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"test_{prefix}_{uuid.uuid4().hex[:10]}"
        url = run_sync(lambda: create_database(postgres_admin_url, name))
        created.append(name)
        return str(url)

    yield make
    async def drop_all() -> None:
        for name in created:
            await drop_database(postgres_admin_url, name)

    run_sync(drop_all)


@pytest.fixture(scope="session")
def redis_url(_containers: Containers | None) -> Iterator[str]:
    explicit = env_url("TEST_REDIS_URL")
    if explicit:
        import redis

        client = redis.Redis.from_url(explicit, socket_timeout=5)
        try:
            client.flushdb()
        except redis.RedisError as exc:
            pytest.fail(f"TEST_REDIS_URL does not answer: {exc}", pytrace=False)
        finally:
            client.close()
        yield explicit
        return
    if _containers is not None:
        yield _containers.redis()
        return
    embedded = EmbeddedRedis()
    try:
        url = embedded.start()
    except DependencyUnavailable as exc:
        pytest.fail(f"Redis for tests is unavailable: {exc}", pytrace=False)
    yield url
    embedded.stop()
