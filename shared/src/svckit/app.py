"""Wiring every service app gets in the same way."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from svckit.db import install_database_error_handler
from svckit.errors import error_response, install_error_handlers, unhandled_error
from svckit.health import Check, health_router
from svckit.memory import trimmed_heap
from svckit.metrics import Metrics
from svckit.request_id import (
    accept_request_id,
    bind_request_id,
    incoming_request_id,
    log_access,
    reset_request_id,
    with_request_id,
)
from svckit.tokens import TokenVerifier


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


class Runtime(Protocol):
    """What a service's lifespan builds: it verifies tokens and closes what it opened."""

    @property
    def verifier(self) -> TokenVerifier: ...

    async def close(self) -> None: ...


@asynccontextmanager
async def serving(
    app: FastAPI, runtime: Runtime, *, memory_trim_seconds: float
) -> AsyncIterator[None]:
    """The lifespan's body once ``runtime`` is built: keep it on ``app.state.runtime`` (and its
    verifier on ``app.state.token_verifier``, where :mod:`svckit.bearer` reads it) while the
    app serves, return freed heap to the OS periodically, and close it when the app stops."""
    app.state.runtime = runtime
    app.state.token_verifier = runtime.verifier
    try:
        async with trimmed_heap(memory_trim_seconds):
            yield
    finally:
        await runtime.close()


def telemetry(enabled: bool) -> TelemetryConfig:
    """``FastAPI(telemetry=...)``: native OpenTelemetry on, or off with no per-request check.

    FastAPI otherwise asks OpenTelemetry on every request whether a provider is configured,
    which reads the environment three times per request.
    """
    if enabled:
        return {}
    return {"tracing": False, "metrics": False, "logs": False}


class ServiceMiddleware:
    """What every request passes through, in one pure ASGI layer (one send wrapper, no task):

    * its id: ``X-Request-ID`` when sane, else a new one, current for the request
      (:mod:`svckit.request_id`) and returned with ``X-Content-Type-Options: nosniff``;
    * its count and latency by route template (:class:`~svckit.metrics.Metrics`);
    * one access-log line, unless ``access_log`` is off;
    * an exception no handler took: logged and answered with a 500 in the envelope
      (:func:`~svckit.errors.unhandled_error`), carrying the id and counted; Starlette's own
      server-error handler would run outside, where the id is gone.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = accept_request_id(incoming_request_id(scope["headers"]))
        token = bind_request_id(rid)
        rid_bytes = rid.encode()
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_request_id(message.get("headers", ()), rid_bytes)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            response = unhandled_error(scope, exc)
            if status:
                raise
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method = scope.get("method", "")
            route = scope.get("route")
            status = status or 500
            self.metrics.observe(
                method, getattr(route, "path", None) or "unmatched", status, seconds
            )
            if self.access_log:
                log_access(method, scope.get("path", ""), status, seconds)
            reset_request_id(token)


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
    app.add_middleware(ServiceMiddleware, metrics=metrics, access_log=access_log)
