"""Request ids: taken from ``X-Request-ID`` when it is sane, else generated.

The id is kept in a context variable for the duration of the request, so log records and
outgoing calls (:func:`outgoing_headers`) carry it, and it is returned on every response.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_HEADER_BYTES = HEADER.lower().encode()
# Anything else (too long, odd characters) could poison logs, so it is replaced.
# fullmatch, not "$": "$" also matches before a trailing newline, which would end up in a
# response header and a log line.
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_NOSNIFF = b"x-content-type-options"
_REPLACED_HEADERS = frozenset({_HEADER_BYTES, _NOSNIFF, b"server"})

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("svckit.access")


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    return _request_id.get()


def outgoing_headers() -> dict[str, str]:
    """Headers that pass the current request id on to a service-to-service call."""
    rid = _request_id.get()
    return {HEADER: rid} if rid else {}


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The incoming id if it is well formed, else a fresh one."""
    if value and _VALID.fullmatch(value):
        return value
    return new_request_id()


class RequestIdMiddleware:
    """Pure ASGI middleware: request id, security headers and one access-log line per request.

    Written without ``BaseHTTPMiddleware`` so it adds no task or stream copying to each request.
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == _HEADER_BYTES:
                incoming = value.decode("latin-1")
                break
        rid = accept_request_id(incoming)
        token = _request_id.set(rid)
        status = 500
        started = time.perf_counter()
        rid_bytes = rid.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k not in _REPLACED_HEADERS
                ]
                headers.append((_HEADER_BYTES, rid_bytes))
                headers.append((_NOSNIFF, b"nosniff"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            _request_id.reset(token)
