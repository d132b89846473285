"""svckit.migrations against a real PostgreSQL, with a one-revision migrations directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from svckit import migrations
from svckit.settings import asyncpg_url

# What a service's env.py does with svckit.migrations: run on the connection it is given.
ENV = """
from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("notes")
"""


@pytest.fixture
def location(tmp_path: Path) -> str:
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "0001_notes.py").write_text(REVISION)
    return str(tmp_path)


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


def test_head_revision(location: str) -> None:
    assert migrations.head_revision(location) == "0001"


async def test_upgrade_and_downgrade_with_a_url(
    location: str, database_factory: Callable[[str], str]
) -> None:
    url = database_factory("svckit_migrations")
    assert await migrations.current_revision(url) is None
    await migrations.upgrade(location, url)
    assert await migrations.current_revision(url) == "0001"
    await migrations.downgrade(location, url, "base")
    assert await migrations.current_revision(url) is None


async def test_upgrade_and_downgrade_on_an_engine_it_leaves_open(
    location: str, database_factory: Callable[[str], str]
) -> None:
    engine = create_async_engine(asyncpg_url(database_factory("svckit_migrations")))
    try:
        await migrations.upgrade(location, engine)
        assert await _tables(engine) == {"alembic_version", "notes"}
        assert await migrations.current_revision(engine) == "0001"
        await migrations.downgrade(location, engine)
        assert await _tables(engine) == {"alembic_version"}
    finally:
        await engine.dispose()
