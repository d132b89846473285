"""The mail outbox: messages are rows written in the transaction that asked for them, and a
relay sends them over SMTP afterwards. A request never waits on the mail server.

* Nothing is lost: a row stays ``pending`` until the server accepted the message. A failure
  (server down, timeout, 4xx) reschedules it with exponential backoff
  (``AUTH_MAIL_RETRY_BASE_SECONDS`` doubling up to ``AUTH_MAIL_RETRY_MAX_SECONDS``); after
  ``AUTH_MAIL_MAX_ATTEMPTS`` attempts, or at once on a permanent 5xx refusal of the message,
  it is ``dead`` (dead-lettered: kept, counted in ``auth_mail_dead_letter_total``, logged).
* No double send in normal operation: the relay claims rows with ``FOR UPDATE SKIP LOCKED``,
  so replicas never send the same row at once, and marks a row sent in the transaction that
  claimed it. Only a crash between the server's acceptance and that commit resends a message;
  it then carries the same ``Message-ID``.
* Some rows are requests the relay must first resolve (``recipient`` is empty): a password
  reset names an account by email or username, and looking it up, issuing the token and
  applying the per-account throttle happen here rather than in the request, so the request
  does the same work whether or not the account exists. A *preparer* per template does it.
* The links a message carries are kept in ``context`` only until the row is sent or dead.
  Logs name the template and the message id, never a recipient, link or token.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.mail.messages import render
from auth_service.mail.smtp import SmtpSender, is_permanent
from auth_service.models import MailMessage
from svckit.tasks import PeriodicTask

logger = logging.getLogger("auth_service.mail")

PENDING = "pending"
SENT = "sent"
DEAD = "dead"
SKIPPED = "skipped"

# Resolves a request row in place: sets recipient, template and context, or status SKIPPED.
Preparer = Callable[[AsyncSession, MailMessage, datetime], Awaitable[None]]


async def enqueue(
    session: AsyncSession,
    *,
    template: str,
    recipient: str | None,
    context: dict[str, Any],
    now: datetime,
) -> MailMessage:
    """Queue a message (``recipient=None``: a request a preparer resolves); only flushes."""
    message = MailMessage(
        message_id=uuid.uuid4(),
        template=template,
        recipient=recipient,
        context=context,
        status=PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(message)
    await session.flush()
    return message


async def prune_finished(session: AsyncSession, *, before: datetime) -> int:
    """Delete sent and skipped rows created before ``before`` (dead rows stay)."""
    result = await session.execute(
        delete(MailMessage).where(
            MailMessage.status.in_((SENT, SKIPPED)), MailMessage.created_at < before
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class MailMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "auth_mail_sent_total",
            "Messages the SMTP server accepted",
            ["template"],
            registry=registry,
        )
        self.failures = Counter(
            "auth_mail_failures_total",
            "Failed delivery attempts (each is retried until the attempts run out)",
            ["template"],
            registry=registry,
        )
        self.dead = Counter(
            "auth_mail_dead_letter_total",
            "Messages given up on (dead-lettered)",
            ["template"],
            registry=registry,
        )
        self.pending = Gauge(
            "auth_mail_pending", "Messages waiting in the mail outbox", registry=registry
        )


class MailRelay:
    """Prepares and sends pending mail; runs in the background of every replica."""

    def __init__(
        self,
        database: Database,
        sender: SmtpSender | None,
        *,
        mail_from: str,
        batch_size: int,
        max_attempts: int,
        retry_base: float,
        retry_max: float,
        interval: float,
        clock: Clock,
        metrics: MailMetrics,
        preparers: Mapping[str, Preparer],
    ) -> None:
        self._database = database
        self._sender = sender
        self._mail_from = mail_from
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._clock = clock
        self.metrics = metrics
        self._preparers = preparers
        # A failed pass (the database) backs off; the rows wait.
        self._task = PeriodicTask("mail relay", self.run_once, interval=interval, logger=logger)

    # ---------------------------------------------------------------- one pass

    async def prepare_once(self) -> int:
        """Resolve one batch of request rows; return how many were handled."""
        async with self._database.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(MailMessage)
                        .where(MailMessage.status == PENDING, MailMessage.recipient.is_(None))
                        .order_by(MailMessage.id)
                        .limit(self._batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            now = self._clock()
            for row in rows:
                preparer = self._preparers.get(row.template)
                if preparer is None:
                    self._give_up(row, "no preparer for this template")
                    continue
                await preparer(session, row, now)
            await session.flush()
        return len(rows)

    async def send_once(self) -> int:
        """Send one batch of due messages; return how many rows were attempted."""
        if self._sender is None:
            return 0
        async with self._database.transaction() as session:
            now = self._clock()
            rows = (
                (
                    await session.execute(
                        select(MailMessage)
                        .where(
                            MailMessage.status == PENDING,
                            MailMessage.recipient.is_not(None),
                            MailMessage.next_attempt_at <= now,
                        )
                        .order_by(MailMessage.next_attempt_at, MailMessage.id)
                        .limit(self._batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not rows:
                return 0
            done: set[int] = set()
            try:
                async with self._sender.connection() as connection:
                    for row in rows:
                        try:
                            message = render(
                                row.template,
                                row.context,
                                sender=self._mail_from,
                                recipient=row.recipient or "",
                                message_id=row.message_id.hex,
                            )
                        except Exception as exc:  # a template or address that cannot work
                            done.add(row.id)
                            self._give_up(row, f"rendering failed: {type(exc).__name__}")
                            continue
                        try:
                            await connection.send(message)
                        except Exception as exc:
                            done.add(row.id)
                            self._failed(row, exc, now)
                            continue
                        done.add(row.id)
                        self._sent(row, now)
            except Exception as exc:  # connecting, TLS, AUTH, or a dropped connection
                for row in rows:
                    if row.id not in done:
                        self._failed(row, exc, now)
            await session.flush()
        return len(rows)

    async def run_once(self) -> None:
        """Prepare and send until nothing due is left."""
        while await self.prepare_once() >= self._batch_size:
            pass
        while await self.send_once() >= self._batch_size:
            pass
        await self._count_pending()

    async def _count_pending(self) -> None:
        async with self._database.transaction() as session:
            pending = await session.scalar(
                select(func.count()).select_from(MailMessage).where(MailMessage.status == PENDING)
            )
        self.metrics.pending.set(pending or 0)

    # ---------------------------------------------------------------- outcomes

    def _sent(self, row: MailMessage, now: datetime) -> None:
        row.status = SENT
        row.sent_at = now
        row.attempts += 1
        row.context = {}
        row.last_error = None
        self.metrics.sent.labels(row.template).inc()
        logger.info("mail sent", extra={"template": row.template, "message_id": row.message_id.hex})

    def _failed(self, row: MailMessage, exc: BaseException, now: datetime) -> None:
        row.attempts += 1
        self.metrics.failures.labels(row.template).inc()
        reason = _describe(exc)
        if is_permanent(exc) or row.attempts >= self._max_attempts:
            self._give_up(row, reason)
            return
        delay = min(self._retry_base * 2 ** (row.attempts - 1), self._retry_max)
        row.next_attempt_at = now + timedelta(seconds=delay)
        row.last_error = reason
        logger.warning(
            "mail delivery failed; retrying",
            extra={
                "template": row.template,
                "message_id": row.message_id.hex,
                "attempts": row.attempts,
                "retry_in": delay,
                "error": reason,
            },
        )

    def _give_up(self, row: MailMessage, reason: str) -> None:
        row.status = DEAD
        row.context = {}
        row.last_error = reason[:255]
        self.metrics.dead.labels(row.template).inc()
        logger.error(
            "mail dead-lettered",
            extra={
                "template": row.template,
                "message_id": row.message_id.hex,
                "attempts": row.attempts,
                "error": reason,
            },
        )

    # ---------------------------------------------------------------- background task

    def wake(self) -> None:
        self._task.wake()

    def start(self) -> None:
        if self._sender is None:
            logger.warning("AUTH_SMTP_URL is not set: mail is queued in the outbox but not sent")
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()


def _describe(exc: BaseException) -> str:
    """The error's type and SMTP code, never its text (which may quote an address)."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} {code}" if isinstance(code, int) else type(exc).__name__
