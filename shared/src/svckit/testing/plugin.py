"""pytest plugin (auto-loaded through the ``pytest11`` entry point): real PostgreSQL and Redis.

Fixtures:

* ``postgres_admin_url`` — a server for this test session, resolved as ``TEST_POSTGRES_URL``,
  else a testcontainers container when a Docker engine answers, else embedded ``pgserver``.
* ``database_factory`` — ``database_factory("auth")`` creates a fresh, uniquely named database
  on that server and returns its URL; every one is dropped when the session ends.
* ``redis_url`` — ``TEST_REDIS_URL`` (flushed first: point it only at a Redis for tests),
  else a container, else an embedded ``redis-server`` that keeps nothing.

The order is decided by :func:`resolve_postgres` / :func:`resolve_redis`, pure functions of the
environment. A dependency that cannot be provided is an error, never a skip (in CI and
everywhere else): a test that needs PostgreSQL must not pass without one.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest

from svckit.db import libpq_url
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

DatabaseFactory = Callable[[str], str]
POSTGRES_ENV = "TEST_POSTGRES_URL"
REDIS_ENV = "TEST_REDIS_URL"


@dataclass(frozen=True)
class Resolution:
    """Where a test dependency comes from: ``url`` is set only for ``source == "env"``."""

    source: Literal["env", "container", "embedded"]
    url: str | None = None


def _resolve(
    variable: str, environ: Mapping[str, str] | None, docker: Callable[[], bool]
) -> Resolution:
    explicit = env_url(variable, environ=environ)
    if explicit:
        return Resolution("env", explicit)
    if docker():  # only asked when no URL is given: the probe costs up to 2 s
        return Resolution("container")
    return Resolution("embedded")


def resolve_postgres(
    environ: Mapping[str, str] | None = None, *, docker: Callable[[], bool] = docker_available
) -> Resolution:
    """``TEST_POSTGRES_URL``, else a container if Docker answers, else embedded pgserver."""
    return _resolve(POSTGRES_ENV, environ, docker)


def resolve_redis(
    environ: Mapping[str, str] | None = None, *, docker: Callable[[], bool] = docker_available
) -> Resolution:
    """``TEST_REDIS_URL``, else a container if Docker answers, else embedded redis-server."""
    return _resolve(REDIS_ENV, environ, docker)


@functools.cache
def _docker_answers() -> bool:
    return docker_available()


_SOURCES = {
    "env": "the URL in {variable}",
    "container": "a testcontainers container",
    "embedded": "an embedded server",
}


def pytest_report_header(config: pytest.Config) -> str:
    """Where this run's PostgreSQL and Redis come from, at the top of every run's output, so a
    log shows which path (CI's machine servers, testcontainers, embedded) was tested."""
    postgres = resolve_postgres(docker=_docker_answers).source
    redis = resolve_redis(docker=_docker_answers).source
    return (
        f"svckit test servers: PostgreSQL from {_SOURCES[postgres].format(variable=POSTGRES_ENV)}"
        f", Redis from {_SOURCES[redis].format(variable=REDIS_ENV)}"
    )


def run_sync(coro_fn: Callable[[], Any]) -> Any:
    """Run a coroutine function to completion from sync code, even inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def _data_root(config: pytest.Config) -> Path:
    override = os.environ.get("SVCKIT_TEST_DATA_DIR")
    return Path(override) if override else config.rootpath / ".data" / "test"


async def _postgres_answers(url: str) -> None:
    conn = await asyncpg.connect(libpq_url(url), timeout=5)
    await conn.close()


@pytest.fixture(scope="session")
def _containers() -> Iterator[Containers]:
    containers = Containers()  # starts nothing until a fixture asks for a container
    yield containers
    containers.stop()


@pytest.fixture(scope="session")
def postgres_admin_url(request: pytest.FixtureRequest, _containers: Containers) -> Iterator[str]:
    resolution = resolve_postgres(docker=_docker_answers)
    if resolution.source == "env":
        assert resolution.url is not None
        try:
            run_sync(lambda: _postgres_answers(str(resolution.url)))
        except Exception as exc:
            pytest.fail(f"{POSTGRES_ENV} does not answer: {exc!r}", pytrace=False)
        yield resolution.url
        return
    if resolution.source == "container":
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
def redis_url(_containers: Containers) -> Iterator[str]:
    resolution = resolve_redis(docker=_docker_answers)
    if resolution.source == "env":
        assert resolution.url is not None
        import redis

        client = redis.Redis.from_url(resolution.url, socket_timeout=5)
        try:
            client.flushdb()
        except redis.RedisError as exc:
            pytest.fail(f"{REDIS_ENV} does not answer: {exc}", pytrace=False)
        finally:
            client.close()
        yield resolution.url
        return
    if resolution.source == "container":
        yield _containers.redis()
        return
    embedded = EmbeddedRedis()
    try:
        url = embedded.start()
    except DependencyUnavailable as exc:
        pytest.fail(f"Redis for tests is unavailable: {exc}", pytrace=False)
    yield url
    embedded.stop()
