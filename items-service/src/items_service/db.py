"""The request-path database: an asyncpg pool running prepared statements.

Why not an ORM session per request: at the throughput asked of this service its ~1.5-2 ms of
CPU per request is the bottleneck. Every write here is one SQL statement (data-modifying CTEs
keep the item and its counters in one atomic statement), so no request needs more than an
implicit transaction, and a pooled connection is held only for the duration of a query.

Outages: the pool starts empty (the service starts without a database), connection attempts
and pool waits are bounded by ``db_connect_timeout_seconds`` and every query by the statement
timeout, so an unreachable database gives quick errors that svckit turns into 503s; a broken
connection is discarded and the next checkout reconnects, so the service recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from items_service.settings import Settings
from svckit.db import libpq_url

logger = logging.getLogger("items_service.db")


async def _reset(connection: asyncpg.Connection) -> None:
    # asyncpg already rolls back an open transaction before calling this. Its default reset
    # ("RESET ALL; UNLISTEN *; ...") would cost a round trip per checkout for state that the
    # request path never changes.
    return None


class Database:
    """A pool of asyncpg connections with bounded waits."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout

    @classmethod
    async def open(cls, settings: Settings, *, application_name: str = "items-service") -> Database:
        server_settings = {"application_name": application_name}
        if settings.db_statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        # Client-side backstop for a server that stops answering mid-query.
        command_timeout = (
            settings.db_statement_timeout_ms / 1000 + 2
            if settings.db_statement_timeout_ms
            else None
        )
        pool = await asyncpg.create_pool(
            libpq_url(settings.database_url),
            min_size=0,
            max_size=settings.db_pool_size + settings.db_max_overflow,
            max_inactive_connection_lifetime=300,
            reset=_reset,
            timeout=settings.db_connect_timeout_seconds,
            command_timeout=command_timeout,
            server_settings=server_settings,
        )
        return cls(pool, acquire_timeout=settings.db_connect_timeout_seconds)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection; one whose protocol lost step with the server is never reused.

        When the server ends a session (shutdown, ``pg_terminate_backend``) between two of our
        operations, asyncpg can see its unsolicited error half-way and raise
        ``InternalClientError: cannot switch to state ...; another operation is in progress``
        on the next query. That connection is done for: terminate it so the pool replaces it,
        and let the error surface as the connection failure it is (svckit answers 503).
        """
        async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
            try:
                yield conn
            except asyncpg.exceptions.InternalClientError:
                conn.terminate()
                raise

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
