"""Async SQLAlchemy plumbing shared by the services.

* :func:`create_engine` builds an asyncpg engine with connect and statement timeouts, so a
  database outage gives quick errors instead of hangs, and ``pool_pre_ping`` so the pool
  recovers by itself when the database comes back.
* :func:`session_scope` is the one unit of work per request: it commits on success and rolls
  back on error. Service functions only ``flush()``.
* :func:`install_database_error_handler` turns connection-level failures into a 503 in the
  error envelope; no SQL or driver message ever reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from svckit.errors import error_response

logger = logging.getLogger("svckit.db")

# PostgreSQL bigint: the largest id a row, a path or a token's ``sub`` may carry.
BIGINT_MAX = 2**63 - 1


def libpq_url(url: str) -> str:
    """``url`` with any SQLAlchemy driver suffix removed, as asyncpg and libpq expect it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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
    server_settings = {"application_name": application_name}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    return _create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout, "server_settings": server_settings},
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


# Errors that mean "the database cannot be reached or the connection broke", not bad data.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    PoolTimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # asyncpg's protocol fell out of step with the server, as when the server ends the session
    # between two operations ("cannot switch to state ...; another operation is in progress")
    asyncpg.exceptions.InternalClientError,
    # the service's own database or role is missing: unavailable to it, not a bug per request
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a connectivity failure."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy's dialect recognised a disconnect
            return True
        orig = getattr(exc.orig, "__cause__", None) or exc.orig
        return isinstance(orig, CONNECTION_ERRORS) or isinstance(exc.orig, CONNECTION_ERRORS)
    return isinstance(exc, CONNECTION_ERRORS)


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_connection_error(exc):
        logger.warning("database unavailable", extra={"error": type(exc).__name__})
        return error_response(
            request,
            503,
            "The database is unavailable; try again shortly",
            code="database_unavailable",
            headers={"Retry-After": "2"},
        )
    logger.error("database error", exc_info=exc)
    return error_response(request, 500, "Internal server error")


def install_database_error_handler(app: FastAPI) -> None:
    """Answer 503 (not 500, not a hang) while the database is unreachable."""
    for exc_type in (DBAPIError, PoolTimeoutError, OSError, *CONNECTION_ERRORS):
        app.add_exception_handler(exc_type, _database_error_handler)
