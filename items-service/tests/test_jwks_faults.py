"""items-service against a misbehaving JWKS endpoint: failing, garbage, slow, redirecting.

ARCHITECTURE.md, "Tokens": with keys in the cache, tokens of known keys keep verifying at normal
speed whatever the JWKS endpoint does (stale-if-error); with no keys at all protected routes
answer 503, never 200; the fetch follows no redirect; a key published later is accepted after
one refetch. The endpoint is a real loopback HTTP server (svckit's ``JWKSServer``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from svckit.jwks import JWKSCache
from svckit.testing.keys import JWKSServer, SigningKey, access_claims

from .conftest import ISSUER, Tokens, make_settings, serve

# Fast enough that a request waiting on the JWKS would show; generous for a loaded 2-core box.
NORMAL_LATENCY = 0.5

FAULTS: dict[str, dict[str, Any]] = {
    "http-500": {"status": 500},
    "http-404": {"status": 404},
    "garbage": {"body": b"\x00\xff not json at all"},
    "html": {"body": b"<html><body>maintenance</body></html>"},
    "not-a-jwks": {"body": b'{"keys": "none"}'},
    "no-keys": {"body": b'{"keys": []}'},
    "private-key-members": {"body": b'{"keys": [{"kty": "RSA", "kid": "k", "d": "AQAB"}]}'},
    "oversize": {"body": b'{"keys": [' + b'{"kty": "oct"},' * 40_000 + b"{}]}"},
}


def _apply(server: JWKSServer, fault: dict[str, Any]) -> None:
    for name, value in fault.items():
        setattr(server, name, value)


def _stranger_headers() -> dict[str, str]:
    """A token of a key nobody publishes: forces the cache to refetch the JWKS."""
    token = SigningKey.generate().sign(access_claims(issuer=ISSUER, audience="api"))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def endpoint(signing_key: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer(keys=[signing_key]).start()
    yield server
    server.stop()


@pytest.fixture
async def warm_app(
    database_url: str, endpoint: JWKSServer, tokens: Tokens
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its JWKS cache warm; every unknown kid may refetch (no cooldown)."""
    settings = make_settings(
        database_url, endpoint.url, jwks_refresh_cooldown_seconds=0, jwks_timeout_seconds=1.0
    )
    async with serve(settings) as (app, client):
        response = await client.get("/items/my-items", headers=tokens.headers(1))
        assert response.status_code == 200
        yield app, client


async def _timed_get(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.get("/items/my-items", headers=headers)
    return response.status_code, time.perf_counter() - started


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_warm_cache_keeps_verifying_known_keys(
    warm_app: tuple[FastAPI, httpx.AsyncClient],
    endpoint: JWKSServer,
    tokens: Tokens,
    signing_key: SigningKey,
    fault: str,
) -> None:
    app, client = warm_app
    jwks: JWKSCache = app.state.runtime.jwks
    _apply(endpoint, FAULTS[fault])
    failures = jwks.fetch_failures

    # An unknown kid makes the cache refetch from the broken endpoint: still a clean 401.
    response = await client.get("/items/my-items", headers=_stranger_headers())
    assert response.status_code == 401
    assert jwks.fetch_failures == failures + 1
    assert signing_key.kid in jwks.kids  # the failed fetch dropped nothing

    for user in range(1, 6):  # fresh tokens (new jti): each one is really verified
        status, elapsed = await _timed_get(client, tokens.headers(user))
        assert status == 200
        assert elapsed < NORMAL_LATENCY, elapsed
    created = await client.post("/items/", json={"title": "t"}, headers=tokens.headers(7))
    assert created.status_code == 200


async def test_warm_cache_with_slow_endpoint_answers_known_keys_at_normal_speed(
    warm_app: tuple[FastAPI, httpx.AsyncClient], endpoint: JWKSServer, tokens: Tokens
) -> None:
    app, client = warm_app
    endpoint.delay = 3.0  # beyond the 1 s fetch deadline

    # An unknown kid starts a fetch that hangs on the slow endpoint...
    stranger = asyncio.create_task(_timed_get(client, _stranger_headers()))
    await asyncio.sleep(0.1)
    jwks: JWKSCache = app.state.runtime.jwks
    assert jwks.refreshing
    # ...while tokens of known keys are answered at once, not behind that fetch.
    for user in range(1, 6):
        status, elapsed = await _timed_get(client, tokens.headers(user))
        assert status == 200
        assert elapsed < NORMAL_LATENCY, elapsed
    assert jwks.refreshing, "the slow fetch should still be in flight"
    # The unknown kid itself is cut off by the fetch deadline: 401, never a hang or a 5xx.
    status, elapsed = await stranger
    assert status == 401
    assert elapsed < 2.0, elapsed


COLD_FAULTS = {**FAULTS, "slow": {"delay": 3.0}}


@pytest.mark.parametrize("fault", sorted([*COLD_FAULTS, "down"]))
async def test_cold_cache_with_broken_endpoint_is_503_never_200(
    database_url: str, endpoint: JWKSServer, tokens: Tokens, fault: str
) -> None:
    if fault == "down":
        endpoint.stop()
    else:
        _apply(endpoint, COLD_FAULTS[fault])
    url = endpoint.url if fault != "down" else "http://127.0.0.1:9/.well-known/jwks.json"
    settings = make_settings(
        database_url, url, jwks_refresh_cooldown_seconds=0, jwks_timeout_seconds=1.0
    )
    async with serve(settings) as (_app, client):
        for headers in (tokens.headers(1), tokens.headers(2, admin=True)):
            for method, path, body in [
                ("GET", "/items/my-items", None),
                ("POST", "/items/", {"title": "t"}),
            ]:
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 503, (method, path, response.text)
                assert response.json()["code"] == "keys_unavailable"
                assert "retry-after" in response.headers
        # Public reads do not depend on keys.
        assert (await client.get("/items/")).status_code == 200


async def test_cold_cache_recovers_when_the_endpoint_does(
    database_url: str, endpoint: JWKSServer, tokens: Tokens
) -> None:
    endpoint.status = 500
    settings = make_settings(database_url, endpoint.url, jwks_refresh_cooldown_seconds=0)
    async with serve(settings) as (_app, client):
        assert (await client.get("/items/my-items", headers=tokens.headers(1))).status_code == 503
        endpoint.status = 200
        assert (await client.get("/items/my-items", headers=tokens.headers(1))).status_code == 200


async def test_redirecting_endpoint_is_not_followed(
    database_url: str, signing_key: SigningKey, tokens: Tokens
) -> None:
    target = JWKSServer(keys=[signing_key]).start()  # would serve the right key
    redirector = JWKSServer(keys=[], redirect_to=target.url).start()
    try:
        settings = make_settings(database_url, redirector.url, jwks_refresh_cooldown_seconds=0)
        async with serve(settings) as (_app, client):
            response = await client.get("/items/my-items", headers=tokens.headers(1))
            assert response.status_code == 503
        assert redirector.requests >= 1
        assert target.requests == 0
    finally:
        redirector.stop()
        target.stop()


async def test_key_published_later_is_accepted_after_one_refetch(
    warm_app: tuple[FastAPI, httpx.AsyncClient], endpoint: JWKSServer, signing_key: SigningKey
) -> None:
    app, client = warm_app
    jwks: JWKSCache = app.state.runtime.jwks
    new_key = SigningKey.generate()
    token = new_key.sign(access_claims(issuer=ISSUER, audience="api", sub="3"))
    endpoint.keys = [signing_key, new_key]  # published; the cache has not seen it yet
    fetches = jwks.fetch_count
    response = await client.get("/items/my-items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert jwks.fetch_count == fetches + 1
    # Known now: the next token of that key needs no fetch.
    token = new_key.sign(access_claims(issuer=ISSUER, audience="api", sub="4"))
    response = await client.get("/items/my-items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert jwks.fetch_count == fetches + 1


async def test_garbage_kids_cost_one_fetch_per_cooldown(
    database_url: str, endpoint: JWKSServer, tokens: Tokens
) -> None:
    settings = make_settings(database_url, endpoint.url, jwks_refresh_cooldown_seconds=30)
    async with serve(settings) as (app, client):
        assert (await client.get("/items/my-items", headers=tokens.headers(1))).status_code == 200
        jwks: JWKSCache = app.state.runtime.jwks
        await jwks.wait_refreshed()
        before = endpoint.requests
        stranger = SigningKey.generate()
        responses = await asyncio.gather(
            *(
                client.get(
                    "/items/my-items",
                    headers={
                        "Authorization": "Bearer "
                        + stranger.sign(
                            access_claims(issuer=ISSUER, audience="api"),
                            headers={"kid": f"random-{n}"},
                        )
                    },
                )
                for n in range(100)
            )
        )
        assert {r.status_code for r in responses} == {401}
        # Within one cooldown: at most one refetch, however many garbage kids arrive.
        assert endpoint.requests - before <= 1
