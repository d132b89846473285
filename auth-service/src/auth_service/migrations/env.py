"""Alembic environment for auth-service: :func:`svckit.migrations.run_env` with its schema.

Run through :mod:`svckit.migrations` (``auth-service migrate``, the tests), which passes an
open connection inside one transaction.
"""

from __future__ import annotations

from auth_service.models import Base
from svckit.migrations import run_env

MIGRATION_LOCK_ID = 0x61757468  # "auth"

run_env(Base.metadata, lock_id=MIGRATION_LOCK_ID)
