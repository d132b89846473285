"""Database plumbing against a real PostgreSQL (the plugin's database_factory)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from svckit_support import client_for, service_app

from svckit import db
from svckit.db import Pool
from svckit.orm import (
    create_engine,
    create_sessionmaker,
    install_orm_error_handler,
    is_connection_error,
    naming_metadata,
    session_scope,
)
from svckit.settings import asyncpg_url
from svckit.testing.servers import free_port

metadata = naming_metadata()
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(50), nullable=False, unique=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id"), index=True),
    sa.CheckConstraint("length(title) > 0", name="title_not_empty"),
)
owners = sa.Table("owners", metadata, sa.Column("id", sa.Integer, primary_key=True))


@pytest.fixture(scope="module")
async def engine(database_factory: Any) -> AsyncIterator[AsyncEngine]:
    url = asyncpg_url(database_factory("svckit_db"))
    engine = create_engine(url, pool_size=2, application_name="svckit-tests")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE notes, owners"))


def unreachable_engine() -> AsyncEngine:
    # a port nothing listens on: connection refused at once
    return create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", connect_timeout=1
    )


async def test_naming_convention(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'notes'::regclass ORDER BY 1"
            )
        )
        names = set(rows.scalars())
        index = await conn.scalar(
            sa.text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_%'")
        )
    assert names == {
        "pk_notes",
        "uq_notes_title",
        "fk_notes_owner_id_owners",
        "ck_notes_title_not_empty",
    }
    assert index == "ix_notes_owner_id"


async def test_engine_settings_reach_the_server(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SHOW application_name")) == "svckit-tests"
        assert await conn.scalar(sa.text("SHOW statement_timeout")) == "15s"


async def test_session_scope_commits(engine: AsyncEngine, clean: None) -> None:
    factory = create_sessionmaker(engine)
    async with session_scope(factory) as session:
        await session.execute(notes.insert().values(id=1, title="kept"))
    async with factory() as session:
        assert await session.scalar(sa.select(notes.c.title)) == "kept"


async def test_session_scope_rolls_back_on_error(engine: AsyncEngine, clean: None) -> None:
    factory = create_sessionmaker(engine)

    async def failing_unit() -> None:
        async with session_scope(factory) as session:
            await session.execute(notes.insert().values(id=1, title="lost"))
            await session.flush()
            raise RuntimeError("after the flush")

    with pytest.raises(RuntimeError):
        await failing_unit()
    async with factory() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(notes)) == 0


async def test_session_scope_rolls_back_on_database_error(engine: AsyncEngine, clean: None) -> None:
    factory = create_sessionmaker(engine)

    async def duplicate_unit() -> None:
        async with session_scope(factory) as session:
            await session.execute(notes.insert().values(id=1, title="a"))
            await session.execute(notes.insert().values(id=2, title="a"))

    with pytest.raises(IntegrityError) as caught:
        await duplicate_unit()
    assert not is_connection_error(caught.value)
    async with factory() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(notes)) == 0


async def test_sessions_keep_attributes_after_commit(engine: AsyncEngine) -> None:
    factory = create_sessionmaker(engine)
    async with factory() as session:
        assert session.sync_session.expire_on_commit is False


async def select_one(engine: AsyncEngine, sql: str = "SELECT 1") -> None:
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


async def test_unreachable_database_is_a_connection_error() -> None:
    with pytest.raises(ConnectionRefusedError) as caught:
        await select_one(unreachable_engine())
    assert is_connection_error(caught.value)


@pytest.mark.parametrize(
    ("database", "username"),
    [("svckit_no_such_db", None), (None, "svckit_no_such_role")],
    ids=["missing-database", "missing-role"],
)
async def test_missing_database_or_role_is_a_connection_error(
    engine: AsyncEngine, database: str | None, username: str | None
) -> None:
    url = engine.url.set(
        database=database or engine.url.database, username=username or engine.url.username
    )
    url_text = url.render_as_string(hide_password=False)
    with pytest.raises(DBAPIError) as caught:
        await select_one(create_engine(url_text))
    assert is_connection_error(caught.value)


async def test_statement_timeout_counts_as_unavailable(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with pytest.raises(DBAPIError) as caught:
        await select_one(create_engine(url, statement_timeout_ms=50), "SELECT pg_sleep(2)")
    assert is_connection_error(caught.value)


async def test_connection_killed_mid_session_is_a_connection_error(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        async with engine.connect() as admin:
            await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as caught:
            await conn.execute(sa.text("SELECT 1"))
    assert is_connection_error(caught.value)
    async with engine.connect() as conn:  # pre-ping: the pool recovers by itself
        assert await conn.scalar(sa.text("SELECT 1")) == 1


@pytest.mark.parametrize("exc", [ValueError("x"), KeyError("k"), RuntimeError("r")])
def test_other_errors_are_not_connection_errors(exc: Exception) -> None:
    assert not is_connection_error(exc)


def build_app(engine: AsyncEngine) -> FastAPI:
    app = service_app()
    install_orm_error_handler(app)  # as auth-service adds to install_common's handlers
    factory = create_sessionmaker(engine)

    @app.get("/count")
    async def count() -> dict[str, int]:
        async with session_scope(factory) as session:
            total = await session.scalar(sa.select(sa.func.count()).select_from(notes))
        return {"count": int(total or 0)}

    @app.post("/duplicate")
    async def duplicate() -> None:
        async with session_scope(factory) as session:
            await session.execute(notes.insert().values(id=1, title="dup"))
            await session.execute(notes.insert().values(id=2, title="dup"))

    return app


async def test_unreachable_database_is_503_envelope() -> None:
    engine = unreachable_engine()
    started = time.perf_counter()
    async with client_for(build_app(engine)) as client:
        response = await client.get("/count", headers={"X-Request-ID": "db-down"})
    assert time.perf_counter() - started < 3
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["code"] == "database_unavailable"
    assert body["request_id"] == "db-down"
    assert "127.0.0.1" not in response.text
    await engine.dispose()


async def test_reachable_database_answers(engine: AsyncEngine, clean: None) -> None:
    async with client_for(build_app(engine)) as client:
        response = await client.get("/count")
    assert response.json() == {"count": 0}


async def test_data_error_is_500_envelope_without_sql(engine: AsyncEngine, clean: None) -> None:
    async with client_for(build_app(engine)) as client:
        response = await client.post("/duplicate")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    for leak in ("INSERT", "notes", "uq_notes_title", "duplicate key", "asyncpg"):
        assert leak not in response.text


# ------------------------------------------------------------------ Pool (raw asyncpg)


async def test_pool_is_configured_like_the_engine(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    pool = await Pool.open(url, pool_size=1, max_overflow=1, application_name="svckit-pool")
    try:
        assert await pool.ping()
        assert await pool.fetchval("SHOW application_name") == "svckit-pool"
        assert await pool.fetchval("SHOW statement_timeout") == "15s"
        assert [r["n"] for r in await pool.fetch("SELECT generate_series(1, 2) AS n")] == [1, 2]
        row = await pool.fetchrow("SELECT 7 AS n")
        assert row is not None
        assert row["n"] == 7
    finally:
        await pool.close()


async def test_pool_starts_without_a_database_and_fails_fast() -> None:
    pool = await Pool.open(f"postgresql://postgres@127.0.0.1:{free_port()}/none", connect_timeout=1)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError) as caught:
            await pool.ping()
        assert time.monotonic() - started < 5
        assert db.is_connection_error(caught.value)
    finally:
        await pool.close()


async def test_pool_statement_timeout_counts_as_unavailable(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    pool = await Pool.open(url, statement_timeout_ms=50)
    try:
        with pytest.raises(asyncpg.exceptions.QueryCanceledError) as caught:
            await pool.fetchval("SELECT pg_sleep(2)")
        assert is_connection_error(caught.value)
    finally:
        await pool.close()


async def test_pool_waits_are_bounded_only_when_every_connection_is_out(
    engine: AsyncEngine,
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    pool = await Pool.open(url, pool_size=1, max_overflow=0, connect_timeout=0.5)
    try:
        for _ in range(2):  # the count of checkouts is right again after a wait that failed
            async with pool.connection():
                started = time.monotonic()
                with pytest.raises(TimeoutError):  # the pool's, or this test's if it hangs
                    await asyncio.wait_for(pool.fetchval("SELECT 1"), 5)
                assert 0.4 < time.monotonic() - started < 3
            assert await pool.fetchval("SELECT 1") == 1
        # A checkout that waits gets the connection once it comes back, within the bound.
        async with pool.connection() as held:
            waiting = asyncio.ensure_future(pool.fetchval("SELECT 2"))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            assert await held.fetchval("SELECT 1") == 1
        assert await waiting == 2
    finally:
        await pool.close()


async def test_a_connection_out_of_step_is_never_reused(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    pool = await Pool.open(url, pool_size=1, max_overflow=0)
    try:
        broken: list[int] = []

        async def out_of_step() -> None:
            async with pool.connection() as conn:
                broken.append(conn.get_server_pid())
                raise asyncpg.exceptions.InternalClientError("cannot switch to state 15")

        with pytest.raises(asyncpg.exceptions.InternalClientError):
            await out_of_step()
        async with pool.connection() as conn:
            assert conn.get_server_pid() not in broken
            healthy = conn.get_server_pid()
        assert await pool.fetchval("SELECT pg_backend_pid()") == healthy
    finally:
        await pool.close()


def test_the_pool_side_carries_no_orm() -> None:
    # Each items-service worker imports svckit.db and svckit.app: SQLAlchemy would cost it
    # ~14 MB of memory for nothing.
    code = "import sys, svckit.app, svckit.db; print('sqlalchemy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_libpq_url_keeps_everything_but_the_driver() -> None:
    url = "postgresql+asyncpg://u:p%40ss@h:5433/db?host=%2Frun%2Fpg"
    assert db.libpq_url(url) == "postgresql://u:p%40ss@h:5433/db?host=%2Frun%2Fpg"
    assert db.libpq_url("postgresql://h/db") == "postgresql://h/db"
    with pytest.raises(ValueError, match="PostgreSQL URL"):
        db.libpq_url("not a url")
