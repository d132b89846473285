"""The items-service application factory (``uvicorn --factory items_service.app:create_app``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from items_service.auth import CachingTokenVerifier, DeletedUsers, RevokedTokens
from items_service.db import Database
from items_service.events import RedisClient, UserEventsConsumer, connect_redis
from items_service.items.router import router as items_router
from items_service.metrics import install_items_metrics
from items_service.settings import Settings
from svckit.app import install_common
from svckit.health import Check
from svckit.jwks import JWKSCache
from svckit.logs import configure_logging
from svckit.memory import trimmed_heap
from svckit.redis import close_redis
from svckit.request_id import outgoing_headers

SERVICE = "items-service"
logger = logging.getLogger("items_service")

# How long startup waits for the deleted-users list before serving without it (it keeps
# being refreshed in the background).
_STARTUP_LOAD_TIMEOUT = 5.0


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    """Build the app. Settings come from the environment when not given.

    Nothing connects here: the database pool, JWKS cache, Redis client and background tasks
    are built in the lifespan. ``configure_logs=False`` leaves logging to the caller (tests).
    """
    settings = settings or Settings()
    if configure_logs:
        configure_logging(SERVICE, settings.log_level, json_format=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await Database.open(settings, application_name=SERVICE)
        jwks = JWKSCache(
            settings.jwks_url,
            refresh_cooldown=settings.jwks_refresh_cooldown_seconds,
            timeout=settings.jwks_timeout_seconds,
            headers=outgoing_headers,
        )
        deleted_users = DeletedUsers()
        revoked_tokens = RevokedTokens()
        app.state.settings = settings
        app.state.db = db
        app.state.jwks = jwks
        app.state.deleted_users = deleted_users
        app.state.revoked_tokens = revoked_tokens
        app.state.token_verifier = CachingTokenVerifier(
            jwks,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.token_leeway_seconds,
            deleted_users=deleted_users,
            revoked_tokens=revoked_tokens,
            cache_size=settings.token_cache_size,
        )
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(jwks.refresh(), name="jwks-prefetch")]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(deleted_users.refresh(db), _STARTUP_LOAD_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(revoked_tokens.refresh(db), _STARTUP_LOAD_TIMEOUT)
        tasks.append(
            asyncio.create_task(
                revoked_tokens.keep_fresh(db, settings.revoked_tokens_refresh_seconds),
                name="revoked-tokens-refresh",
            )
        )
        tasks.append(
            asyncio.create_task(
                deleted_users.keep_fresh(db, settings.deleted_users_refresh_seconds),
                name="deleted-users-refresh",
            )
        )
        redis: RedisClient | None = None
        app.state.consumer = None
        if settings.events_enabled:
            redis = connect_redis(settings.redis_url, block_seconds=settings.events_block_seconds)
            consumer = UserEventsConsumer(
                redis,
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
            app.state.consumer = consumer
            tasks.append(asyncio.create_task(consumer.run(), name="user-events-consumer"))
        try:
            async with trimmed_heap(settings.memory_trim_seconds):
                yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if redis is not None:
                await close_redis(redis)
            await jwks.aclose()
            await db.close()

    app = FastAPI(
        title="items-service",
        summary="Items with owner/admin rules; tokens verified locally with auth-service's JWKS",
        version="0.1.0",
        docs_url="/docs/items",
        openapi_url="/openapi/items.json",
        swagger_ui_oauth2_redirect_url="/docs/items/oauth2-redirect",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_common(
        app,
        service=SERVICE,
        readiness_checks=_readiness_checks(app),
        access_log=settings.access_log,
    )
    install_items_metrics(app)
    app.include_router(items_router)
    return app


def _readiness_checks(app: FastAPI) -> Callable[[], Mapping[str, Check]]:
    def checks() -> Mapping[str, Check]:
        db: Database = app.state.db
        jwks: JWKSCache = app.state.jwks

        async def verification_keys() -> bool:
            # With no keys yet, try once now (single flight) rather than wait for a request.
            return jwks.has_keys or await jwks.refresh()

        return {"database": db.ping, "verification_keys": verification_keys}

    return checks
