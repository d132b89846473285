"""Wiring every service app gets in the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from svckit.db import install_database_error_handler
from svckit.errors import UnhandledErrorMiddleware, error_response, install_error_handlers
from svckit.health import Check, health_router
from svckit.metrics import Metrics, MetricsMiddleware
from svckit.request_id import RequestIdMiddleware


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A service that needs Redis on a request path answers 503 while it is unreachable,
    # never 500 (and never proceeds as if a limit or an event had been recorded).
    return error_response(
        request,
        503,
        "A dependency of this service is unavailable; try again shortly",
        code="dependency_unavailable",
        headers={"Retry-After": "2"},
    )


def telemetry(enabled: bool) -> TelemetryConfig:
    """``FastAPI(telemetry=...)``: native OpenTelemetry on, or off with no per-request check.

    FastAPI otherwise asks OpenTelemetry on every request whether a provider is configured,
    which reads the environment three times per request.
    """
    if enabled:
        return {}
    return {"tracing": False, "metrics": False, "logs": False}


def install_common(
    app: FastAPI,
    *,
    service: str,
    readiness_checks: Callable[[], Mapping[str, Check]],
    access_log: bool = True,
) -> None:
    """Error envelope, database and Redis 503s, request ids, metrics, ``/healthz``, ``/readyz``.

    Middleware order (outermost first): request id, metrics, unhandled-error guard, so every
    response, a 500 included, carries ``X-Request-ID`` and is counted.
    """
    install_error_handlers(app)
    install_database_error_handler(app)
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
    metrics = Metrics(service)
    app.state.metrics = metrics
    app.include_router(health_router(readiness_checks))
    app.include_router(metrics.router())
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware, access_log=access_log)
