"""The items-service application factory (``uvicorn --factory items_service.app:create_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from items_service.items.router import router as items_router
from items_service.metrics import install_items_metrics
from items_service.runtime import Runtime
from items_service.settings import Settings
from svckit.app import install_common, serving, telemetry
from svckit.health import Check
from svckit.logs import configure_logging

SERVICE = "items-service"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    """Build the app. Settings come from the environment when not given.

    Nothing connects here: the database pool, JWKS cache, Redis client and background tasks
    are built in the lifespan (:meth:`Runtime.start`). ``configure_logs=False`` leaves logging
    to the caller (tests).
    """
    settings = settings or Settings()
    if configure_logs:
        configure_logging(SERVICE, settings.log_level, json_format=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, application_name=SERVICE)
        async with serving(app, runtime, memory_trim_seconds=settings.memory_trim_seconds):
            yield

    app = FastAPI(
        telemetry=telemetry(settings.opentelemetry),
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
        runtime: Runtime = app.state.runtime

        async def verification_keys() -> bool:
            # With no keys yet, try once now (single flight) rather than wait for a request.
            return runtime.jwks.has_keys or await runtime.jwks.refresh()

        return {"database": runtime.db.ping, "verification_keys": verification_keys}

    return checks
