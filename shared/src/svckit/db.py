"""The database plumbing every service shares (the ORM side is :mod:`svckit.orm`).

* :class:`Pool` is a raw asyncpg pool with bounded waits, for a hot path that runs single
  prepared statements without an ORM session (items-service).
* :func:`is_connection_error` and :func:`install_database_error_handler` turn connection-level
  failures into a 503 in the error envelope; no SQL or driver message ever reaches a client.
* Nothing here imports SQLAlchemy: a service that does not use the ORM does not carry it in
  memory (each worker process would).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from svckit.errors import error_response
from svckit.settings import ServiceSettings

logger = logging.getLogger("svckit.db")

# PostgreSQL bigint: the largest id a row, a path or a token's ``sub`` may carry.
BIGINT_MAX = 2**63 - 1


def libpq_url(url: str) -> str:
    """``url`` with any SQLAlchemy driver suffix removed, as asyncpg and libpq expect it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must be a PostgreSQL URL (postgresql://...)")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def server_settings(application_name: str, statement_timeout_ms: int) -> dict[str, str]:
    settings = {"application_name": application_name}
    if statement_timeout_ms:
        settings["statement_timeout"] = str(statement_timeout_ms)
    return settings


async def _reset(connection: asyncpg.Connection) -> None:
    # asyncpg already rolls back an open transaction before calling this. Its default reset
    # ("RESET ALL; UNLISTEN *; ...") would cost a round trip per checkout for state that a
    # hot path running single statements never changes.
    return None


class Pool:
    """A pool of asyncpg connections with bounded waits, for a hot path without an ORM.

    Built like :func:`create_engine` (URL, pool sizes, timeouts, ``application_name``) and with
    the same ``ping()``/``close()``, for a service whose requests are single SQL statements
    (an implicit transaction each) and for which an ORM session per request costs too much
    CPU. A connection is held only for the duration of a query.

    Outages: the pool starts empty (the service starts without a database), connection
    attempts and pool waits are bounded by ``connect_timeout`` and every query by the
    statement timeout, so an unreachable database gives quick errors that
    :func:`install_database_error_handler` turns into 503s; a broken connection is discarded
    and the next checkout reconnects, so the service recovers by itself.
    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float, size: int) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.size = size
        # Checkouts under way through :meth:`connection`, waiting ones included.
        self._checkouts = 0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 5,
        connect_timeout: float = 3.0,
        statement_timeout_ms: int = 15_000,
        application_name: str = "service",
    ) -> Pool:
        # Client-side backstop for a server that stops answering mid-query.
        command_timeout = statement_timeout_ms / 1000 + 2 if statement_timeout_ms else None
        pool = await asyncpg.create_pool(
            libpq_url(url),
            min_size=0,
            max_size=pool_size + max_overflow,
            max_inactive_connection_lifetime=300,
            reset=_reset,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=server_settings(application_name, statement_timeout_ms),
        )
        return cls(pool, acquire_timeout=connect_timeout, size=pool_size + max_overflow)

    @classmethod
    async def from_settings(cls, settings: ServiceSettings, *, application_name: str) -> Pool:
        """The pool the ``db_*`` settings describe (as auth-service's ``Database``)."""
        return await cls.open(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            application_name=application_name,
        )

    def connection(self) -> _Checkout:
        """A pooled connection (``async with pool.connection() as conn``); one whose protocol
        lost step with the server is never reused.

        When the server ends a session (shutdown, ``pg_terminate_backend``) between two of our
        operations, asyncpg can see its unsolicited error half-way and raise
        ``InternalClientError: cannot switch to state ...; another operation is in progress``
        on the next query. That connection is done for: terminate it so the pool replaces it,
        and let the error surface as the connection failure it is (a 503).
        """
        return _Checkout(self)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        async with self.connection() as conn:
            await conn.executemany(query, args)

    async def ping(self) -> bool:
        return bool(await self.fetchval("SELECT 1"))

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool; connections still busy after ``timeout`` are terminated.

        asyncpg's graceful close waits for every acquired connection to come back, which a
        connection stuck on a database that went away mid-query may never do: shutdown must
        not hang on it.
        """
        try:
            async with asyncio.timeout(timeout):
                await self.pool.close()
        except TimeoutError:
            logger.warning("database pool did not close in time; terminating its connections")
            self.pool.terminate()


class _Checkout:
    """One checkout of :meth:`Pool.connection`; a class, not a generator, as it runs for
    every query.

    The wait for a connection is bounded by ``acquire_timeout`` only when one can be needed:
    while fewer checkouts are under way than the pool holds connections, one is free and asyncpg
    hands it over at once (connecting it first, if it must, under its own connect timeout), so
    no timer is armed and cancelled for it. Likewise on release after a statement that
    completed.
    """

    __slots__ = ("_connection", "_pool")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._connection: asyncpg.pool.PoolConnectionProxy | None = None

    async def __aenter__(self) -> asyncpg.pool.PoolConnectionProxy:
        pool = self._pool
        timeout = pool.acquire_timeout if pool._checkouts >= pool.size else None
        pool._checkouts += 1
        try:
            self._connection = await pool.pool.acquire(timeout=timeout)
        except BaseException:
            pool._checkouts -= 1
            raise
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None
        try:
            if isinstance(exc, asyncpg.exceptions.InternalClientError):
                connection.terminate()
            # After a failure the release may wait for a cancelled query to be acknowledged:
            # bounded then. After a statement that completed there is nothing to wait for.
            timeout = None if exc is None else self._pool.acquire_timeout
            await self._pool.pool.release(connection, timeout=timeout)
        finally:
            self._pool._checkouts -= 1


# Errors that mean "the database cannot be reached or the connection broke", not bad data.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
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
    """Whether ``exc`` (or the driver error a wrapper carries) is a connectivity failure.

    :func:`svckit.orm.is_connection_error` also knows SQLAlchemy's own wrappers.
    """
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    cause = exc.__cause__
    return isinstance(cause, CONNECTION_ERRORS)


def database_error_handler(
    classify: Callable[[BaseException], bool] = is_connection_error,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler: 503 for what ``classify`` calls a connection failure, else 500."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if classify(exc):
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

    return handle


def install_database_error_handler(app: FastAPI) -> None:
    """Answer 503 (not 500, not a hang) while the database is unreachable."""
    handler = database_error_handler()
    for exc_type in CONNECTION_ERRORS:
        app.add_exception_handler(exc_type, handler)
