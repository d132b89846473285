"""The launcher for real: the gateway in front of both services, with every middleware."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from stack_env import (
    ALLOWED_ORIGIN,
    LOGIN_LIMIT,
    MAX_BODY_BYTES,
    REFRESH_LIMIT,
    REGISTER_LIMIT,
    ClientFactory,
)

from devstack import Stack
from devstack.mailserver import stored_messages

WRONG_PASSWORD = "Wr0ng!Password"


def login_form() -> dict[str, str]:
    return {"username": f"nobody_{uuid.uuid4().hex[:12]}", "password": WRONG_PASSWORD}


def raw_get(port: int, path: str) -> tuple[int, str]:
    """GET with the path sent byte for byte (httpx would normalise dot segments)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def test_gateway_routes_to_both_services(stack: Stack, client: httpx.Client) -> None:
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"], "auth-service publishes its keys through the gateway"
    metadata = client.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    assert metadata.json()["issuer"] == stack.base_url
    for path in ("/docs/auth", "/docs/items"):
        docs = client.get(path)
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
    assert "/auth/token" in client.get("/openapi/auth.json").json()["paths"]
    assert any(p.startswith("/items") for p in client.get("/openapi/items.json").json()["paths"])
    assert client.get("/").status_code == 200
    items = client.get("/items/", params={"limit": 1})
    assert items.status_code == 200
    assert "x-total-count" in items.headers


def test_the_gateway_runs_go_on_the_cores_the_sizing_gives_it(stack: Stack) -> None:
    pid = stack.pid("gateway")
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert [v for v in environ if v.startswith(b"GOMAXPROCS=")] == [
        f"GOMAXPROCS={stack.sizing.gateway_procs}".encode()
    ]


def test_internal_endpoints_are_not_reachable_through_the_gateway(stack: Stack) -> None:
    port = int(stack.base_url.rsplit(":", 1)[1])
    for path in ("/metrics", "/healthz", "/readyz", "/items/../metrics", "/auth/%2e%2e/metrics"):
        status, body = raw_get(port, path)
        assert status in (400, 404), f"{path} answered {status}"
        assert "http_requests_total" not in body
    # They exist, on the internal addresses only.
    assert httpx.get(f"{stack.auth_url}/metrics").status_code == 200
    assert httpx.get(f"{stack.items_url}/metrics").status_code == 200
    gateway_metrics = httpx.get(f"{stack.metrics_url}/metrics")
    assert gateway_metrics.status_code == 200
    assert "traefik_entrypoint_requests_total" in gateway_metrics.text


def test_security_headers(client: httpx.Client) -> None:
    response = client.get("/items/", params={"limit": 1})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers
    assert response.headers["x-request-id"]


def test_cors_allows_only_configured_origins(client: httpx.Client) -> None:
    preflight = client.options(
        "/items/",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    simple = client.get("/items/", params={"limit": 1}, headers={"Origin": ALLOWED_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "X-Total-Count" in simple.headers["access-control-expose-headers"]
    foreign = client.get("/items/", params={"limit": 1}, headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in foreign.headers


def test_oversized_body_is_refused_with_413(client: httpx.Client) -> None:
    big = b'{"title": "' + b"x" * MAX_BODY_BYTES + b'"}'
    headers = {"Content-Type": "application/json"}
    assert client.post("/items/", content=big, headers=headers).status_code == 413
    # Without Content-Length (chunked) too.
    chunks = iter([big[:1000], big[1000:]])
    assert client.post("/items/", content=chunks, headers=headers).status_code == 413
    # A body under the limit reaches the service (401: no bearer token).
    small = client.post("/items/", json={"title": "x" * 1000})
    assert small.status_code == 401
    assert small.json()["code"] == "not_authenticated"


def test_login_rate_limit_answers_429_with_retry_after(client_factory: ClientFactory) -> None:
    client = client_factory()
    statuses = [
        client.post("/auth/token", data=login_form()).status_code for _ in range(LOGIN_LIMIT)
    ]
    assert statuses == [401] * LOGIN_LIMIT
    limited = client.post("/auth/token", data=login_form())
    assert limited.status_code == 429
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    # A client's X-Forwarded-For is not trusted: it does not buy a new budget.
    spoofed = client.post(
        "/auth/token", data=login_form(), headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert spoofed.status_code == 429
    # Another client address has a budget of its own; other routes are not limited.
    assert client_factory().post("/auth/token", data=login_form()).status_code == 401
    assert client.get("/.well-known/jwks.json").status_code == 200


def test_register_and_refresh_are_rate_limited(client_factory: ClientFactory) -> None:
    client = client_factory()
    register = [client.post("/auth/register", json={}).status_code for _ in range(REGISTER_LIMIT)]
    assert register == [422] * REGISTER_LIMIT
    assert client.post("/auth/register", json={}).status_code == 429
    refresh = [
        client.post("/auth/refresh", json={"refresh_token": "x" * 43}).status_code
        for _ in range(REFRESH_LIMIT)
    ]
    assert 429 not in refresh
    assert client.post("/auth/refresh", json={"refresh_token": "x" * 43}).status_code == 429


def test_two_gateways_share_one_login_budget(stack: Stack, client_factory: ClientFactory) -> None:
    second = stack.start_gateway()
    try:
        first_client = client_factory(source_address="127.0.1.1")
        second_client = client_factory(base_url=second, source_address="127.0.1.1")
        for _ in range(LOGIN_LIMIT):
            assert first_client.post("/auth/token", data=login_form()).status_code == 401
        assert second_client.post("/auth/token", data=login_form()).status_code == 429
    finally:
        stack.stop_component(f"gateway-{second.rsplit(':', 1)[1]}")


def _timed_logins(client: httpx.Client, count: int) -> list[tuple[int, float]]:
    results = []
    for _ in range(count):
        started = time.perf_counter()
        status = client.post("/auth/token", data=login_form()).status_code
        results.append((status, round(time.perf_counter() - started, 3)))
    return results


def _wait_for_login_status(client: httpx.Client, status: int, timeout: float = 15) -> float:
    """Seconds until a login is answered ``status`` (the limiter works again)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if client.post("/auth/token", data=login_form()).status_code == status:
            return round(time.monotonic() - started, 3)
        time.sleep(0.1)
    pytest.fail(f"login did not answer {status} within {timeout} s")


def test_redis_down_login_fails_closed_and_fast(
    stack: Stack, client_factory: ClientFactory, record_property: Callable[[str, object], None]
) -> None:
    client = client_factory()
    _wait_for_login_status(client, 401)
    stack.stop_component("redis")
    try:
        results = _timed_logins(client, 5)
        # Routes without a rate limiter do not need Redis.
        assert client.get("/.well-known/jwks.json").status_code == 200
    finally:
        stack.start_component("redis")
    recovery = _wait_for_login_status(client, 401)
    record_property("redis_refused_login", results)
    record_property("redis_refused_recovery_seconds", recovery)
    print(f"Redis stopped (connection refused): {results}; counted again after {recovery} s")
    assert [status for status, _ in results] == [500] * 5
    # go-redis retries the dial internally until poolSize dials have failed (pool of 2:
    # ~0.9 s measured), then fails at once until its background redial succeeds.
    assert results[0][1] < 2.5
    assert max(t for _, t in results[1:]) < 1.0, "later failures are fast"
    assert recovery < 5


def test_redis_hung_login_fails_within_the_redis_timeout(
    stack: Stack, client_factory: ClientFactory, record_property: Callable[[str, object], None]
) -> None:
    client = client_factory()
    _wait_for_login_status(client, 401)
    stack.signal_component("redis", signal.SIGSTOP)
    try:
        results = _timed_logins(client, 3)
    finally:
        stack.signal_component("redis", signal.SIGCONT)
    recovery = _wait_for_login_status(client, 401)
    record_property("redis_hung_login", results)
    print(f"Redis hung (SIGSTOP): {results}; counted again after {recovery} s")
    assert [status for status, _ in results] == [500] * 3
    assert max(t for _, t in results) < 1.5, "bounded by GATEWAY_REDIS_TIMEOUT (200ms) per try"


def _gateway_log_entries(stack: Stack, name: str) -> list[dict[str, object]]:
    log = stack.read_log(name)
    assert "s3cr3t-t0ken" not in log, "request headers such as Authorization are not logged"
    # Our start markers ("--- ") and go-redis's own plain-text lines ("redis: ") aside,
    # every line is a JSON object.
    lines = [ln for ln in log.splitlines() if not ln.startswith(("--- ", "redis: "))]
    entries: list[dict[str, object]] = [json.loads(line) for line in lines]
    problems = [
        e for e in entries if e.get("level") in ("error", "fatal") and "middlewareType" not in e
    ]
    assert not problems, problems
    return entries


def _logged_paths(entries: list[dict[str, object]]) -> list[object]:
    return [e["RequestPath"] for e in entries if "RequestPath" in e]


def test_gateway_log_is_json_and_its_access_log_keeps_failures_only(
    stack: Stack, client: httpx.Client
) -> None:
    """`make run`'s default (GATEWAY_ACCESS_LOG=errors): a 404 is logged, a 200 is not."""
    bearer = {"Authorization": "Bearer s3cr3t-t0ken"}
    marker = uuid.uuid4().hex[:8]
    assert client.get("/items/", params={"limit": 1, "m": marker}, headers=bearer).is_success
    missing = client.get(f"/items/{2**62}", params={"m": marker}, headers=bearer)
    assert missing.status_code == 404
    time.sleep(0.2)
    paths = _logged_paths(_gateway_log_entries(stack, "gateway"))
    assert f"/items/{2**62}?m={marker}" in paths
    assert f"/items/?limit=1&m={marker}" not in paths


def test_gateway_access_log_all_keeps_every_request(stack: Stack) -> None:
    url = stack.start_gateway(env={"GATEWAY_ACCESS_LOG": "all"})
    name = f"gateway-{url.rsplit(':', 1)[1]}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            ok = client.get(
                "/items/", params={"limit": 1}, headers={"Authorization": "Bearer s3cr3t-t0ken"}
            )
            assert ok.is_success
        time.sleep(0.2)
        assert "/items/?limit=1" in _logged_paths(_gateway_log_entries(stack, name))
    finally:
        stack.stop_component(name)


def test_forwarded_for_is_trusted_only_from_configured_proxies(
    stack: Stack, client_factory: ClientFactory
) -> None:
    """Behind a trusted proxy (127.0.3.1 here) the limiter keys on X-Forwarded-For."""
    url = stack.start_gateway(trusted_ips=("127.0.3.1",), env={"GATEWAY_CLIENT_IP_DEPTH": "1"})
    try:
        proxy = client_factory(base_url=url, source_address="127.0.3.1")

        def login_as(client_ip: str, via: httpx.Client = proxy) -> int:
            headers = {"X-Forwarded-For": client_ip}
            return via.post("/auth/token", data=login_form(), headers=headers).status_code

        assert [login_as("198.51.100.1") for _ in range(LOGIN_LIMIT)] == [401] * LOGIN_LIMIT
        assert login_as("198.51.100.1") == 429
        assert login_as("198.51.100.2") == 401, "another client behind the proxy"
        # A peer that is not a trusted proxy cannot choose its client address: its
        # X-Forwarded-For is dropped, so rotating it buys nothing.
        direct = client_factory(base_url=url, source_address="127.0.3.2")
        statuses = [login_as(f"203.0.113.{n}", direct) for n in range(LOGIN_LIMIT + 1)]
        assert statuses[-1] == 429
    finally:
        stack.stop_component(f"gateway-{url.rsplit(':', 1)[1]}")


def test_mail_goes_to_the_local_smtp_server_as_files(stack: Stack, client: httpx.Client) -> None:
    username = f"mail_{uuid.uuid4().hex[:12]}"
    address = f"{username}@example.com"
    response = client.post(
        "/auth/register",
        json={"username": username, "email": address, "password": "Str0ng!Passw0rd"},
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 20
    found: list[EmailMessage] = []
    while time.monotonic() < deadline and not found:
        found = [m for m in stored_messages(stack.mail_dir) if m["To"] == address]
        time.sleep(0.2)
    assert found, "the verification message never reached the local SMTP server"
    text = found[0].get_body(preferencelist=("plain",))
    assert text is not None
    assert f"{stack.base_url}/verify-email?token=" in text.get_content()
    log_lines = [line for line in stack.read_log("mail").splitlines() if address in line]
    assert len(log_lines) == 1
    assert "Confirm your email address" in log_lines[0]
    assert "token" not in log_lines[0]
