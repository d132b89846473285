"""The pytest plugin: real PostgreSQL and Redis, resolved env > container > embedded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from svckit.db import libpq_url
from svckit.testing.plugin import Resolution, resolve_postgres, resolve_redis
from svckit.testing.servers import free_port


async def test_postgres_admin_url_answers(postgres_admin_url: str) -> None:
    conn = await asyncpg.connect(libpq_url(postgres_admin_url))
    try:
        version = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert int(version) >= 150000


async def test_database_factory_gives_fresh_working_databases(database_factory: Any) -> None:
    first, second = database_factory("plugin"), database_factory("plugin")
    assert first != second
    for url in (first, second):
        conn = await asyncpg.connect(libpq_url(url))
        try:
            name = await conn.fetchval("SELECT current_database()")
            assert name.startswith("test_plugin_")
            tables = await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )
            assert tables == 0  # fresh
            await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            await conn.execute("INSERT INTO t VALUES (1, $1)", name)
            assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == name
        finally:
            await conn.close()


async def test_redis_url_answers(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set("svckit:test", "value", ex=60)
        assert await client.get("svckit:test") == b"value"
    finally:
        await client.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5


def never_docker() -> bool:
    raise AssertionError("docker must not be probed when a URL is given")


@pytest.mark.parametrize(
    ("resolve", "variable"),
    [(resolve_postgres, "TEST_POSTGRES_URL"), (resolve_redis, "TEST_REDIS_URL")],
)
def test_resolution_order(resolve: Any, variable: str) -> None:
    assert resolve({variable: " url://x "}, docker=never_docker) == Resolution("env", "url://x")
    assert resolve({}, docker=lambda: True) == Resolution("container")
    assert resolve({variable: "   "}, docker=lambda: True) == Resolution("container")
    assert resolve({}, docker=lambda: False) == Resolution("embedded")
    other = "TEST_REDIS_URL" if variable == "TEST_POSTGRES_URL" else "TEST_POSTGRES_URL"
    assert resolve({other: "url://y"}, docker=lambda: False) == Resolution("embedded")


def test_resolution_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_POSTGRES_URL", "postgresql://ci@127.0.0.1:5432/postgres")
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    assert resolve_postgres(docker=never_docker) == Resolution(
        "env", "postgresql://ci@127.0.0.1:5432/postgres"
    )
    assert resolve_redis(docker=lambda: False) == Resolution("embedded")


# --------------------------------------------------------------------------- in a child pytest

CHILD_TESTS = textwrap.dedent(
    """
    import asyncio

    import asyncpg
    import redis

    from svckit.db import libpq_url


    def test_postgres(database_factory):
        async def check(url):
            conn = await asyncpg.connect(libpq_url(url))
            try:
                return await conn.fetchval("SELECT 41 + 1")
            finally:
                await conn.close()

        assert asyncio.run(check(database_factory("child"))) == 42


    def test_redis(redis_url):
        client = redis.Redis.from_url(redis_url)
        assert client.ping()
        client.close()
    """
)


def run_child(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_child.py").write_text(CHILD_TESTS)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    child_env.update(env, SVCKIT_TEST_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_explicit_urls_are_used(tmp_path: Path, postgres_admin_url: str, redis_url: str) -> None:
    """The CI path (the machine's own servers), pointed here at this session's servers."""
    result = run_child(tmp_path, TEST_POSTGRES_URL=postgres_admin_url, TEST_REDIS_URL=redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert not (tmp_path / "data").exists()  # nothing embedded was started


def test_the_report_header_names_where_the_servers_come_from(
    tmp_path: Path, postgres_admin_url: str, redis_url: str
) -> None:
    """The header (shown without -q, as CI runs) says which path was tested."""
    (tmp_path / "test_child.py").write_text(CHILD_TESTS)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    child_env.update(TEST_POSTGRES_URL=postgres_admin_url, TEST_REDIS_URL=redis_url)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "svckit test servers: PostgreSQL from the URL in TEST_POSTGRES_URL, "
        "Redis from the URL in TEST_REDIS_URL"
    ) in result.stdout


def test_unreachable_explicit_urls_fail_never_skip(tmp_path: Path) -> None:
    closed = free_port()
    result = run_child(
        tmp_path,
        CI="true",
        TEST_POSTGRES_URL=f"postgresql://postgres@127.0.0.1:{closed}/postgres",
        TEST_REDIS_URL=f"redis://127.0.0.1:{closed}/0",
    )
    assert result.returncode != 0
    assert "TEST_POSTGRES_URL does not answer" in result.stdout
    assert "TEST_REDIS_URL does not answer" in result.stdout
    assert "skipped" not in result.stdout
    assert "2 errors" in result.stdout
