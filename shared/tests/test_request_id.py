"""X-Request-ID: taken when sane, replaced when hostile, generated otherwise, on every response."""

from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message
from svckit_support import client_for, service_app

from svckit.app import ServiceMiddleware
from svckit.metrics import Metrics
from svckit.request_id import (
    HEADER,
    accept_request_id,
    current_request_id,
    new_request_id,
    outgoing_headers,
)

GENERATED = re.compile(r"^[0-9a-f]{32}$")


def build_app() -> FastAPI:
    app = service_app()

    @app.get("/echo")
    async def echo() -> dict[str, Any]:
        return {"current": current_request_id(), "outgoing": outgoing_headers()}

    @app.get("/sync-echo")
    def sync_echo() -> dict[str, Any]:  # runs in a worker thread: the id must follow
        return {"current": current_request_id()}

    return app


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_app()


@pytest.mark.parametrize(
    "incoming",
    ["abc", "0f" * 16, "req-1.2:3_x", "a" * 128, "550e8400-e29b-41d4-a716-446655440000"],
)
async def test_sane_id_is_taken(app: FastAPI, incoming: str) -> None:
    async with client_for(app) as client:
        response = await client.get("/echo", headers={HEADER: incoming})
    assert response.headers[HEADER] == incoming
    assert response.json() == {"current": incoming, "outgoing": {HEADER: incoming}}


@pytest.mark.parametrize(
    "incoming",
    ["a" * 129, "has space", "semi;colon", 'quote"d', "<script>", "naïve", "a/b", ""],
    ids=["too-long", "space", "semicolon", "quote", "html", "non-ascii", "slash", "empty"],
)
async def test_hostile_id_is_replaced(app: FastAPI, incoming: str) -> None:
    async with client_for(app) as client:
        response = await client.get("/echo", headers=[(HEADER.encode(), incoming.encode())])
    rid = response.headers[HEADER]
    assert rid != incoming
    assert GENERATED.match(rid)
    assert response.json()["current"] == rid


async def test_missing_id_is_generated_and_unique(app: FastAPI) -> None:
    async with client_for(app) as client:
        ids = {(await client.get("/echo")).headers[HEADER] for _ in range(5)}
    assert len(ids) == 5
    assert all(GENERATED.match(rid) for rid in ids)


def test_generated_ids_are_unique_per_process_and_after_fork() -> None:
    first, second = new_request_id(), new_request_id()
    assert first != second
    assert first[:16] == second[:16]  # the process's prefix, then a counter
    read, write = os.pipe()
    with warnings.catch_warnings():  # fork() in a process with threads: the child only writes
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert GENERATED.match(child)
    assert child[:16] != first[:16]


async def test_id_reaches_sync_endpoints(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/sync-echo", headers={HEADER: "sync-1"})
    assert response.json() == {"current": "sync-1"}


async def test_every_response_carries_id_and_nosniff(app: FastAPI) -> None:
    async with client_for(app) as client:
        for path in ("/echo", "/nowhere", "/healthz", "/metrics"):
            response = await client.get(path)
            assert GENERATED.match(response.headers[HEADER]), path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "server" not in response.headers


def test_accept_request_id() -> None:
    assert accept_request_id("ok-1") == "ok-1"
    assert GENERATED.match(accept_request_id(None))
    assert GENERATED.match(accept_request_id("x\n"))  # "$" would have let this through


def test_outside_a_request_there_is_no_id() -> None:
    assert current_request_id() is None
    assert outgoing_headers() == {}


async def run_raw(
    raw_headers: list[tuple[bytes, bytes]], app_headers: list[tuple[bytes, bytes]] | None = None
) -> list[Message]:
    """Drive the middleware with a raw ASGI scope: headers no HTTP client would send."""
    seen: dict[str, Any] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen["rid"] = current_request_id()
        await send(
            {"type": "http.response.start", "status": 204, "headers": list(app_headers or [])}
        )
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": raw_headers}
    await ServiceMiddleware(inner, metrics=Metrics("test"), access_log=False)(scope, receive, send)
    start = sent[0]
    assert dict(start["headers"])[b"x-request-id"].decode() == seen["rid"]
    return sent


@pytest.mark.parametrize(
    "value",
    [b"abc\r\nSet-Cookie: a=b", b"abc\n", b"abc\r", b"\x00abc", b"abc\xff", b"a" * 10_000],
    ids=["crlf-injection", "trailing-lf", "trailing-cr", "nul", "latin1-byte", "10kb"],
)
async def test_raw_hostile_header_never_reaches_the_response(value: bytes) -> None:
    sent = await run_raw([(b"x-request-id", value)])
    rid = dict(sent[0]["headers"])[b"x-request-id"]
    assert GENERATED.match(rid.decode())
    assert b"\n" not in rid


async def test_app_headers_are_not_duplicated() -> None:
    sent = await run_raw(
        [(b"x-request-id", b"mine")],
        app_headers=[
            (b"x-request-id", b"forged"),
            (b"x-content-type-options", b"nosniff"),
            (b"server", b"uvicorn"),
            (b"x-other", b"kept"),
        ],
    )
    headers = sent[0]["headers"]
    assert headers.count((b"x-request-id", b"mine")) == 1
    assert [k for k, _ in headers].count(b"x-request-id") == 1
    assert [k for k, _ in headers].count(b"x-content-type-options") == 1
    assert (b"x-other", b"kept") in headers
    assert b"server" not in dict(headers)


async def test_access_log_line_carries_id_status_and_duration(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="svckit.access"):
        async with client_for(app) as client:
            await client.get("/echo?token=secret", headers={HEADER: "log-1"})
    [record] = [r for r in caplog.records if r.name == "svckit.access"]
    assert record.__dict__["method"] == "GET"
    assert record.__dict__["path"] == "/echo"  # no query string: it may hold secrets
    assert record.__dict__["status"] == 200
    assert record.__dict__["duration_ms"] >= 0


async def test_access_log_can_be_disabled(caplog: pytest.LogCaptureFixture) -> None:
    app = service_app(access_log=False)
    with caplog.at_level(logging.INFO, logger="svckit.access"):
        async with client_for(app) as client:
            await client.get("/healthz")
    assert not [r for r in caplog.records if r.name == "svckit.access"]
