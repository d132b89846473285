"""Fixtures for auth-service tests, on real PostgreSQL and Redis (svckit's pytest plugin).

* The schema is built once by the real Alembic migrations into a *template* database (which
  also gets a signing key, so apps do not generate RSA keys per test).
* Most tests run the app on a clone of it, inside one transaction rolled back at the end
  (``database``: the app's sessions join it through savepoints).
* Tests about real concurrency, commits seen by other connections or the CLI get a fresh clone
  of their own (``fresh_database_url``), dropped at the end of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

from auth_service.app import create_app
from auth_service.db import Database
from auth_service.keys import store
from auth_service.migrations import LOCATION as MIGRATIONS
from auth_service.runtime import Runtime
from auth_service.settings import Settings
from svckit import migrations
from svckit.db import libpq_url
from svckit.settings import asyncpg_url
from svckit.testing.servers import drop_database, with_database

PASSWORD = "Corr3ct-Horse!"


class FakeClock:
    """A controllable clock: ``clock()`` is "now", ``advance()`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def unique(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def _clone(admin_url: str, template: str, name: str) -> str:
    conn = await asyncpg.connect(libpq_url(admin_url), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


@pytest.fixture(scope="session")
async def template_name(database_factory: Callable[[str], str]) -> str:
    url = asyncpg_url(database_factory("authtmpl"))
    engine = create_async_engine(url)
    try:
        await migrations.upgrade(MIGRATIONS, engine)
        async with engine.begin() as conn:
            session_factory = async_sessionmaker(bind=conn, expire_on_commit=False)
            async with session_factory() as session:
                await store.ensure_signing_key(
                    session, bits=2048, passphrase=None, now=datetime.now(UTC) - timedelta(days=1)
                )
                await session.commit()
    finally:
        await engine.dispose()
    return url.rsplit("/", 1)[1].split("?")[0]


@pytest.fixture(scope="session")
async def clone_database(
    postgres_admin_url: str, template_name: str
) -> AsyncIterator[Callable[[], Any]]:
    """``await clone_database()`` -> URL of a new database holding the migrated schema."""
    created: list[str] = []

    async def make() -> str:
        name = f"test_auth_{uuid.uuid4().hex[:12]}"
        url = await _clone(postgres_admin_url, template_name, name)
        created.append(name)
        return asyncpg_url(url)

    yield make
    for name in created:
        await drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
async def shared_database_url(clone_database: Callable[[], Any]) -> str:
    url: str = await clone_database()
    return url


@pytest.fixture(scope="session")
async def engine(shared_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(shared_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.fixture
def database(connection: AsyncConnection) -> Database:
    """The app's database, inside the test's transaction (commits become savepoints)."""
    return Database(
        async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
    )


@pytest.fixture
async def fresh_database_url(clone_database: Callable[[], Any]) -> str:
    url: str = await clone_database()
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(shared_database_url: str, redis_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": shared_database_url,
            "redis_url": redis_url,
            "bcrypt_rounds": 4,
            "background_tasks": False,
            "events_stream": unique("user-events"),
            "access_log": False,
            "log_json": False,
            "items_url": "http://127.0.0.1:9",
            "items_timeout_seconds": 0.5,
        }
        values.update(overrides)
        return Settings(**values)

    return make


AppContext = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def app_context(
    make_settings: Callable[..., Settings], clock: FakeClock, database: Database
) -> AppContext:
    """``async with app_context(**settings) as (app, client)``: a started app and a client.

    Uses the test's rolled-back transaction unless ``database=None`` is passed explicitly
    with a ``database_url`` (the app then owns a real engine).
    """

    @asynccontextmanager
    async def run(
        *, use_database: Database | bool | None = True, app_clock: Any = None, **overrides: Any
    ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        settings = make_settings(**overrides)
        db = database if use_database is True else (use_database or None)
        app = create_app(settings, clock=app_clock or clock, database=db)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
                yield app, c

    return run


@pytest.fixture
async def app(app_context: AppContext) -> AsyncIterator[FastAPI]:
    async with app_context() as (application, _):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
        yield c


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt
