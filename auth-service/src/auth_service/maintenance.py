"""Periodic housekeeping: retire signing keys no token can need, drop long-expired refresh
token families, revocations of access tokens that have expired anyway, expired pending MFA
sign-ins, account tokens and old finished mail. Idempotent, so several replicas may run it
concurrently."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.auth import refresh
from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.keys import store
from auth_service.mail import outbox as mail_outbox
from auth_service.mfa import service as mfa
from auth_service.models import RevokedAccessToken
from auth_service.recovery import tokens as account_tokens
from svckit.tasks import PeriodicTask

logger = logging.getLogger("auth_service.maintenance")

# Expired families are kept a little while so a late reuse still finds its token.
FAMILY_GRACE = timedelta(days=1)
# Expired account tokens still count for the per-account throttles for a day at most;
# sent (or skipped) mail rows are kept a week for inspection, dead ones until deleted by hand.
ACCOUNT_TOKEN_GRACE = timedelta(days=1)
MAIL_RETENTION = timedelta(days=7)


async def prune_revocations(session: AsyncSession, *, now: datetime) -> int:
    """Forget revoked access tokens that expired (plus any verifier's leeway) long ago."""
    result = await session.execute(
        delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < now - FAMILY_GRACE)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def run_once(database: Database, *, retention: timedelta, clock: Clock) -> None:
    async with database.transaction() as session:
        now = clock()
        await store.retire_expired(session, now=now, retention=retention)
        pruned = await refresh.prune_expired(session, now=now, grace=FAMILY_GRACE)
        forgotten = await prune_revocations(session, now=now)
        await mfa.prune_challenges(session, now=now)
        await account_tokens.prune_expired(session, before=now - ACCOUNT_TOKEN_GRACE)
        await mail_outbox.prune_finished(session, before=now - MAIL_RETENTION)
    if pruned:
        logger.info("expired refresh token families pruned", extra={"count": pruned})
    if forgotten:
        logger.info("expired token revocations pruned", extra={"count": forgotten})


class Maintenance:
    def __init__(
        self, database: Database, *, retention: timedelta, interval: float, clock: Clock
    ) -> None:
        self._database = database
        self._retention = retention
        self._interval = interval
        self._clock = clock
        # No backoff: a failed pass waits one interval, like a good one.
        self._task = PeriodicTask(
            "maintenance",
            self.run_once,
            interval=interval,
            logger=logger,
            max_backoff=interval,
            run_at_start=False,
        )

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def run_once(self) -> None:
        await run_once(self._database, retention=self._retention, clock=self._clock)
