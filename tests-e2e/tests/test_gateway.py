"""The gateway: per-IP login limit shared through Redis, edges, what is not routed."""

from __future__ import annotations

import time

import httpx
import pytest

from devstack.stack import Stack
from e2e.api import Client, ClientFactory, assert_envelope, unique_username

LOGIN_LIMIT = 5  # conftest.STACK_ENV keeps the contract's default


def _exhaust_login_budget(client: Client) -> httpx.Response:
    """Send failing logins until the gateway refuses one; return that refusal."""
    for attempt in range(LOGIN_LIMIT + 1):
        # A different unknown account each time, so auth-service's per-account throttle
        # never answers first: whatever 429 comes is the gateway's.
        response = client.login_response(unique_username(), "Wr0ng!Password")
        if attempt < LOGIN_LIMIT:
            assert response.status_code == 401, (attempt, response.text)
    return response


def test_login_limit_per_client_address(client_factory: ClientFactory) -> None:
    attacker = client_factory()
    refused = _exhaust_login_budget(attacker)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1

    # Another client address still has its whole budget.
    other = client_factory()
    assert other.login_response(unique_username(), "Wr0ng!Password").status_code == 401


def test_spoofed_forwarded_for_does_not_reset_the_limit(client_factory: ClientFactory) -> None:
    attacker = client_factory()
    _exhaust_login_budget(attacker)
    spoofed = attacker.post(
        "/auth/token",
        data={"username": unique_username(), "password": "x"},
        headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"},
    )
    assert spoofed.status_code == 429


@pytest.mark.needs_stack
def test_two_gateways_share_one_budget(live_stack: Stack, client_factory: ClientFactory) -> None:
    second_url = live_stack.start_gateway()
    address = client_factory().source_address
    first = client_factory(address)
    with Client(second_url, address) as second:
        statuses = []
        for i in range(LOGIN_LIMIT + 1):
            via = first if i % 2 == 0 else second
            statuses.append(via.login_response(unique_username(), "Wr0ng!Password").status_code)
    assert statuses[:LOGIN_LIMIT] == [401] * LOGIN_LIMIT
    assert statuses[LOGIN_LIMIT] == 429


def test_metrics_and_probes_are_not_routed(client: Client) -> None:
    for path in ("/metrics", "/healthz", "/readyz", "/items/../metrics"):
        assert client.get(path).status_code == 404, path


def test_security_headers_on_every_response(client: Client) -> None:
    for response in (client.get("/items/"), client.get("/nope"), client.get("/auth/me")):
        assert response.headers.get("x-content-type-options") == "nosniff"
        server = response.headers.get("server", "")
        assert not any(ch.isdigit() for ch in server), server


def test_oversized_body_is_413(client: Client) -> None:
    response = client.post(
        "/auth/register",
        content=b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_request_id_round_trip(client: Client) -> None:
    response = client.get("/items/", headers={"X-Request-ID": "e2e-trace-123"})
    assert response.headers["x-request-id"] == "e2e-trace-123"
    missing = client.get("/items/999999999")
    assert_envelope(missing, 404)
    assert missing.json()["request_id"] == missing.headers["x-request-id"]


@pytest.mark.needs_stack
@pytest.mark.needs_embedded_redis
def test_redis_down_login_fails_fast_then_recovers(live_stack: Stack, client: Client) -> None:
    user = client.register()
    live_stack.stop_component("redis")
    try:
        started = time.perf_counter()
        response = client.login_response(user["username"])
        elapsed = time.perf_counter() - started
        # Traefik's limiter fails closed with 500 (not configurable); it must be quick.
        assert response.status_code in (500, 503)
        assert elapsed < 1.5, elapsed
        # Routes without a limiter are unaffected.
        assert client.get("/items/", params={"limit": 1}).status_code == 200
    finally:
        live_stack.start_component("redis")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if client.login_response(user["username"]).status_code == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail("login did not recover after Redis came back")
