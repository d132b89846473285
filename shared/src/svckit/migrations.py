"""Running the Alembic migrations that ship inside a service's package (no alembic.ini).

``location`` is Alembic's ``script_location`` in package form (``"items_service:migrations"``),
so the migrations are found inside an installed wheel too. The service's ``env.py`` receives
an open synchronous connection in ``config.attributes["connection"]`` and runs on it; every
function here opens (or is given) an async engine and runs Alembic in ``run_sync``, inside
one transaction, so an advisory lock ``env.py`` takes with ``pg_advisory_xact_lock`` holds
until the whole upgrade has committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from svckit.settings import asyncpg_url


def run_env(target_metadata: MetaData, *, lock_id: int) -> None:
    """The whole of a service's ``env.py``: migrate on the connection this module passed.

    A transaction-scoped advisory lock (``lock_id``, fixed per service) serialises concurrent
    runs (several replicas starting at once): the second waits, then finds the schema at head.
    Offline (``--sql``) migrations are not supported.
    """
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through svckit.migrations (an open connection)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        context.run_migrations()


def alembic_config(location: str, *, connection: Connection | None = None) -> Config:
    """An Alembic config for the migrations at ``location``, running on ``connection``."""
    config = Config()
    config.set_main_option("script_location", location)
    config.attributes["connection"] = connection
    return config


def head_revision(location: str) -> str | None:
    """The newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config(location)).get_current_head()


@asynccontextmanager
async def _engine(database: AsyncEngine | str) -> AsyncIterator[AsyncEngine]:
    if isinstance(database, AsyncEngine):
        yield database
        return
    # A one-off engine without a pool: a migration run must leave no connection behind.
    engine = create_async_engine(asyncpg_url(database), poolclass=pool.NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _run(database: AsyncEngine | str, step: Callable[[Connection], None]) -> None:
    async with _engine(database) as engine, engine.begin() as connection:
        await connection.run_sync(step)


async def upgrade(location: str, database: AsyncEngine | str, revision: str = "head") -> None:
    """Upgrade the database (an engine, or a URL) to ``revision``."""
    await _run(
        database,
        lambda sync: command.upgrade(alembic_config(location, connection=sync), revision),
    )


async def downgrade(location: str, database: AsyncEngine | str, revision: str = "base") -> None:
    """Downgrade the database (an engine, or a URL) to ``revision``."""
    await _run(
        database,
        lambda sync: command.downgrade(alembic_config(location, connection=sync), revision),
    )


async def current_revision(database: AsyncEngine | str) -> str | None:
    """The revision the database is at; ``None`` before the first migration."""
    async with _engine(database) as engine, engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
