"""Bearer dependencies: 401 Bearer (missing), 401 Bearer error="invalid_token" (bad), 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from svckit_support import AUDIENCE, ISSUER, Clock, client_for, service_app

from svckit.bearer import Claims, OptionalClaims
from svckit.jwks import JWKSCache
from svckit.testing.keys import JWKSServer, SigningKey, access_claims
from svckit.testing.servers import free_port
from svckit.tokens import TokenVerifier


def build_app(verifier: TokenVerifier | None) -> FastAPI:
    app = service_app()
    if verifier is not None:
        app.state.token_verifier = verifier

    @app.get("/me")
    async def me(claims: Claims) -> dict[str, Any]:
        return {"user_id": claims.user_id, "admin": claims.is_admin}

    @app.get("/maybe")
    async def maybe(claims: OptionalClaims) -> dict[str, Any]:
        return {"user_id": claims.user_id if claims else None}

    return app


@pytest.fixture
def app(verifier: TokenVerifier) -> FastAPI:
    return build_app(verifier)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token(client: httpx.AsyncClient, signing_key: SigningKey) -> None:
    token = signing_key.sign(
        access_claims(issuer=ISSUER, audience=AUDIENCE, sub="9", roles=["admin"])
    )
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"user_id": 9, "admin": True}
    assert (await client.get("/maybe", headers=bearer(token))).json() == {"user_id": 9}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Token abc"},
    ],
    ids=["absent", "empty", "scheme-only", "scheme-and-space", "basic", "other-scheme"],
)
async def test_missing_credentials_is_401_bearer(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["code"] == "not_authenticated"
    assert body["request_id"] == response.headers["X-Request-ID"]
    # optional: anonymous is fine
    assert (await client.get("/maybe", headers=headers)).json() == {"user_id": None}


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "x" * 9000, "é.é.é"],
    ids=["garbage", "three-parts", "alg-none", "oversized", "non-ascii"],
)
async def test_bad_token_is_401_invalid_token(client: httpx.AsyncClient, token: str) -> None:
    for path in ("/me", "/maybe"):  # an invalid token is refused even where auth is optional
        response = await client.get(path, headers=[(b"authorization", f"Bearer {token}".encode())])
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["code"] == "invalid_token"


async def test_expired_and_foreign_tokens_are_401(
    client: httpx.AsyncClient, signing_key: SigningKey, attacker_key: SigningKey
) -> None:
    expired = signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE, now=0))
    foreign = attacker_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE))
    for token in (expired, foreign):
        response = await client.get("/me", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"


async def test_no_keys_is_503(signing_key: SigningKey, clock: Clock) -> None:
    cache = JWKSCache(f"http://127.0.0.1:{free_port()}/jwks", clock=clock, timeout=0.5)
    app = build_app(TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE))
    token = signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE))
    async with client_for(app) as client:
        for path in ("/me", "/maybe"):
            response = await client.get(path, headers=bearer(token))
            assert response.status_code == 503
            assert response.json()["code"] == "keys_unavailable"
            assert response.headers["Retry-After"] == "5"
        # without a token there is nothing to verify: 401 / anonymous, not 503
        assert (await client.get("/me")).status_code == 401
        assert (await client.get("/maybe")).status_code == 200
    await cache.aclose()


async def test_keys_recover_after_the_endpoint_comes_back(
    signing_key: SigningKey, clock: Clock
) -> None:
    server = JWKSServer(keys=[signing_key], status=500).start()
    cache = JWKSCache(server.url, clock=clock, timeout=0.5)
    app = build_app(TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE))
    token = signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE))
    try:
        async with client_for(app) as client:
            assert (await client.get("/me", headers=bearer(token))).status_code == 503
            server.status = 200
            clock.advance(10)
            assert (await client.get("/me", headers=bearer(token))).status_code == 200
    finally:
        server.stop()
        await cache.aclose()


async def test_app_without_verifier_is_503_not_500(signing_key: SigningKey) -> None:
    token = signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE))
    async with client_for(build_app(None)) as client:
        response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 503
    assert response.json()["code"] == "keys_unavailable"


def test_openapi_declares_the_oauth2_scheme(app: FastAPI) -> None:
    schema = app.openapi()
    [scheme] = schema["components"]["securitySchemes"].values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
