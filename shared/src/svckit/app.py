"""Wiring every service app gets in the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI

from svckit.db import install_database_error_handler
from svckit.errors import UnhandledErrorMiddleware, install_error_handlers
from svckit.health import Check, health_router
from svckit.metrics import Metrics, MetricsMiddleware
from svckit.request_id import RequestIdMiddleware


def install_common(
    app: FastAPI,
    *,
    service: str,
    readiness_checks: Callable[[], Mapping[str, Check]],
    access_log: bool = True,
) -> None:
    """Error envelope, database 503s, request ids, metrics, ``/healthz``, ``/readyz``.

    Middleware order (outermost first): request id, metrics, unhandled-error guard, so every
    response, a 500 included, carries ``X-Request-ID`` and is counted.
    """
    install_error_handlers(app)
    install_database_error_handler(app)
    metrics = Metrics(service)
    app.state.metrics = metrics
    app.include_router(health_router(readiness_checks))
    app.include_router(metrics.router())
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware, access_log=access_log)
