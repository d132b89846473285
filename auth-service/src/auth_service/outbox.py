"""The transactional outbox for cross-service events (ARCHITECTURE.md, "Cross-service data").

A user deletion writes a ``user.deleted`` row in the same transaction as the deletion, so the
event exists exactly when the deletion committed; an access token's revocation (RFC 7009)
likewise writes ``token.revoked``. The relay publishes unpublished rows to the Redis stream
(``XADD`` with fields ``type``, ``event_id``, ``occurred_at`` and the payload's members:
``user_id`` for ``user.deleted``; ``jti`` and ``expires_at`` for ``token.revoked``) and marks
them published only after Redis acknowledged them.

* Several replicas may relay at once: rows are claimed with ``FOR UPDATE SKIP LOCKED``, so no
  row is published twice by two relays at the same time.
* Redis down: the transaction rolls back, the rows stay unpublished and are retried (with
  backoff) until Redis answers. Nothing is lost.
* Delivery is at least once (a crash between ``XADD`` and the commit republishes the batch);
  consumers deduplicate by ``event_id``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.models import OutboxEvent
from svckit import events
from svckit.tasks import PeriodicTask

logger = logging.getLogger("auth_service.outbox")


async def add_user_deleted(session: AsyncSession, user_id: int, *, now: datetime) -> OutboxEvent:
    event = OutboxEvent(
        event_id=uuid.uuid4(),
        type=events.USER_DELETED,
        payload={"user_id": user_id},
        occurred_at=now,
    )
    session.add(event)
    await session.flush()
    return event


async def add_token_revoked(
    session: AsyncSession, jti: str, *, expires_at: datetime, now: datetime
) -> OutboxEvent:
    """items-service refuses the access token ``jti`` from this event until ``expires_at``."""
    event = OutboxEvent(
        event_id=uuid.uuid4(),
        type=events.TOKEN_REVOKED,
        payload={"jti": jti, "expires_at": expires_at.isoformat()},
        occurred_at=now,
    )
    session.add(event)
    await session.flush()
    return event


def stream_fields(event: OutboxEvent) -> dict[str, str]:
    return events.stream_fields(event.type, event.event_id, event.occurred_at, event.payload)


async def relay_once(
    database: Database, redis: Redis[str], *, stream: str, batch_size: int, clock: Clock
) -> int:
    """Publish one batch of unpublished events; return how many were published.

    Raises whatever Redis or the database raised; the batch then stays unpublished.
    """
    async with database.transaction() as session:
        rows = (
            (
                await session.execute(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return 0
        async with redis.pipeline(transaction=False) as pipe:
            for event in rows:
                pipe.xadd(stream, stream_fields(event))
            await pipe.execute()
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([event.id for event in rows]))
            .values(published_at=clock())
        )
    logger.info("outbox events published", extra={"count": len(rows), "stream": stream})
    return len(rows)


async def relay_all(
    database: Database, redis: Redis[str], *, stream: str, batch_size: int, clock: Clock
) -> int:
    """Publish until nothing is left (or another relay holds the remaining rows)."""
    total = 0
    while True:
        published = await relay_once(
            database, redis, stream=stream, batch_size=batch_size, clock=clock
        )
        total += published
        if published < batch_size:
            return total


class OutboxRelay:
    """The background relay of one process: polls every ``interval`` seconds, or at once when
    woken, and backs off (up to 30 s) while Redis or the database fails."""

    def __init__(
        self,
        database: Database,
        redis: Redis[str],
        *,
        stream: str,
        batch_size: int,
        interval: float,
        clock: Clock,
    ) -> None:
        self._database = database
        self._redis = redis
        self._stream = stream
        self._batch_size = batch_size
        self._interval = interval
        self._clock = clock
        self._task = PeriodicTask("outbox relay", self.run_once, interval=interval, logger=logger)

    def wake(self) -> None:
        self._task.wake()

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def run_once(self) -> int:
        return await relay_all(
            self._database,
            self._redis,
            stream=self._stream,
            batch_size=self._batch_size,
            clock=self._clock,
        )
