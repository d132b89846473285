"""The migrations against an empty database: upgrade, downgrade, upgrade again, and the models
agree with them (autogenerate finds nothing to do)."""

from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from auth_service import migrator
from auth_service.models import Base
from svckit.settings import asyncpg_url

TABLES = {
    "users",
    "signing_keys",
    "refresh_families",
    "refresh_tokens",
    "outbox_events",
    "oauth_clients",
    "revoked_access_tokens",
    "mfa_totp",
    "mfa_recovery_codes",
    "mfa_challenges",
    "account_tokens",
    "mail_outbox",
}


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def model_diff(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"compare_type": True, "compare_server_default": True}
                ),
                Base.metadata,
            )
        )


async def test_upgrade_downgrade_upgrade_and_no_model_drift(
    database_factory: Callable[[str], str],
) -> None:
    engine = create_async_engine(asyncpg_url(database_factory("authmig")))
    try:
        assert await tables(engine) == set()
        await migrator.upgrade(engine)
        assert await migrator.current_revision(engine) == "0004"
        assert await tables(engine) == TABLES | {"alembic_version"}
        assert await model_diff(engine) == []

        await migrator.downgrade(engine, "base")
        assert await migrator.current_revision(engine) is None
        assert await tables(engine) == {"alembic_version"}

        await migrator.upgrade(engine)
        assert await model_diff(engine) == []
    finally:
        await engine.dispose()
