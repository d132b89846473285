"""The auth-service application factory (``uvicorn --factory auth_service.app:create_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from auth_service.auth.router import router as auth_router
from auth_service.clients.router import router as clients_router
from auth_service.clock import Clock, system_clock
from auth_service.db import Database
from auth_service.mfa.router import router as mfa_router
from auth_service.oauth.router import router as oauth_router
from auth_service.recovery.router import router as recovery_router
from auth_service.runtime import Runtime
from auth_service.settings import Settings
from auth_service.users.router import router as users_router
from auth_service.wellknown import router as wellknown_router
from svckit.app import install_common, serving, telemetry
from svckit.health import Check
from svckit.logs import configure_logging
from svckit.orm import install_orm_error_handler

SERVICE = "auth-service"
DESCRIPTION = """
Users, passwords and tokens. Log in with **Authorize** (OAuth2 password flow: a username or an
email, and the password). Access tokens are RS256 JWTs verifiable with
[`/.well-known/jwks.json`](/.well-known/jwks.json).
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
) -> FastAPI:
    """Build the app. ``settings`` default to the environment; ``clock`` and ``database`` let
    tests control time and run every request inside a transaction they roll back."""
    settings = settings or Settings()
    clock = clock or system_clock

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.environment != "test":
            configure_logging(SERVICE, settings.log_level, json_format=settings.log_json)
        runtime = await Runtime.start(
            settings, clock=clock, database=database, registry=app.state.metrics.registry
        )
        async with serving(app, runtime, memory_trim_seconds=settings.memory_trim_seconds):
            yield

    app = FastAPI(
        telemetry=telemetry(settings.opentelemetry),
        title="auth-service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs/auth",
        redoc_url=None,
        openapi_url="/openapi/auth.json",
        swagger_ui_oauth2_redirect_url="/docs/auth/oauth2-redirect",
        # Relative: "Try it out" calls the origin the docs were loaded from, i.e. the gateway.
        servers=[{"url": "/", "description": "This origin (the gateway)"}],
    )

    def readiness_checks() -> Mapping[str, Check]:
        runtime: Runtime = app.state.runtime

        async def signing_key() -> bool:
            return runtime.keyring.has_signer()

        return {"database": runtime.database.ping, "signing_key": signing_key}

    install_common(
        app, service=SERVICE, readiness_checks=readiness_checks, access_log=settings.access_log
    )
    install_orm_error_handler(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Total-Count", "Retry-After"],
        )

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, object]:
        return {
            "message": "Welcome to the FastAPI auth + items API",
            "docs": {"auth": "/docs/auth", "items": "/docs/items"},
            "openapi": {"auth": "/openapi/auth.json", "items": "/openapi/items.json"},
        }

    app.include_router(auth_router)
    app.include_router(oauth_router)
    app.include_router(clients_router)
    app.include_router(recovery_router)
    app.include_router(users_router)
    app.include_router(mfa_router)
    app.include_router(wellknown_router)
    return app
