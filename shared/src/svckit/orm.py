"""SQLAlchemy for the services that use the ORM (auth-service); :mod:`svckit.db` is the rest.

* :func:`create_engine` builds an asyncpg engine with connect and statement timeouts, so a
  database outage gives quick errors instead of hangs, and ``pool_pre_ping`` so the pool
  recovers by itself when the database comes back.
* :func:`session_scope` is the one unit of work per request: it commits on success and rolls
  back on error. Service functions only ``flush()``.
* :func:`install_orm_error_handler` adds SQLAlchemy's wrappers of connection failures to the
  503 answer of :func:`svckit.db.install_database_error_handler`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from svckit import db
from svckit.db import CONNECTION_ERRORS, server_settings

# Deterministic constraint names, so migrations can refer to them (and autogenerate agrees).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def naming_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 5,
    connect_timeout: float = 3.0,
    statement_timeout_ms: int = 15_000,
    application_name: str = "service",
    **kwargs: Any,
) -> AsyncEngine:
    settings = server_settings(application_name, statement_timeout_ms)
    return _create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout, "server_settings": settings},
        **kwargs,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed if the block succeeds, rolled back if it raises."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def is_connection_error(exc: BaseException) -> bool:
    """:func:`svckit.db.is_connection_error`, and SQLAlchemy's wrappers of such failures."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy's dialect recognised a disconnect
            return True
        orig = getattr(exc.orig, "__cause__", None) or exc.orig
        return isinstance(orig, CONNECTION_ERRORS) or isinstance(exc.orig, CONNECTION_ERRORS)
    return db.is_connection_error(exc)


def install_orm_error_handler(app: FastAPI) -> None:
    """503 for SQLAlchemy's connection failures too (after ``install_common``)."""
    handler = db.database_error_handler(is_connection_error)
    for exc_type in (DBAPIError, PoolTimeoutError, OSError, *CONNECTION_ERRORS):
        app.add_exception_handler(exc_type, handler)
