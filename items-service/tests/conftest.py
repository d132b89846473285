"""Fixtures: a migrated database per test, a real JWKS server, tokens, the app and a client.

Every test gets its own database, cloned from a template built once per session by the real
Alembic migrations (``CREATE DATABASE ... TEMPLATE`` takes ~30 ms), so tests never clean up
rows and can assert exact totals. PostgreSQL and Redis are real (svckit's pytest plugin).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from items_service.app import create_app
from items_service.migrations import LOCATION as MIGRATIONS
from items_service.settings import Settings
from svckit import migrations
from svckit.db import libpq_url
from svckit.testing.keys import JWKSServer, SigningKey, access_claims
from svckit.testing.servers import with_database

ISSUER = "https://auth.items-tests.example"
AUDIENCE = "api"


def run_in_thread(fn: Any, *args: Any) -> Any:
    """Run blocking ``fn`` (the CLI runs its own event loop) off the test's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


@pytest.fixture(scope="session")
async def template_database_url(database_factory: Any) -> str:
    url: str = database_factory("items_template")
    await migrations.upgrade(MIGRATIONS, url)
    return url


@pytest.fixture
async def database_url(template_database_url: str, postgres_admin_url: str) -> AsyncIterator[str]:
    template = make_url(template_database_url).database
    name = f"test_items_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(libpq_url(postgres_admin_url), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    yield with_database(postgres_admin_url, name)
    admin = await asyncpg.connect(libpq_url(postgres_admin_url), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, to check what the service wrote."""
    conn = await asyncpg.connect(libpq_url(database_url), timeout=10)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def jwks_server(signing_key: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer(keys=[signing_key]).start()
    yield server
    server.stop()


@dataclass
class Tokens:
    """Signs access tokens the way auth-service does."""

    key: SigningKey

    def token(self, user_id: int, *, admin: bool = False, **claims: Any) -> str:
        body = access_claims(
            issuer=ISSUER, audience=AUDIENCE, sub=str(user_id), roles=["admin"] if admin else []
        )
        body.update(claims)
        return self.key.sign(body)

    def headers(self, user_id: int, *, admin: bool = False, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, admin=admin, **claims)}"}


@pytest.fixture
def tokens(signing_key: SigningKey) -> Tokens:
    return Tokens(signing_key)


def make_settings(database_url: str, jwks_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "jwks_url": jwks_url,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "events_enabled": False,
        "log_json": False,
        "access_log": False,
        "db_connect_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, jwks_server: JWKSServer) -> Settings:
    return make_settings(database_url, jwks_server.url)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and a client talking to it in-process."""
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://items.test") as client:
            yield app, client


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with serve(settings) as pair:
        yield pair


@pytest.fixture
def app(app_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return app_client[0]


@pytest.fixture
def client(app_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_client[1]


async def create_item(
    client: httpx.AsyncClient, tokens: Tokens, owner: int, title: str = "thing", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/items/", json={"title": title, **fields}, headers=tokens.headers(owner)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check()`` (state outside this process: no event to wait on) until it is true."""
    interval = 0.02
    for _ in range(int(timeout / interval)):
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"still not true after {timeout} s")
