"""The published JWKS and the verifiers' key cache, end to end.

* The JWKS holds public RSA keys only (no ``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi``,
  ``oth``, ``k``), unique kids, moduli of at least 2048 bits, and is cacheable.
* A flood of tokens with random kids costs auth-service at most one JWKS fetch per
  cooldown of items-service's cache (counted with items-service's own metric).
* A key published by a rotation is accepted by items-service after at most one refetch.

Misbehaving JWKS endpoints (500, garbage, slow, redirecting, cold cache) are tested where they
can be produced, in items-service's suite (``items-service/tests/test_jwks_faults.py``).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from devstack.stack import Stack
from e2e.api import Client
from e2e.attacks import Forge, PublishedKey, load_private_key, split_token
from e2e.metrics import sample_total
from svckit.db import libpq_url

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
JWKS_FETCHES = "items_jwks_fetches_total"


def _modulus_bits(n: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()


def test_jwks_publishes_public_rsa_keys_only(client: Client) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "json" in response.headers["content-type"]
    keys = response.json()["keys"]
    assert keys
    kids = [k["kid"] for k in keys]
    assert len(set(kids)) == len(kids), kids
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key.keys()
        assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}, key.keys()
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
        assert _modulus_bits(key["n"]) >= 2048
        assert key["e"] == "AQAB"
    # Cacheable by anyone (public keys), for a bounded time.
    cache_control = [d.strip() for d in response.headers["cache-control"].split(",")]
    assert "public" in cache_control
    assert "no-store" not in cache_control
    (max_age,) = [int(d.split("=", 1)[1]) for d in cache_control if d.startswith("max-age=")]
    assert 0 < max_age <= 86_400
    # The metadata points at this very document.
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["jwks_uri"].endswith("/.well-known/jwks.json")


@pytest.mark.needs_stack
def test_random_kids_cost_at_most_one_jwks_fetch_per_cooldown(
    live_stack: Stack, client: Client
) -> None:
    cooldown = float(live_stack.config.env["ITEMS_JWKS_REFRESH_COOLDOWN_SECONDS"])
    user = client.register()
    tokens = client.login(user["username"])
    assert client.get("/items/my-items", headers=tokens.headers).status_code == 200

    forge = Forge(
        genuine=tokens.access_token,
        published=PublishedKey.from_jwks(
            client.get("/.well-known/jwks.json").text, split_token(tokens.access_token)[0]["kid"]
        ),
        canary_url="http://127.0.0.1:9/",
    )
    garbage = [
        forge.attacker_sign(forge.fresh_header(kid=uuid.uuid4().hex), forge.fresh_payload())
        for _ in range(100)
    ]

    def send(token: str) -> int:
        return client.get(
            "/items/my-items", headers={"Authorization": f"Bearer {token}"}
        ).status_code

    before = sample_total(live_stack.items_url, JWKS_FETCHES)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, garbage))
    elapsed = time.monotonic() - started
    fetches = sample_total(live_stack.items_url, JWKS_FETCHES) - before

    assert set(statuses) == {401}, statuses
    # One refetch per started cooldown period, plus at most one background revalidation of
    # the cache's max-age: a small constant, where an unbounded cache would fetch 100 times.
    allowed = int(elapsed / cooldown) + 2
    print(f"{len(garbage)} random kids in {elapsed:.2f} s: {fetches:.0f} JWKS fetches")
    assert fetches <= allowed, (fetches, elapsed)
    # Genuine tokens kept working throughout.
    assert client.get("/items/my-items", headers=tokens.headers).status_code == 200


async def _newest_kid(database_url: str) -> str:
    conn = await asyncpg.connect(libpq_url(database_url), timeout=10)
    try:
        kid: str = await conn.fetchval(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
        )
    finally:
        await conn.close()
    return kid


@pytest.mark.needs_stack
def test_newly_published_key_is_accepted_after_at_most_one_refetch(
    live_stack: Stack, client: Client
) -> None:
    assert live_stack.auth_database_url is not None
    cooldown = float(live_stack.config.env["ITEMS_JWKS_REFRESH_COOLDOWN_SECONDS"])
    user = client.register()
    tokens = client.login(user["username"])
    assert client.get("/items/my-items", headers=tokens.headers).status_code == 200

    live_stack.run_cli("auth-service", "rotate-keys")
    new_kid = asyncio.run(_newest_kid(live_stack.auth_database_url))
    assert new_kid != split_token(tokens.access_token)[0]["kid"]
    new_key = asyncio.run(load_private_key(live_stack.auth_database_url, new_kid))

    deadline = time.monotonic() + 20
    published = ""
    while time.monotonic() < deadline:
        published = client.get("/.well-known/jwks.json").text
        if new_kid in published:
            break
        time.sleep(0.25)
    else:
        pytest.fail("auth-service never published the rotated key")

    forge = Forge(
        genuine=tokens.access_token,
        published=PublishedKey.from_jwks(published, new_kid),
        canary_url="http://127.0.0.1:9/",
        real_private_key=new_key,
    )
    # A token of the new key, as auth-service will sign once the key activates.
    token = forge.real_sign(forge.fresh_header(kid=new_kid), forge.fresh_payload())
    time.sleep(cooldown + 0.2)  # whatever fetched last, a refetch is allowed again
    before = sample_total(live_stack.items_url, JWKS_FETCHES)
    response = client.get("/items/my-items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert sample_total(live_stack.items_url, JWKS_FETCHES) - before <= 1
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # Tokens of the previous key still verify: it stays published while they live.
    assert client.get("/items/my-items", headers=tokens.headers).status_code == 200
