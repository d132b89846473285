"""Alembic: upgrade, downgrade, the CLI, and models that match the migrations exactly."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from items_service import cli
from items_service.migrations import LOCATION as MIGRATIONS
from items_service.models import Base
from svckit import migrations
from svckit.db import libpq_url
from svckit.settings import asyncpg_url

from .conftest import run_in_thread


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


def _head() -> str:
    head = migrations.head_revision(MIGRATIONS)
    assert head is not None
    return head


async def test_models_match_migrations(template_database_url: str) -> None:
    engine = create_async_engine(asyncpg_url(template_database_url))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "compare_server_default": True}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_upgrade_downgrade_upgrade(database_factory: object) -> None:
    url = database_factory("items_migrations")  # type: ignore[operator]
    await migrations.upgrade(MIGRATIONS, url)
    assert {"items", "item_count_shards", "owner_item_counts", "deleted_users"} <= await _tables(
        url
    )
    assert await migrations.current_revision(url) == _head()
    await migrations.downgrade(MIGRATIONS, url, "base")
    assert await _tables(url) == {"alembic_version"}
    assert await migrations.current_revision(url) is None
    await migrations.upgrade(MIGRATIONS, url)
    assert "items" in await _tables(url)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    # The CLI configures the root logger; give pytest its handlers back afterwards.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
async def test_cli_migrate_reads_the_database_url_from_settings(
    database_factory: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database_factory("items_cli")  # type: ignore[operator]
    monkeypatch.setenv("ITEMS_DATABASE_URL", url)
    monkeypatch.setenv("ITEMS_LOG_JSON", "false")
    assert run_in_thread(cli.main, ["migrate"]) == 0
    assert run_in_thread(cli.main, ["migrate"]) == 0  # idempotent
    conn = await asyncpg.connect(libpq_url(url))
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == _head()
    finally:
        await conn.close()


async def test_concurrent_migrations_are_serialised(database_factory: object) -> None:
    # Replicas starting together each run "items-service migrate"; the advisory lock in
    # env.py makes the later ones wait and then find the schema at head.
    url = database_factory("items_concurrent")  # type: ignore[operator]
    env = {**os.environ, "ITEMS_DATABASE_URL": url, "ITEMS_LOG_JSON": "false"}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "items_service.cli",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    async with asyncio.timeout(120):
        results = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    assert "items" in await _tables(url)
