"""The database handle built in the app's lifespan, and the one per-request unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_service.settings import Settings
from svckit.errors import ServiceError
from svckit.orm import create_engine, create_sessionmaker, session_scope


class KeepWritesError(ServiceError):
    """A domain error whose transaction must still be committed before it is answered.

    Used where the refusal itself is a write that has to stick, e.g. revoking a refresh
    token family when a used token is replayed (RFC 9700 §4.14.2).
    """


class Database:
    """An engine (when this object owns one) and the sessionmaker the service uses."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self._engine = engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            application_name="auth-service",
        )
        return cls(create_sessionmaker(engine), engine)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("this Database does not own an engine")
        return self._engine

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session committed on success and rolled back on error (outside requests)."""
        return session_scope(self.sessionmaker)

    async def ping(self) -> bool:
        async with self.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        return True

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the endpoint succeeds, else rolled back.

    Used with ``Depends(..., scope="function")`` so the commit happens before the response
    is sent: a client never sees 200 for a write that then failed to commit.
    """
    database: Database = request.app.state.runtime.database
    async with database.sessionmaker() as session:
        try:
            yield session
        except KeepWritesError:
            await session.commit()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
