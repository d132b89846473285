"""Alembic environment: runs the migrations on the connection ``svckit.migrations`` opened.

``items-service migrate`` (``items_service.cli``) and the tests run the migrations through
:mod:`svckit.migrations`, which passes an open connection in
``config.attributes["connection"]``, inside a transaction. A transaction-scoped advisory lock
serialises concurrent runs (several replicas starting at once): the second waits, then finds
the schema already at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from items_service.models import Base

# Arbitrary, fixed: "items-service migrations".
MIGRATION_LOCK_KEY = 0x17E45_0001

config = context.config
target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
_connection = config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("items-service migrations run through svckit.migrations (a connection)")
run_migrations(_connection)
