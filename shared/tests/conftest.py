"""Fixtures of the svckit suite: real RSA keys, a real loopback JWKS server, a settable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from svckit_support import AUDIENCE, ISSUER, Clock

from svckit.jwks import JWKSCache
from svckit.testing.keys import JWKSServer, SigningKey
from svckit.tokens import TokenVerifier


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate(kid="key-1")


@pytest.fixture(scope="session")
def second_key() -> SigningKey:
    return SigningKey.generate(kid="key-2")


@pytest.fixture(scope="session")
def attacker_key() -> SigningKey:
    return SigningKey.generate(kid="attacker")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jwks_server(signing_key: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer(keys=[signing_key], max_age=300).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """One client for the suite (building one loads the CA bundle, ~40 ms)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
async def jwks_cache(
    jwks_server: JWKSServer, clock: Clock, http_client: httpx.AsyncClient
) -> AsyncIterator[JWKSCache]:
    cache = JWKSCache(
        jwks_server.url, client=http_client, clock=clock, refresh_cooldown=10, timeout=0.5
    )
    yield cache
    await cache.aclose()


@pytest.fixture
def verifier(jwks_cache: JWKSCache) -> TokenVerifier:
    return TokenVerifier(jwks_cache, issuer=ISSUER, audience=AUDIENCE, leeway=30)
