"""Everything the app builds in its lifespan (and closes on shutdown), in one object.

The lifespan keeps it on ``app.state.runtime``; routes read it through ``deps.RuntimeDep``.
The verifier is also kept on ``app.state.token_verifier``, where svckit's bearer dependency
(``svckit.bearer.token_verifier``) looks for it in both services.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from items_service.settings import Settings
from items_service.tokens import CachingTokenVerifier, DeletedUsers, RevokedTokens
from items_service.user_events import UserEventsConsumer
from svckit.db import Pool
from svckit.jwks import JWKSCache
from svckit.redis import StreamClient, close_redis, connect_stream_reader
from svckit.request_id import outgoing_headers

# How long startup waits for the deleted-users list before serving without it (it keeps
# being refreshed in the background).
_STARTUP_LOAD_TIMEOUT = 5.0


@dataclass
class Runtime:
    settings: Settings
    db: Pool
    jwks: JWKSCache
    verifier: CachingTokenVerifier
    deleted_users: DeletedUsers
    revoked_tokens: RevokedTokens
    # None when ITEMS_EVENTS_ENABLED is false (tests that do not exercise events).
    consumer: UserEventsConsumer | None = None
    redis: StreamClient | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, *, application_name: str) -> Runtime:
        """Open the pool, build the verifier, load the deny-lists, start the background work."""
        db = await Pool.from_settings(settings, application_name=application_name)
        jwks = JWKSCache(
            settings.jwks_url,
            refresh_cooldown=settings.jwks_refresh_cooldown_seconds,
            timeout=settings.jwks_timeout_seconds,
            headers=outgoing_headers,
        )
        deleted_users = DeletedUsers()
        revoked_tokens = RevokedTokens()
        verifier = CachingTokenVerifier(
            jwks,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.token_leeway_seconds,
            deleted_users=deleted_users,
            revoked_tokens=revoked_tokens,
            cache_size=settings.token_cache_size,
        )
        runtime = cls(settings, db, jwks, verifier, deleted_users, revoked_tokens)
        runtime.tasks.append(asyncio.create_task(jwks.refresh(), name="jwks-prefetch"))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(deleted_users.refresh(db), _STARTUP_LOAD_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(revoked_tokens.refresh(db), _STARTUP_LOAD_TIMEOUT)
        runtime.tasks.append(
            asyncio.create_task(
                revoked_tokens.keep_fresh(db, settings.revoked_tokens_refresh_seconds),
                name="revoked-tokens-refresh",
            )
        )
        runtime.tasks.append(
            asyncio.create_task(
                deleted_users.keep_fresh(db, settings.deleted_users_refresh_seconds),
                name="deleted-users-refresh",
            )
        )
        if settings.events_enabled:
            runtime.redis = connect_stream_reader(
                settings.redis_url, block_seconds=settings.events_block_seconds
            )
            runtime.consumer = UserEventsConsumer(
                runtime.redis,
                db,
                deleted_users,
                revoked_tokens=revoked_tokens,
                stream=settings.events_stream,
                group=settings.events_group,
                consumer=settings.events_consumer or None,
                dead_stream=settings.events_dead_stream,
                block_seconds=settings.events_block_seconds,
                batch_size=settings.events_batch_size,
                claim_idle_seconds=settings.events_claim_idle_seconds,
                max_attempts=settings.events_max_attempts,
                max_deliveries=settings.events_max_deliveries,
                backoff_max_seconds=settings.events_backoff_max_seconds,
            )
            runtime.tasks.append(
                asyncio.create_task(runtime.consumer.run(), name="user-events-consumer")
            )
        return runtime

    async def close(self) -> None:
        """Stop the background work, then close what it used."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.redis is not None:
            await close_redis(self.redis)
        await self.jwks.aclose()
        await self.db.close()
