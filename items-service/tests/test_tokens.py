"""Token verification on items-service: cache, auth-service outages, deleted users, readiness."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from items_service.tokens import CachingTokenVerifier, DeletedUsers
from svckit.jwks import JWKSCache
from svckit.testing.keys import JWKSServer, SigningKey, access_claims
from svckit.tokens import InvalidToken

from .conftest import ISSUER, Tokens, create_item, make_settings, serve


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://someone.else"},
        {"aud": "other-api"},
        {"exp": 1_000_000, "iat": 999_000, "nbf": 999_000},
        {"sub": "not-a-number"},
        {"sub": "9999999999999999999"},  # 19 digits, beyond PostgreSQL's bigint
    ],
)
async def test_unacceptable_tokens_are_401(
    client: httpx.AsyncClient, tokens: Tokens, claims: dict[str, Any]
) -> None:
    response = await client.get("/items/my-items", headers=tokens.headers(1, **claims))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_token_signed_by_an_unknown_key_is_401(
    client: httpx.AsyncClient, jwks_server: JWKSServer
) -> None:
    stranger = SigningKey.generate()
    token = stranger.sign(access_claims(issuer=ISSUER, audience="api"))
    response = await client.get("/items/my-items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_admin_role_comes_from_the_token(client: httpx.AsyncClient, tokens: Tokens) -> None:
    item = await create_item(client, tokens, 1)
    not_admin = await client.delete(
        f"/items/{item['id']}", headers=tokens.headers(2, roles=["user"])
    )
    assert not_admin.status_code == 403
    admin = await client.delete(f"/items/{item['id']}", headers=tokens.headers(2, admin=True))
    assert admin.status_code == 200


async def test_repeated_calls_with_one_token_skip_verification(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, jwks_server: JWKSServer
) -> None:
    verifier: CachingTokenVerifier = app.state.token_verifier
    headers = tokens.headers(1)
    for _ in range(5):
        assert (await client.get("/items/my-items", headers=headers)).status_code == 200
    assert verifier.misses == 1
    assert verifier.hits == 4
    assert jwks_server.requests == 1


async def test_protected_routes_keep_working_while_auth_service_is_down(
    client: httpx.AsyncClient, tokens: Tokens, jwks_server: JWKSServer
) -> None:
    assert (await client.get("/items/my-items", headers=tokens.headers(1))).status_code == 200
    jwks_server.stop()  # auth-service gone: the cached keys keep verifying
    response = await client.post("/items/", json={"title": "t"}, headers=tokens.headers(2))
    assert response.status_code == 200
    assert (await client.get("/items/")).status_code == 200


async def test_without_any_keys_protected_routes_are_503_and_public_reads_work(
    database_url: str, tokens: Tokens
) -> None:
    dead = JWKSServer(keys=[], status=503).start()
    try:
        settings = make_settings(database_url, dead.url, jwks_refresh_cooldown_seconds=0)
        async with serve(settings) as (_app, client):
            response = await client.get("/items/my-items", headers=tokens.headers(1))
            assert response.status_code == 503
            assert response.json()["code"] == "keys_unavailable"
            assert (await client.get("/items/")).status_code == 200
            assert (await client.get("/items/1")).status_code == 404
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {
                "database": "ok",
                "verification_keys": "unavailable",
            }
            # No token at all is still 401, not 503.
            assert (await client.get("/items/my-items")).status_code == 401
    finally:
        dead.stop()


async def test_readiness_and_liveness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "verification_keys": "ok"},
    }


async def test_deleted_users_recorded_before_start_are_refused(
    database_url: str, jwks_server: JWKSServer, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    await sql.execute("INSERT INTO deleted_users (user_id, event_id) VALUES (5, gen_random_uuid())")
    async with serve(make_settings(database_url, jwks_server.url)) as (_app, client):
        refused = await client.post("/items/", json={"title": "t"}, headers=tokens.headers(5))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert (await client.get("/items/my-items", headers=tokens.headers(6))).status_code == 200


async def test_deletions_by_other_replicas_are_picked_up(
    database_url: str, jwks_server: JWKSServer, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, jwks_server.url, deleted_users_refresh_seconds=0.05)
    async with serve(settings) as (app, client):
        headers = tokens.headers(8)
        assert (await client.get("/items/my-items", headers=headers)).status_code == 200
        # Another replica's consumer applied the deletion: only the table tells this one.
        await sql.execute(
            "INSERT INTO deleted_users (user_id, event_id) VALUES (8, gen_random_uuid())"
        )
        deleted: DeletedUsers = app.state.runtime.deleted_users
        for _ in range(100):
            if 8 in deleted:
                break
            await asyncio.sleep(0.02)
        assert 8 in deleted
        # The cached verification of this very token does not bypass the check.
        assert (await client.get("/items/my-items", headers=headers)).status_code == 401


async def test_insert_for_a_deleted_user_is_refused_even_if_the_token_check_raced(
    client: httpx.AsyncClient, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    # The in-memory set has not heard of the deletion yet, the database has.
    await sql.execute("INSERT INTO deleted_users (user_id, event_id) VALUES (6, gen_random_uuid())")
    response = await client.post("/items/", json={"title": "t"}, headers=tokens.headers(6))
    assert response.status_code == 401
    assert await sql.fetchval("SELECT count(*) FROM items") == 0
    assert (await client.get("/items/")).headers["x-total-count"] == "0"


# ---------------------------------------------------------------- the verifier on its own


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_cached_tokens_expire_with_their_exp(jwks_server: JWKSServer, tokens: Tokens) -> None:
    cache = JWKSCache(jwks_server.url)
    clock = _Clock(0)
    verifier = CachingTokenVerifier(cache, issuer=ISSUER, audience="api", leeway=0, clock=clock)
    try:
        token = tokens.token(1)
        claims = await verifier.verify(token)
        clock.now = claims.expires_at - 1
        await verifier.verify(token)
        assert (verifier.hits, verifier.misses) == (1, 1)
        clock.now = claims.expires_at
        await verifier.verify(token)  # expired in the cache: verified afresh (PyJWT's clock)
        assert verifier.misses == 2
    finally:
        await cache.aclose()


async def test_cache_is_bounded(jwks_server: JWKSServer, tokens: Tokens) -> None:
    cache = JWKSCache(jwks_server.url)
    verifier = CachingTokenVerifier(cache, issuer=ISSUER, audience="api", cache_size=3)
    try:
        first = tokens.token(1)
        await verifier.verify(first)
        for user in range(2, 6):
            await verifier.verify(tokens.token(user))
        assert len(verifier._cache) == 3
        await verifier.verify(first)  # evicted: a miss
        assert verifier.misses == 6
    finally:
        await cache.aclose()


async def test_a_revoked_key_invalidates_cached_tokens(
    jwks_server: JWKSServer, signing_key: SigningKey, tokens: Tokens
) -> None:
    clock = _Clock(1000.0)
    cache = JWKSCache(jwks_server.url, clock=clock, min_max_age=1, refresh_cooldown=0)
    verifier = CachingTokenVerifier(cache, issuer=ISSUER, audience="api")
    try:
        token = tokens.token(1)
        await verifier.verify(token)
        replacement = SigningKey.generate()
        jwks_server.keys = [replacement]  # the old key is withdrawn
        jwks_server.max_age = 1
        clock.now += 10_000  # the cached JWKS is stale: the next lookup refetches it
        await cache.refresh()
        with pytest.raises(InvalidToken):
            await verifier.verify(token)
    finally:
        await cache.aclose()


async def test_metrics_expose_jwks_fetches_per_worker(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    headers = tokens.headers(1)
    await client.get("/items/my-items", headers=headers)
    await client.get("/items/my-items", headers=headers)
    text = (await client.get("/metrics")).text
    pid = os.getpid()
    assert f'items_jwks_fetches_total{{pid="{pid}"}} 1.0' in text
    assert f'items_jwks_fetch_failures_total{{pid="{pid}"}} 0.0' in text
    assert f'items_token_cache_hits_total{{pid="{pid}"}} 1.0' in text
    assert "http_requests_total{" in text
