"""Request ids: taken from ``X-Request-ID`` when it is sane, else generated.

The id is kept in a context variable for the duration of the request, so log records and
outgoing calls (:func:`outgoing_headers`) carry it, and it is returned on every response.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable
from contextvars import ContextVar, Token

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


class _IdSource:
    """Ids unique without a system call each: a random 64-bit prefix per process (drawn again
    in a forked child) and a counter. They identify; they are not secrets."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _IdSource()
os.register_at_fork(after_in_child=_ids.reseed)


def new_request_id() -> str:
    """32 hex digits, as a UUID's ``hex``: 16 fixed for the process, 16 counted."""
    return _ids.next()


def accept_request_id(value: str | None) -> str:
    """The incoming id if it is well formed, else a fresh one."""
    if value and _VALID.fullmatch(value):
        return value
    return new_request_id()


Headers = Iterable[tuple[bytes, bytes]]


def incoming_request_id(headers: Headers) -> str | None:
    """The raw ``X-Request-ID`` of an ASGI scope's headers, if any (not yet checked)."""
    for name, value in headers:
        if name == _HEADER_BYTES:
            return value.decode("latin-1")
    return None


def bind_request_id(rid: str) -> Token[str | None]:
    """Make ``rid`` the current request's id; :func:`reset_request_id` with the token ends it."""
    return _request_id.set(rid)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def with_request_id(headers: Headers, rid: bytes) -> list[tuple[bytes, bytes]]:
    """Response headers carrying ``rid`` and ``nosniff``, whatever the app set for them (and
    without a ``Server`` header)."""
    out = [(k, v) for k, v in headers if k not in _REPLACED_HEADERS]
    out.append((_HEADER_BYTES, rid))
    out.append((_NOSNIFF, b"nosniff"))
    return out


def log_access(method: str, path: str, status: int, seconds: float) -> None:
    """The request's access-log line (path without its query string)."""
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(
            "request",
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            },
        )
