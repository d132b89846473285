"""Alembic environment for auth-service.

Run through :mod:`svckit.migrations` (the ``auth-service migrate`` command or tests), which
passes either an open connection (``config.attributes["connection"]``) or a database URL
(``config.attributes["database_url"]``). A transaction-level advisory lock makes concurrent
migrations from several replicas wait for each other instead of racing.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from auth_service.models import Base

MIGRATION_LOCK_ID = 0x61757468  # "auth"

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url")
    if not url:
        raise RuntimeError("auth-service migrations need a connection or a database URL")
    asyncio.run(_run_with_url(url))


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
