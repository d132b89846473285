"""Alembic environment for items-service: :func:`svckit.migrations.run_env` with its schema.

Run through :mod:`svckit.migrations` (``items-service migrate``, the tests), which passes an
open connection inside one transaction.
"""

from __future__ import annotations

from items_service.models import Base
from svckit.migrations import run_env

# Arbitrary, fixed: "items-service migrations".
MIGRATION_LOCK_KEY = 0x17E45_0001

run_env(Base.metadata, lock_id=MIGRATION_LOCK_KEY)
