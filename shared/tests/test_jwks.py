"""JWKSCache against a real loopback HTTP server, with a clock the tests move by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from svckit_support import AUDIENCE, ISSUER, Clock

from svckit.jwks import JWKSCache, KeysUnavailable, parse_jwks, parse_max_age
from svckit.testing.keys import JWKSServer, SigningKey, access_claims
from svckit.testing.servers import free_port
from svckit.tokens import InvalidToken, TokenVerifier


def token(key: SigningKey, **headers: Any) -> str:
    return key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE), headers=headers or None)


def verifier_for(cache: JWKSCache) -> TokenVerifier:
    return TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)


def in_flight(cache: JWKSCache) -> bool:
    # a function, not the property inline: mypy would keep an asserted property narrowed
    return cache.refreshing


@contextlib.asynccontextmanager
async def fresh_cache(url: str, clock: Clock, **options: Any) -> AsyncIterator[JWKSCache]:
    options = {"refresh_cooldown": 10.0, "timeout": 0.5, **options}
    cache = JWKSCache(url, clock=clock, **options)
    try:
        yield cache
    finally:
        await cache.aclose()


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("public", None),
        ("public, max-age=300", 300),
        ("max-age=60", 60),
        ("MAX-AGE = 42, must-revalidate", 42),
        ('max-age="15"', 15),
        ("s-maxage=100", None),
        ("s-maxage=100, max-age=7", 7),
        ("no-store", 0),
        ("no-cache, max-age=300", 0),
        ("max-age=abc", None),
    ],
)
def test_parse_max_age(header: str | None, expected: int | None) -> None:
    assert parse_max_age(header) == expected


@pytest.mark.parametrize(
    "document",
    [None, [], "keys", {"keys": "x"}, {"keys": {}}, {"nokeys": []}],
    ids=repr,
)
def test_parse_jwks_refuses_non_documents(document: Any) -> None:
    with pytest.raises(ValueError, match="JWKS"):
        parse_jwks(document)


def test_parse_jwks_keeps_only_usable_rsa_signing_keys(
    signing_key: SigningKey, second_key: SigningKey
) -> None:
    small = SigningKey.generate(bits=1024, kid="small")
    private = {
        **json.loads(RSAAlgorithm.to_jwk(second_key.private_key)),
        "kid": "private",
    }
    ec_key = {
        **json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())),
        "kid": "ec",
    }
    twin_a = {**signing_key.jwk(), "kid": "twin"}
    twin_b = {**second_key.jwk(), "kid": "twin"}
    good = second_key.jwk()
    document = {
        "keys": [
            signing_key.jwk(),
            small.jwk(),
            private,
            ec_key,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            twin_a,
            twin_b,
            {**good, "kid": "enc", "use": "enc"},
            {**good, "kid": "ps", "alg": "PS256"},
            {**good, "kid": ""},
            {**good, "kid": 7},
            {k: v for k, v in good.items() if k != "kid"},
            {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
            {"kty": "RSA", "kid": "modulus-number", "n": 5, "e": "AQAB"},
            {"kty": "RSA", "kid": "modulus-list", "n": ["x"], "e": "AQAB"},
            {"kty": "RSA", "kid": "modulus-empty", "n": "", "e": "AQAB"},
            {"kty": "RSA", "kid": "exponent-one", "n": good["n"], "e": "AQ"},
            "not a key",
            None,
            good,
        ]
    }
    keys = parse_jwks(document)
    # One malformed member (PyJWT raises InvalidKeyError for several) spoils no other key.
    assert set(keys) == {signing_key.kid, second_key.kid}


# --------------------------------------------------------------------------- caching


async def test_one_fetch_for_many_verifications(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey
) -> None:
    verifier = verifier_for(jwks_cache)
    for _ in range(50):
        await verifier.verify(token(signing_key))
    await asyncio.gather(*(verifier.verify(token(signing_key)) for _ in range(50)))
    assert jwks_server.requests == 1
    assert jwks_cache.fetch_count == 1


async def test_cold_start_is_single_flight(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey
) -> None:
    jwks_server.delay = 0.05
    verifier = verifier_for(jwks_cache)
    results = await asyncio.gather(*(verifier.verify(token(signing_key)) for _ in range(100)))
    assert len(results) == 100
    assert jwks_server.requests == 1


async def test_max_age_is_honoured_and_stale_keys_are_revalidated_in_background(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey, clock: Clock
) -> None:
    jwks_server.max_age = 60
    verifier = verifier_for(jwks_cache)
    await verifier.verify(token(signing_key))
    clock.advance(59)
    await verifier.verify(token(signing_key))
    assert jwks_server.requests == 1  # still fresh

    clock.advance(2)  # expired: answered from the stale copy, revalidated behind it
    jwks_server.delay = 0.4
    started = time.perf_counter()
    await verifier.verify(token(signing_key))
    assert time.perf_counter() - started < 0.2  # did not wait for the 0.4 s fetch
    assert in_flight(jwks_cache)
    await verifier.verify(token(signing_key))  # no second fetch while one is in flight
    await jwks_cache.wait_refreshed()
    assert jwks_server.requests == 2
    assert not in_flight(jwks_cache)

    clock.advance(30)  # fresh again after the revalidation
    await verifier.verify(token(signing_key))
    assert jwks_server.requests == 2


@pytest.mark.parametrize(
    ("max_age", "expires_after"),
    [(0, 5.0), (1, 5.0), (None, 300.0), (10**9, 86_400.0)],
    ids=["no-cache", "below-floor", "absent", "beyond-ceiling"],
)
async def test_max_age_is_clamped(
    max_age: int | None,
    expires_after: float,
    jwks_server: JWKSServer,
    signing_key: SigningKey,
    clock: Clock,
) -> None:
    jwks_server.max_age = max_age
    async with fresh_cache(jwks_server.url, clock, refresh_cooldown=1) as cache:
        await cache.get_key(signing_key.kid)
        clock.advance(expires_after - 0.5)
        await cache.get_key(signing_key.kid)
        assert not in_flight(cache)
        clock.advance(1)
        await cache.get_key(signing_key.kid)
        assert in_flight(cache)
        await cache.wait_refreshed()
    assert jwks_server.requests == 2


async def test_flood_of_unknown_kids_costs_one_fetch_per_cooldown(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey, clock: Clock
) -> None:
    verifier = verifier_for(jwks_cache)
    await verifier.verify(token(signing_key))
    assert jwks_server.requests == 1
    clock.advance(10)  # the cooldown since the first fetch has passed
    jwks_server.delay = 0.05  # the flood arrives while the refetch is in flight

    async def garbage(i: int) -> None:
        with pytest.raises(InvalidToken):
            await verifier.verify(token(signing_key, kid=f"garbage-{i}"))

    await asyncio.gather(*(garbage(i) for i in range(100)))
    assert jwks_server.requests == 2  # exactly one refetch, shared by all 100

    clock.advance(9)  # within the cooldown: no refetch at all
    await asyncio.gather(*(garbage(i) for i in range(100, 200)))
    assert jwks_server.requests == 2

    clock.advance(1)  # after the cooldown: one more
    await asyncio.gather(*(garbage(i) for i in range(200, 300)))
    assert jwks_server.requests == 3
    await verifier.verify(token(signing_key))  # known keys unaffected throughout
    assert jwks_server.requests == 3


async def test_key_published_later_is_accepted_after_one_refetch(
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
    signing_key: SigningKey,
    second_key: SigningKey,
    clock: Clock,
) -> None:
    verifier = verifier_for(jwks_cache)
    await verifier.verify(token(signing_key))
    jwks_server.keys = [signing_key, second_key]  # rotation: published before it signs
    clock.advance(10)
    claims = await verifier.verify(token(second_key))
    assert claims.subject == "1"
    assert jwks_server.requests == 2
    assert jwks_cache.kids == {signing_key.kid, second_key.kid}


async def test_key_withdrawn_is_rejected_after_refetch(
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
    signing_key: SigningKey,
    second_key: SigningKey,
    clock: Clock,
) -> None:
    jwks_server.keys = [signing_key, second_key]
    verifier = verifier_for(jwks_cache)
    await verifier.verify(token(second_key))
    jwks_server.keys = [signing_key]
    clock.advance(301)
    await verifier.verify(token(signing_key))  # stale: triggers the background revalidation
    await jwks_cache.wait_refreshed()
    with pytest.raises(InvalidToken):
        await verifier.verify(token(second_key))


async def test_server_stopped_known_keys_still_verify(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey, clock: Clock
) -> None:
    verifier = verifier_for(jwks_cache)
    await verifier.verify(token(signing_key))
    jwks_server.stop()
    await verifier.verify(token(signing_key))
    clock.advance(3600)  # long expired: stale-if-error
    for _ in range(3):
        await verifier.verify(token(signing_key))
        await jwks_cache.wait_refreshed()
        clock.advance(10)
    assert jwks_cache.fetch_failures == 3
    with pytest.raises(InvalidToken):  # unknown kids are still unknown, not a 503
        await verifier.verify(token(signing_key, kid="other"))


def _misbehave(kind: str) -> Callable[[JWKSServer], None]:
    def apply(server: JWKSServer) -> None:
        if kind == "500":
            server.status = 500
        elif kind == "garbage":
            server.body = b"<html>proxy error</html>"
        elif kind == "oversize":
            server.body = json.dumps({"keys": [], "pad": "x" * 300_000}).encode()
        elif kind == "slow":
            server.delay = 1.0
        elif kind == "empty-document":
            server.keys = []
        elif kind == "only-unusable-keys":
            server.keys = [SigningKey.generate(bits=1024, kid="small")]
        elif kind == "redirect":
            server.redirect_to = "http://127.0.0.1:9/.well-known/jwks.json"
        else:
            raise AssertionError(kind)

    return apply


MISBEHAVIOURS = [
    "500",
    "garbage",
    "oversize",
    "slow",
    "empty-document",
    "only-unusable-keys",
    "redirect",
]


@pytest.mark.parametrize("kind", MISBEHAVIOURS)
async def test_warm_cache_survives_a_misbehaving_endpoint(
    kind: str,
    jwks_server: JWKSServer,
    signing_key: SigningKey,
    clock: Clock,
    http_client: httpx.AsyncClient,
) -> None:
    async with fresh_cache(jwks_server.url, clock, timeout=0.5) as cache:
        verifier = verifier_for(cache)
        await verifier.verify(token(signing_key))
        _misbehave(kind)(jwks_server)
        clock.advance(301)
        started = time.perf_counter()
        for _ in range(20):
            await verifier.verify(token(signing_key))
        # normal latency: nobody waits for the failing fetch (0.5 s timeout when slow)
        assert time.perf_counter() - started < 0.25
        await cache.wait_refreshed()
        assert cache.fetch_failures == 1
        assert cache.kids == {signing_key.kid}
        await verifier.verify(token(signing_key))
        with pytest.raises(InvalidToken):
            await verifier.verify(token(signing_key, kid="unknown"))
    assert jwks_server.requests == 2


@pytest.mark.parametrize("kind", MISBEHAVIOURS)
async def test_cold_cache_with_failing_endpoint_has_no_keys(
    kind: str, jwks_server: JWKSServer, signing_key: SigningKey, clock: Clock
) -> None:
    _misbehave(kind)(jwks_server)
    async with fresh_cache(jwks_server.url, clock, timeout=0.3) as cache:
        verifier = verifier_for(cache)
        with pytest.raises(KeysUnavailable):
            await verifier.verify(token(signing_key))
        with pytest.raises(KeysUnavailable):  # within the cooldown: not even a request
            await verifier.verify(token(signing_key))
        assert not cache.has_keys
    assert jwks_server.requests == 1


async def test_cold_cache_with_server_down_then_up(signing_key: SigningKey, clock: Clock) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    async with fresh_cache(url, clock) as cache:
        verifier = verifier_for(cache)
        with pytest.raises(KeysUnavailable):
            await verifier.verify(token(signing_key))
        server = JWKSServer(keys=[signing_key])
        server.start()
        try:
            cache.url = server.url  # the "same" endpoint, back on a fresh port
            with pytest.raises(KeysUnavailable):  # cooldown after the failure
                await verifier.verify(token(signing_key))
            clock.advance(10)
            assert (await verifier.verify(token(signing_key))).subject == "1"
        finally:
            server.stop()


async def test_redirects_are_not_followed(signing_key: SigningKey, clock: Clock) -> None:
    target = JWKSServer(keys=[signing_key]).start()
    redirecting = JWKSServer(redirect_to=target.url).start()
    try:
        # the cache's own client (not the suite's) is what production uses
        async with fresh_cache(redirecting.url, clock) as cache:
            with pytest.raises(KeysUnavailable):
                await verifier_for(cache).verify(token(signing_key))
        client = httpx.AsyncClient(follow_redirects=True, trust_env=False)
        async with fresh_cache(redirecting.url, clock, client=client) as cache:
            with pytest.raises(KeysUnavailable):  # a client that would follow: not for JWKS
                await verifier_for(cache).verify(token(signing_key))
        await client.aclose()
        assert redirecting.requests == 2
        assert target.requests == 0
    finally:
        target.stop()
        redirecting.stop()


async def test_trickling_server_is_cut_off_by_the_total_deadline(
    signing_key: SigningKey, clock: Clock
) -> None:
    """A byte every 50 ms never trips httpx's per-read timeout; the total deadline does."""
    stop = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"keys": [signing_key.jwk()]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body))
        with contextlib.suppress(ConnectionError):
            for byte in body:
                if stop.is_set():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with fresh_cache(f"http://127.0.0.1:{port}/jwks", clock, timeout=0.3) as cache:
            started = time.perf_counter()
            with pytest.raises(KeysUnavailable):
                await cache.get_key(signing_key.kid)
            assert time.perf_counter() - started < 1.0
    finally:
        stop.set()
        server.close()
        await server.wait_closed()


async def test_declared_oversize_is_refused_before_reading(
    jwks_server: JWKSServer, signing_key: SigningKey, clock: Clock
) -> None:
    jwks_server.body = json.dumps({"keys": [signing_key.jwk()], "pad": "x" * 5000}).encode()
    async with fresh_cache(jwks_server.url, clock, max_bytes=4096) as cache:
        with pytest.raises(KeysUnavailable):
            await cache.get_key(signing_key.kid)
    jwks_server.body = None
    async with fresh_cache(jwks_server.url, clock, max_bytes=4096) as cache:
        assert await cache.get_key(signing_key.kid) is not None


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey
) -> None:
    jwks_server.delay = 0.1
    first = asyncio.create_task(jwks_cache.get_key(signing_key.kid))
    second = asyncio.create_task(jwks_cache.get_key(signing_key.kid))
    await asyncio.sleep(0.02)
    first.cancel()
    assert await second is not None
    with pytest.raises(asyncio.CancelledError):
        await first
    assert jwks_server.requests == 1


async def test_aclose_cancels_a_fetch_in_flight(
    jwks_server: JWKSServer, signing_key: SigningKey, clock: Clock
) -> None:
    jwks_server.delay = 0.3
    cache = JWKSCache(jwks_server.url, clock=clock)
    waiter = asyncio.create_task(cache.get_key(signing_key.kid))
    await asyncio.sleep(0.02)
    assert in_flight(cache)
    started = time.perf_counter()
    await cache.aclose()
    assert time.perf_counter() - started < 0.2
    assert not in_flight(cache)
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_request_headers_are_sent(
    jwks_server: JWKSServer, signing_key: SigningKey, clock: Clock
) -> None:
    async with fresh_cache(
        jwks_server.url, clock, headers=lambda: {"X-Request-ID": "rid-1"}
    ) as cache:
        await cache.get_key(signing_key.kid)
    sent = {k.lower(): v for k, v in jwks_server.request_headers[0].items()}
    assert sent["x-request-id"] == "rid-1"
    assert sent["accept"] == "application/json"


async def test_explicit_refresh_reports_success(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, signing_key: SigningKey
) -> None:
    assert await jwks_cache.refresh() is True
    assert jwks_cache.has_keys
    jwks_server.status = 503
    assert await jwks_cache.refresh() is False
    assert jwks_cache.kids == {signing_key.kid}


async def test_unusable_published_keys_verify_nothing(
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
    signing_key: SigningKey,
    second_key: SigningKey,
) -> None:
    small = SigningKey.generate(bits=1024, kid="small")
    with_private = {**json.loads(RSAAlgorithm.to_jwk(second_key.private_key)), "kid": "private"}
    twin_of_signing = {**second_key.jwk(), "kid": signing_key.kid}
    jwks_server.body = json.dumps(
        {"keys": [small.jwk(), with_private, signing_key.jwk(), twin_of_signing, second_key.jwk()]}
    ).encode()
    verifier = verifier_for(jwks_cache)
    assert (await verifier.verify(token(second_key))).subject == "1"
    small_token = small.sign_raw(  # PyJWT itself warns about signing with 1024 bits
        {"alg": "RS256", "typ": "at+jwt", "kid": small.kid},
        access_claims(issuer=ISSUER, audience=AUDIENCE),
    )
    for rejected in (
        small_token,
        token(second_key, kid="private"),
        token(signing_key),  # its kid is published twice: ambiguous, so unusable
        token(second_key, kid=signing_key.kid),
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify(rejected)
    assert jwks_cache.kids == {second_key.kid}
    assert jwks_server.requests == 1
