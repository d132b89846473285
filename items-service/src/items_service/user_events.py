"""The consumer group reading auth-service's user events (ARCHITECTURE.md, "Cross-service data").

auth-service relays ``user.deleted`` entries (fields ``type``, ``user_id``, ``event_id``,
``occurred_at``) from its outbox to the Redis stream ``user-events``. Every items-service
process reads it as one consumer of the group ``items-service`` and, per event, deletes the
user's items and records the user in ``deleted_users`` (whose tokens are then refused).
``token.revoked`` entries (fields ``jti``, ``expires_at``, ``event_id``, ``occurred_at``)
record an access token in ``revoked_tokens``, refused by every replica until it expires.

Delivery is at least once, so handling is idempotent: deleting a user's items twice deletes
nothing the second time, and ``deleted_users`` is inserted with ``ON CONFLICT DO NOTHING``. An
entry is acknowledged (XACK) only after its delete committed.

* Crashed consumers: entries pending longer than ``claim_idle`` are taken over (XAUTOCLAIM).
  This process's own pending entries are re-read after a start or a Redis error.
* Poison: an entry that cannot be parsed, that fails ``max_attempts`` times here with a
  non-connection error, or that was delivered more than ``max_deliveries`` times (it keeps
  killing consumers) is copied to ``user-events:dead`` with the reason, logged and acked.
* Outages: while the database is unreachable the entry being handled is retried in place
  with backoff (it does not count as a failure, and its claim is renewed so no other consumer
  takes it over); while Redis is unreachable the loop backs off and then catches up. Either
  way the service keeps serving.
* Race: an item created by a request in flight at the very moment the deletion commits
  could escape the delete; ``items.service.delete_user_items`` deletes twice (the second pass
  sees every insert that committed meanwhile) and later requests with the user's tokens are
  refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError, ResponseError

from items_service.items import service as items
from items_service.tokens import DeletedUsers, RevokedTokens
from svckit.db import Pool, is_connection_error
from svckit.events import Event, PoisonMessage, TokenRevokedEvent, parse_event
from svckit.redis import StreamClient
from svckit.tasks import next_delay

logger = logging.getLogger("items_service.user_events")


async def apply_token_revoked(db: Pool, event: TokenRevokedEvent) -> None:
    """Record the revoked token (idempotent)."""
    await db.fetchval(
        "INSERT INTO revoked_tokens (jti, expires_at, event_id)"
        " VALUES ($1, $2::timestamptz, $3::uuid) ON CONFLICT (jti) DO NOTHING",
        event.jti,
        event.expires_at,
        event.event_id,
    )


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


Entry = tuple[bytes, dict[bytes, bytes] | None]

# The first retry after a failure; later ones double up to ``backoff_max_seconds``.
_BACKOFF_BASE = 0.1


def _raise_if_cancelling() -> None:
    """Honour a cancellation that a library swallowed.

    redis-py's blocking reads can absorb the ``CancelledError`` of a task cancelled while it
    waits (the read is retried), so a consumer would never stop on shutdown. The task still
    records the request (``Task.cancelling()``), and this turns it back into the exception.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class UserEventsConsumer:
    """Reads the user-events stream in a consumer group and applies the events."""

    def __init__(
        self,
        redis: StreamClient,
        db: Pool,
        deleted_users: DeletedUsers,
        *,
        revoked_tokens: RevokedTokens | None = None,
        stream: str = "user-events",
        group: str = "items-service",
        consumer: str | None = None,
        dead_stream: str = "user-events:dead",
        block_seconds: float = 5.0,
        batch_size: int = 100,
        claim_idle_seconds: float = 60.0,
        max_attempts: int = 5,
        max_deliveries: int = 10,
        backoff_max_seconds: float = 30.0,
        forget_consumers_after_seconds: float = 3600.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.redis = redis
        self.db = db
        self.deleted_users = deleted_users
        self.revoked_tokens = revoked_tokens if revoked_tokens is not None else RevokedTokens()
        self.stream = stream
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.dead_stream = dead_stream
        self.block_ms = max(1, int(block_seconds * 1000))
        self.batch_size = batch_size
        self.claim_idle_ms = max(1, int(claim_idle_seconds * 1000))
        self.max_attempts = max_attempts
        self.max_deliveries = max_deliveries
        self.backoff_max = backoff_max_seconds
        self.forget_after_ms = int(forget_consumers_after_seconds * 1000)
        self._sleep = sleep
        self._read_own_pending = True
        self._next_claim = 0.0
        self.handled = 0
        self.dead_lettered = 0
        self.connected = False

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """Consume until cancelled, riding out Redis and database outages."""
        delay = 0.0
        while True:
            _raise_if_cancelling()
            try:
                await self.ensure_group()
                self.connected = True
                while True:
                    await self.poll_once()
                    delay = 0.0
                    _raise_if_cancelling()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected = False
                self._read_own_pending = True
                delay = next_delay(delay, base=_BACKOFF_BASE, cap=self.backoff_max)
                logger.warning(
                    "user events: Redis unavailable; retrying",
                    extra={"error": type(exc).__name__, "retry_in_s": round(delay, 2)},
                )
                await self._sleep(delay)
            except Exception:
                self._read_own_pending = True
                delay = next_delay(delay, base=_BACKOFF_BASE, cap=self.backoff_max)
                logger.exception("user events: consumer loop failed; retrying")
                await self._sleep(delay)

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; reading starts at the start."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            logger.info(
                "user events: consumer group created",
                extra={"stream": self.stream, "group": self.group},
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def poll_once(self) -> int:
        """One round: own pending entries, then stale ones of others, then new ones (blocking).

        Returns how many entries were handled.
        """
        handled = 0
        try:
            if self._read_own_pending:
                entries = await self._read("0", block=False)
                if not entries:
                    self._read_own_pending = False
                for entry in entries:
                    await self._handle(entry, await self._deliveries(entry[0]))
                handled += len(entries)
                if entries:
                    return handled
            if time.monotonic() >= self._next_claim:
                handled += await self._claim_stale()
            for entry in await self._read(">", block=True):
                await self._handle(entry, 1)
                handled += 1
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost the group (restart without persistence)
                await self.ensure_group()
                self._read_own_pending = True
                return handled
            raise
        return handled

    # ------------------------------------------------------------------ Redis reads

    async def _read(self, start: str, *, block: bool) -> list[Entry]:
        reply = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: start},
            count=self.batch_size,
            block=self.block_ms if block else None,
        )
        # [[stream, [(id, fields), ...]]] (RESP2: the client is created with protocol=2).
        entries: list[Entry] = []
        for _stream, stream_entries in reply or ():
            entries.extend((item[0], item[1]) for item in stream_entries)
        return entries

    async def _deliveries(self, message_id: bytes) -> int | None:
        pending = await self.redis.xpending_range(
            self.stream, self.group, min=message_id, max=message_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else None

    async def _claim_stale(self) -> int:
        """Take over entries that other (crashed) consumers left pending too long."""
        self._next_claim = time.monotonic() + max(self.claim_idle_ms / 2000, 0.05)
        handled = 0
        cursor: bytes | str = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=cursor,
                count=self.batch_size,
            )
            cursor, claimed = reply[0], reply[1]
            for message_id, fields in claimed:
                if message_id is None:
                    continue
                logger.info(
                    "user events: took over a stale entry",
                    extra={"message_id": message_id.decode()},
                )
                await self._handle((message_id, fields), await self._deliveries(message_id))
                handled += 1
            if cursor in (b"0-0", "0-0") or not claimed:
                await self._forget_idle_consumers()
                return handled

    async def _forget_idle_consumers(self) -> None:
        """Remove consumers of exited processes (every start adds one) once they hold no
        pending entries and have been idle for long. A live consumer removed by mistake
        would simply be recreated by its next read."""
        # (types-redis leaves these two commands untyped)
        consumers = await self.redis.xinfo_consumers(  # type: ignore[no-untyped-call]
            self.stream, self.group
        )
        for info in consumers:
            name = info["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            if (
                name != self.consumer
                and int(info["pending"]) == 0
                and int(info["idle"]) > self.forget_after_ms
            ):
                await self.redis.xgroup_delconsumer(  # type: ignore[no-untyped-call]
                    self.stream, self.group, name
                )
                logger.info("user events: removed an idle consumer", extra={"consumer": name})

    # ------------------------------------------------------------------ handling

    async def _handle(self, entry: Entry, deliveries: int | None) -> None:
        message_id, fields = entry
        if not fields:  # trimmed from the stream while pending: nothing left to do
            await self._ack(message_id)
            return
        try:
            event = parse_event(fields)
        except PoisonMessage as exc:
            await self._dead_letter(message_id, fields, f"unparseable: {exc}")
            return
        if event is None:
            logger.debug("user events: ignored event type", extra={"message_id": str(message_id)})
            await self._ack(message_id)
            return
        if deliveries is not None and deliveries > self.max_deliveries:
            await self._dead_letter(
                message_id, fields, f"delivered {deliveries} times without being acknowledged"
            )
            return
        if await self._apply(message_id, fields, event):
            await self._ack(message_id)
            self.handled += 1

    async def _apply(self, message_id: bytes, fields: dict[bytes, bytes], event: Event) -> bool:
        """Apply ``event``; False when it was dead-lettered instead."""
        failures = 0
        delay = 0.0
        while True:
            try:
                if isinstance(event, TokenRevokedEvent):
                    await apply_token_revoked(self.db, event)
                    deleted = 0
                else:
                    deleted = await items.delete_user_items(self.db, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_connection_error(exc):
                    logger.warning(
                        "user events: database unavailable; retrying",
                        extra={"message_id": message_id.decode(), "error": type(exc).__name__},
                    )
                    await self._renew_claim(message_id)
                    delay = next_delay(delay, base=_BACKOFF_BASE, cap=self.backoff_max)
                    await self._sleep(delay)
                    continue
                failures += 1
                logger.error(
                    "user events: handling failed",
                    extra={
                        "message_id": message_id.decode(),
                        "error": type(exc).__name__,
                        "attempt": failures,
                    },
                )
                if failures >= self.max_attempts:
                    await self._dead_letter(
                        message_id, fields, f"failed {failures} times: {type(exc).__name__}"
                    )
                    return False
                delay = next_delay(delay, base=_BACKOFF_BASE, cap=self.backoff_max)
                await self._sleep(delay)
                continue
            if isinstance(event, TokenRevokedEvent):
                self.revoked_tokens.add(event.jti, event.expires_at.timestamp())
                logger.info(
                    "user events: access token revoked",
                    extra={"message_id": message_id.decode(), "event_id": event.event_id.hex},
                )
                return True
            self.deleted_users.add(event.user_id)
            logger.info(
                "user events: user deleted",
                extra={
                    "message_id": message_id.decode(),
                    "event_id": event.event_id.hex,
                    "user_id": event.user_id,
                    "items_deleted": deleted,
                },
            )
            return True

    async def _ack(self, message_id: bytes) -> None:
        await self.redis.xack(self.stream, self.group, message_id)  # type: ignore[no-untyped-call]

    async def _renew_claim(self, message_id: bytes) -> None:
        # XCLAIM with JUSTID resets the entry's idle time without counting a delivery, so
        # other consumers do not take over an entry this one is still working on.
        with contextlib.suppress(RedisError):
            await self.redis.xclaim(  # type: ignore[no-untyped-call]
                self.stream, self.group, self.consumer, 0, [message_id], justid=True
            )

    async def _dead_letter(
        self, message_id: bytes, fields: dict[bytes, bytes], reason: str
    ) -> None:
        entry = {
            **fields,
            b"dead_letter_reason": reason.encode(),
            b"dead_letter_source_id": message_id,
            b"dead_letter_consumer": self.consumer.encode(),
            b"dead_letter_at": datetime.now(UTC).isoformat().encode(),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_stream, entry)
            pipe.xack(self.stream, self.group, message_id)
            await pipe.execute()
        self.dead_lettered += 1
        logger.warning(
            "user events: entry moved to the dead-letter stream",
            extra={
                "message_id": message_id.decode(),
                "dead_stream": self.dead_stream,
                "reason": reason,
            },
        )
