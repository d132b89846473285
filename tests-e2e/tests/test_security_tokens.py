"""Forged and malformed access tokens, through the gateway, on both services.

Every hostile token must get 401 with ``WWW-Authenticate: Bearer ...`` in the error envelope
(never a 5xx, never a 200) on a protected route of items-service (``GET /items/my-items``,
``POST /items/``) and of auth-service (``GET /auth/me``). References: RFC 8725 (JWT BCP),
RFC 9068 (access token profile), the OWASP JWT cheat sheet.

Two batteries:

* ``test_forged_token_is_refused``: built only from what any client sees (its own token and
  the published JWKS) plus an attacker's own RSA key; runs against any deployment.
* ``test_correctly_signed_hostile_token_is_refused``: signed with the issuer's *real* private
  key (read from the local stack's auth database), so each token has exactly one defect (its
  ``aud``, its ``typ``, its algorithm, a ``jku`` header...) and a valid signature. A control
  proves that a token forged this way without a defect is accepted, so the refusals are
  meaningful. Needs the local stack.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.stack import Stack
from e2e.api import Client, Tokens
from e2e.attacks import (
    Forge,
    PublishedKey,
    b64url,
    compact,
    hs_sign,
    load_private_key,
    public_key_forms,
    self_signed_certificate,
    split_token,
)
from svckit.testing.keys import JWKSServer

# One protected route per operation kind and service; each forged token is tried on all.
PROTECTED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/items/my-items", None),
    ("POST", "/items/", {"title": "forged"}),
    ("GET", "/auth/me", None),
]


@dataclass
class Victim:
    """The session's genuine user and token; forged tokens claim to be this user."""

    user: dict[str, Any]
    tokens: Tokens


@pytest.fixture(scope="session")
def canary() -> Iterator[JWKSServer]:
    """A loopback server that key-fetching headers point at; nobody may ever fetch from it."""
    server = JWKSServer(keys=[]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victim(base_url: str) -> Victim:
    with Client(base_url) as client:
        user = client.register()
        return Victim(user, client.login(user["username"]))


@pytest.fixture(scope="session")
def forge(base_url: str, stack: Stack | None, victim: Victim, canary: JWKSServer) -> Forge:
    kid = split_token(victim.tokens.access_token)[0]["kid"]
    with Client(base_url) as client:
        jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    private_key = None
    if stack is not None and stack.auth_database_url is not None:
        private_key = asyncio.run(load_private_key(stack.auth_database_url, kid))
    return Forge(
        genuine=victim.tokens.access_token,
        published=PublishedKey.from_jwks(jwks.text, kid),
        canary_url=canary.url,
        real_private_key=private_key,
    )


def _send(client: Client, method: str, path: str, body: Any, authorization: str | bytes) -> Any:
    return client.request(method, path, json=body, headers={"Authorization": authorization})


def assert_refused(client: Client, token: str | bytes, *, allow: tuple[int, ...] = ()) -> None:
    """``token`` is refused with 401 + ``WWW-Authenticate: Bearer`` on every protected route.

    ``allow`` names other 4xx statuses the contract permits for that token's shape (a header too
    large for the server may be refused earlier with 400/431).
    """
    authorization: str | bytes = (
        b"Bearer " + token if isinstance(token, bytes) else f"Bearer {token}"
    )
    for method, path, body in PROTECTED:
        response = _send(client, method, path, body, authorization)
        where = f"{method} {path}"
        if response.status_code in allow:
            continue
        assert response.status_code == 401, (where, response.status_code, response.text[:300])
        assert response.headers.get("www-authenticate", "").startswith("Bearer"), where
        envelope = response.json()
        assert envelope["status_code"] == 401, where
        assert envelope["code"] in ("invalid_token", "not_authenticated"), (where, envelope)


def test_genuine_token_is_accepted(client: Client, victim: Victim) -> None:
    """The baseline every refusal below is measured against."""
    for method, path, body in PROTECTED:
        response = client.request(method, path, json=body, headers=victim.tokens.headers)
        assert response.status_code == 200, (method, path, response.text)


# --------------------------------------------------------------------------------------------
# Battery A: public material and an attacker's own key

Builder = Callable[[Forge], "str | bytes"]

# The spellings of the unsecured algorithm (RFC 7518 §3.6) a case-insensitive check would miss.
NONE_ALGORITHMS = ("none", "None", "NONE", "nOnE")
# Every form of the published RSA key an HS256 verifier could be tricked into using as secret.
PUBLIC_KEY_FORMS = (
    "spki-pem",
    "spki-pem-no-newline",
    "spki-pem-crlf",
    "pkcs1-pem",
    "pkcs1-pem-no-newline",
    "spki-der",
    "pkcs1-der",
    "openssh",
    "jwk-json",
    "jwk-json-compact",
    "jwks-document",
    "modulus-bytes",
)

# Hostile kids: nothing here may resolve to a key (or reach a file, a query or a URL).
HOSTILE_KIDS: dict[str, Any] = {
    "path-traversal": "../../../../../../etc/passwd",
    "path-traversal-dev-null": "../../../../../../dev/null",
    "absolute-path": "/etc/hostname",
    "url": "http://127.0.0.1:1/jwks.json",
    "sql-or": "' OR '1'='1",
    "sql-union": "x' UNION SELECT public_key_pem FROM signing_keys --",
    "sql-drop": "1; DROP TABLE signing_keys; --",
    "8kb": "k" * 8192,
    "nul-byte": "kid\x00",
    "empty": "",
    "whitespace": " ",
    "wildcard": "*",
    "number": 1,
    "zero": 0,
    "float": 1.5,
    "true": True,
    "null": None,  # JSON null: present but null (not the same as missing)
    "list": ["a"],
    "object": {"kid": "a"},
}


def _hostile_kid_header(f: Forge, kid: Any) -> dict[str, Any]:
    header = f.fresh_header()
    header["kid"] = kid  # set explicitly: None must serialise as null, not drop the member
    return header


def _x5c_chain(f: Forge) -> list[str]:
    """The attacker's self-signed certificate as an ``x5c`` header carries it."""
    return [base64.b64encode(self_signed_certificate(f.attacker_key)).decode()]


def _hs_keyed_with_public_key(f: Forge, form: str, alg: str = "HS256") -> str:
    secret = public_key_forms(f.published)[form]
    return hs_sign(f.fresh_header(alg=alg), f.fresh_payload(), secret, alg)


def _five_segments(header: dict[str, Any], *parts: str) -> str:
    """A JWE-shaped token: a JSON header and four more segments."""
    return ".".join([b64url(json.dumps(header).encode()), *parts])


FORGED: dict[str, Builder] = {
    # The unsecured algorithm in its spellings: unsigned, with the genuine signature, and the
    # genuine header with only its alg swapped.
    **{
        f"alg-{alg}-unsigned": functools.partial(
            lambda f, alg: compact(f.fresh_header(alg=alg), f.fresh_payload()), alg=alg
        )
        for alg in NONE_ALGORITHMS
    },
    **{
        f"alg-{alg}-with-genuine-signature": functools.partial(
            lambda f, alg: compact(f.fresh_header(alg=alg), f.payload, f.signature), alg=alg
        )
        for alg in NONE_ALGORITHMS
    },
    **{
        f"alg-{alg}-genuine-header": functools.partial(
            lambda f, alg: compact({**f.header, "alg": alg}, f.payload), alg=alg
        )
        for alg in NONE_ALGORITHMS
    },
    "alg-none-no-typ-no-kid": lambda f: compact({"alg": "none"}, f.fresh_payload()),
    "alg-empty-string": lambda f: compact(f.fresh_header(alg=""), f.payload, f.signature),
    "alg-missing": lambda f: compact(f.fresh_header(alg=None), f.payload, f.signature),
    # The genuine token, its signature removed, changed or no longer covering what it says.
    "stripped-signature": lambda f: ".".join([*f.segments[:2], ""]),
    "stripped-signature-and-dot": lambda f: ".".join(f.segments[:2]),
    "flipped-signature-bit": lambda f: f.flipped_signature(),
    "truncated-signature": lambda f: ".".join([*f.segments[:2], b64url(f.signature[:-1])]),
    "payload-changed-roles-admin": lambda f: compact(
        f.header, {**f.payload, "roles": ["admin"]}, f.signature
    ),
    "payload-changed-sub": lambda f: compact(f.header, {**f.payload, "sub": "1"}, f.signature),
    "payload-changed-exp": lambda f: compact(
        f.header, {**f.payload, "exp": f.payload["exp"] + 86_400}, f.signature
    ),
    # Same claims, different bytes (spaces): the signature covers bytes, not meaning.
    "payload-reserialised-same-claims": lambda f: ".".join(
        [f.segments[0], b64url(json.dumps(f.payload, indent=1).encode()), b64url(f.signature)]
    ),
    # Signed with the attacker's own key, under any kid or a key the token itself names.
    "attacker-key-under-real-kid": lambda f: f.attacker_sign(f.fresh_header(), f.fresh_payload()),
    "attacker-key-under-random-kid": lambda f: f.attacker_sign(
        f.fresh_header(kid=uuid.uuid4().hex), f.fresh_payload()
    ),
    "attacker-key-admin-claims": lambda f: f.attacker_sign(
        f.fresh_header(), f.fresh_payload(roles=["admin"])
    ),
    "attacker-key-embedded-jwk": lambda f: f.attacker_sign(
        f.fresh_header(jwk=f.attacker_jwk()), f.fresh_payload()
    ),
    "attacker-key-embedded-jwk-no-kid": lambda f: f.attacker_sign(
        f.fresh_header(kid=None, jwk=f.attacker_jwk()), f.fresh_payload()
    ),
    "attacker-key-jku-canary": lambda f: f.attacker_sign(
        f.fresh_header(jku=f.canary_url), f.fresh_payload()
    ),
    "attacker-key-jku-canary-unknown-kid": lambda f: f.attacker_sign(
        f.fresh_header(jku=f.canary_url, kid=uuid.uuid4().hex), f.fresh_payload()
    ),
    "attacker-key-x5u-canary": lambda f: f.attacker_sign(
        f.fresh_header(x5u=f.canary_url + "/cert.pem"), f.fresh_payload()
    ),
    "attacker-key-x5c-self-signed": lambda f: f.attacker_sign(
        f.fresh_header(x5c=_x5c_chain(f), kid=None), f.fresh_payload()
    ),
    "attacker-key-x5c-under-real-kid": lambda f: f.attacker_sign(
        f.fresh_header(x5c=_x5c_chain(f)), f.fresh_payload()
    ),
    # HMAC keyed with public material (the RS256/HS256 confusion).
    **{
        f"hs256-keyed-with-public-key-{form}": functools.partial(
            _hs_keyed_with_public_key, form=form
        )
        for form in PUBLIC_KEY_FORMS
    },
    **{
        f"{alg.lower()}-keyed-with-public-key-spki-pem": functools.partial(
            _hs_keyed_with_public_key, form="spki-pem", alg=alg
        )
        for alg in ("HS384", "HS512")
    },
    "hs256-keyed-with-empty-secret": lambda f: hs_sign(
        f.fresh_header(alg="HS256"), f.fresh_payload(), b""
    ),
    "hs256-keyed-with-kid": lambda f: hs_sign(
        f.fresh_header(alg="HS256"), f.fresh_payload(), f.kid.encode()
    ),
    # Kids that must resolve to nothing.
    **{
        f"kid-{name}": functools.partial(
            lambda f, kid: f.attacker_sign(_hostile_kid_header(f, kid), f.fresh_payload()),
            kid=kid,
        )
        for name, kid in HOSTILE_KIDS.items()
    },
    "kid-missing": lambda f: f.attacker_sign(f.fresh_header(kid=None), f.fresh_payload()),
    "kid-real-with-trailing-space": lambda f: f.attacker_sign(
        f.fresh_header(kid=f.kid + " "), f.fresh_payload()
    ),
    # Not three segments of base64url-encoded JSON.
    "jwe-shaped-five-segments": lambda f: _five_segments(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": f.kid, "typ": "at+jwt"},
        *(b64url(p) for p in (b"", b"\x00" * 12, b"ciphertext", b"\x00" * 16)),
    ),
    "jwe-shaped-five-segments-dir": lambda f: _five_segments(
        {"alg": "dir", "enc": "A128CBC-HS256", "kid": f.kid}, "", "AAAA", "AAAA", "AAAA"
    ),
    "two-segments": lambda f: ".".join(f.segments[:2]),
    "four-segments": lambda f: f.genuine + "." + b64url(b"extra"),
    "one-segment": lambda f: f.segments[1],
    "dots-only": lambda f: "..",
    "bad-base64url-characters": lambda f: ".".join(
        [f.segments[0], f"{f.segments[1][:10]}!*{f.segments[1][12:]}", f.segments[2]]
    ),
    "standard-base64-alphabet": lambda f: ".".join(
        [*f.segments[:2], f.segments[2].replace("-", "+").replace("_", "/") + "+/"]
    ),
    "padded-segments": lambda f: ".".join(segment + "==" for segment in f.segments),
    # 4n+1 characters cannot be base64.
    "impossible-base64-length": lambda f: ".".join(
        [f.segments[0], f.segments[1] + "A", f.segments[2]]
    ),
    "header-not-utf8": lambda f: compact(
        b"\xff\xfe" + json.dumps(f.fresh_header()).encode(), f.fresh_payload(), f.signature
    ).encode(),
    "header-utf16": lambda f: compact(
        json.dumps(f.fresh_header()).encode("utf-16"), f.payload, f.signature
    ),
    "header-with-bom": lambda f: compact(
        b"\xef\xbb\xbf" + json.dumps(f.header).encode(), f.payload, f.signature
    ),
    "header-json-array": lambda f: compact(b'["RS256"]', f.payload, f.signature),
    "header-json-string": lambda f: compact(b'"RS256"', f.payload, f.signature),
    "header-not-json": lambda f: compact(b"{alg: RS256", f.payload, f.signature),
    # Deeper than Python's recursion limit, within the token size cap.
    "header-deeply-nested": lambda f: compact(b"[" * 5000 + b"]" * 5000, f.payload, f.signature),
    "payload-deeply-nested": lambda f: compact(f.header, b"[" * 5000 + b"]" * 5000, f.signature),
    "token-100kb": lambda f: ".".join([f.segments[0], "A" * 100_000, b64url(f.signature)]),
    "token-100kb-claim": lambda f: f.attacker_sign(
        f.fresh_header(), f.fresh_payload(pad="x" * 100_000)
    ),
    "token-whitespace-inside": lambda f: ".".join(
        [f.segments[0], " " + f.segments[1], f.segments[2]]
    ),
    "not-a-jwt": lambda f: "not-a-jwt",
    "latin1-bytes": lambda f: f.genuine.encode() + b"\xe9",
}


# Shapes the contract lets the HTTP layer refuse before the verifier sees them.
ALLOWED_EARLIER = {"token-100kb": (400, 431), "token-100kb-claim": (400, 431)}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_token_is_refused(client: Client, forge: Forge, case: str) -> None:
    assert_refused(client, FORGED[case](forge), allow=ALLOWED_EARLIER.get(case, ()))


def test_forged_tokens_never_made_anyone_fetch_a_url(
    client: Client, forge: Forge, canary: JWKSServer
) -> None:
    """``jku``/``x5u`` headers (and URL-shaped kids) are never followed (RFC 8725 §3.10)."""
    for case in ("attacker-key-jku-canary", "attacker-key-jku-canary-unknown-kid"):
        assert_refused(client, FORGED[case](forge))
    time.sleep(0.5)  # a verifier fetching in the background would have done so by now
    assert canary.requests == 0, canary.request_headers


# --------------------------------------------------------------------------------------------
# Battery B: correctly signed with the issuer's real key, one defect each


@pytest.fixture
def real(forge: Forge) -> Forge:
    if forge.real_private_key is None:
        pytest.fail("the issuer's private key is only readable on the suite's own stack")
    return forge


def _now() -> int:
    return int(time.time())


def _real_key_other_alg(f: Forge, alg: str) -> str:
    return f.real_sign(f.fresh_header(alg=alg), f.fresh_payload(), alg)


def _real_key_hostile_kid(f: Forge, kid: Any) -> str:
    return f.real_sign(_hostile_kid_header(f, kid), f.fresh_payload())


SIGNED: dict[str, Callable[[Forge], str]] = {
    # Algorithms: the real key under another RSA algorithm is still refused (RFC 8725 §3.1).
    **{
        f"real-key-{alg.lower()}": functools.partial(_real_key_other_alg, alg=alg)
        for alg in ("RS384", "RS512", "PS256", "PS384", "PS512")
    },
    "real-key-rs256-signature-under-rs512-header": lambda f: f.real_sign(
        f.fresh_header(alg="RS512"), f.fresh_payload(), "RS256"
    ),
    # Key-fetching and critical headers, otherwise valid.
    "jku-header": lambda f: f.real_sign(f.fresh_header(jku=f.canary_url), f.fresh_payload()),
    "x5u-header": lambda f: f.real_sign(f.fresh_header(x5u=f.canary_url), f.fresh_payload()),
    "x5c-header": lambda f: f.real_sign(f.fresh_header(x5c=_x5c_chain(f)), f.fresh_payload()),
    "jwk-header": lambda f: f.real_sign(f.fresh_header(jwk=f.attacker_jwk()), f.fresh_payload()),
    "crit-unknown-extension": lambda f: f.real_sign(
        f.fresh_header(crit=["urn:example:unknown"], **{"urn:example:unknown": True}),
        f.fresh_payload(),
    ),
    "crit-registered-claim": lambda f: f.real_sign(f.fresh_header(crit=["exp"]), f.fresh_payload()),
    "crit-empty-list": lambda f: f.real_sign(f.fresh_header(crit=[]), f.fresh_payload()),
    "crit-b64-false": lambda f: f.real_sign(
        f.fresh_header(crit=["b64"], b64=False), f.fresh_payload()
    ),
    # Token type (RFC 9068 §4): only at+jwt.
    "typ-jwt": lambda f: f.real_sign(f.fresh_header(typ="JWT"), f.fresh_payload()),
    "typ-refresh-like": lambda f: f.real_sign(
        f.fresh_header(typ="refresh+jwt"), f.fresh_payload(token_use="refresh")
    ),
    "typ-id-token-like": lambda f: f.real_sign(
        f.fresh_header(typ="JWT"), f.fresh_payload(nonce="n", auth_time=_now())
    ),
    "typ-missing": lambda f: f.real_sign(f.fresh_header(typ=None), f.fresh_payload()),
    "typ-empty": lambda f: f.real_sign(f.fresh_header(typ=""), f.fresh_payload()),
    "typ-number": lambda f: f.real_sign(f.fresh_header(typ=1), f.fresh_payload()),
    "typ-with-space": lambda f: f.real_sign(f.fresh_header(typ="at+jwt "), f.fresh_payload()),
    "duplicate-header-member": lambda f: f.real_sign(
        f'{{"alg":"RS256","typ":"at+jwt","kid":"{f.kid}","kid":"{uuid.uuid4().hex}"}}'.encode(),
        f.fresh_payload(),
    ),
    "duplicate-alg-member": lambda f: f.real_sign(
        f'{{"alg":"none","typ":"at+jwt","kid":"{f.kid}","alg":"RS256"}}'.encode(),
        f.fresh_payload(),
    ),
    # Expiry and validity window (leeway is at most 60 s; these are well beyond it).
    "exp-missing": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(exp=None)),
    "exp-past-leeway": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iat=_now() - 600, nbf=_now() - 600, exp=_now() - 120)
    ),
    "exp-string": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(exp=str(_now() + 300))),
    "exp-null": lambda f: f.real_sign(f.fresh_header(), {**f.fresh_payload(), "exp": None}),
    "exp-boolean": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(exp=True)),
    "nbf-in-future": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(nbf=_now() + 600)),
    "iat-in-future": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(iat=_now() + 600)),
    "iat-missing": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(iat=None)),
    # Audience.
    "aud-missing": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(aud=None)),
    "aud-other": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(aud="other-api")),
    "aud-list-of-others": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(aud=["other-api", "admin-api"])
    ),
    "aud-empty-list": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(aud=[])),
    "aud-prefix": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(aud=f.payload["aud"] + "x")
    ),
    "aud-number": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(aud=1)),
    # Issuer: exact match only.
    "iss-missing": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(iss=None)),
    "iss-other": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iss="https://issuer.attacker.example")
    ),
    "iss-real-as-prefix": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iss=f.payload["iss"] + ".attacker.example")
    ),
    "iss-real-with-path": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iss=f.payload["iss"] + "/evil")
    ),
    "iss-real-as-substring": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iss="https://evil.example/?" + f.payload["iss"])
    ),
    "iss-truncated": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iss=f.payload["iss"][:-1])
    ),
    "iss-upper-case": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(iss=f.payload["iss"].upper())
    ),
    "iss-number": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(iss=8080)),
    "iss-list": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(iss=[f.payload["iss"]])),
    # Subject and roles of the wrong shape.
    "sub-missing": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(sub=None)),
    "sub-not-decimal": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(sub="admin")),
    "sub-negative": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(sub="-1")),
    "sub-integer": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(sub=1)),
    "sub-beyond-bigint": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(sub="9" * 30)),
    "sub-unicode-digits": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(sub="١٢")),
    "roles-string": lambda f: f.real_sign(f.fresh_header(), f.fresh_payload(roles="admin")),
    "roles-objects": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(roles=[{"admin": True}])
    ),
    # Shapes that only a correct signature lets reach the claim parser.
    "payload-deeply-nested-signed": lambda f: f.real_sign(
        f.fresh_header(), b"[" * 3000 + b"]" * 3000
    ),
    "payload-json-array-signed": lambda f: f.real_sign(f.fresh_header(), b"[1, 2]"),
    "payload-not-json-signed": lambda f: f.real_sign(f.fresh_header(), b"not json"),
    "payload-not-utf8-signed": lambda f: f.real_sign(
        f.fresh_header(), b"\xff" + json.dumps(f.fresh_payload()).encode()
    ),
    "token-over-8kb-signed": lambda f: f.real_sign(
        f.fresh_header(), f.fresh_payload(pad="x" * 9000)
    ),
    # Hostile kids with a valid signature: only a kid that resolves to the real key could pass.
    **{
        f"kid-{name}-signed": functools.partial(_real_key_hostile_kid, kid=kid)
        for name, kid in HOSTILE_KIDS.items()
    },
    "kid-missing-signed": lambda f: f.real_sign(f.fresh_header(kid=None), f.fresh_payload()),
    "kid-real-upper-case-signed": lambda f: f.real_sign(
        f.fresh_header(kid=f.kid.swapcase()), f.fresh_payload()
    ),
    "kid-real-with-nul-signed": lambda f: f.real_sign(
        f.fresh_header(kid=f.kid + "\x00"), f.fresh_payload()
    ),
}

# A 9 KB token may be refused by the HTTP layer before the verifier sees it.
SIGNED_ALLOWED_EARLIER = {"token-over-8kb-signed": (400, 431)}


@pytest.mark.needs_stack
def test_control_token_signed_with_the_real_key_is_accepted(client: Client, real: Forge) -> None:
    """Forging with the real key works: a token without a defect passes everywhere."""
    token = real.real_sign(real.fresh_header(), real.fresh_payload())
    for method, path, body in PROTECTED:
        response = _send(client, method, path, body, f"Bearer {token}")
        assert response.status_code == 200, (method, path, response.text)
    # The tolerated variants of the token type and a list audience are accepted too, so
    # the refusals below are about the defect, not about how the tokens were built.
    for header, payload in [
        (real.fresh_header(typ="application/at+jwt"), real.fresh_payload()),
        (real.fresh_header(), real.fresh_payload(aud=["other-api", real.payload["aud"]])),
        (real.fresh_header(), real.fresh_payload(exp=_now() + 5)),
    ]:
        token = real.real_sign(header, payload)
        response = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (header, payload, response.text)


@pytest.mark.needs_stack
@pytest.mark.parametrize("case", sorted(SIGNED))
def test_correctly_signed_hostile_token_is_refused(client: Client, real: Forge, case: str) -> None:
    assert_refused(client, SIGNED[case](real), allow=SIGNED_ALLOWED_EARLIER.get(case, ()))


@pytest.mark.needs_stack
def test_signed_key_fetching_headers_fetched_nothing(canary: JWKSServer, real: Forge) -> None:
    """Runs after the batteries above (file order): no verifier ever fetched the canary."""
    time.sleep(0.5)
    assert canary.requests == 0, canary.request_headers


def test_missing_and_empty_credentials(client: Client) -> None:
    """No token at all is 401 ``WWW-Authenticate: Bearer`` (without an error code)."""
    for authorization in (None, "Bearer", "Basic dXNlcjpwYXNz", "bearer", "Token x"):
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path, body in PROTECTED:
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (authorization, method, path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer"), authorization


def test_refusals_are_fast(client: Client, forge: Forge) -> None:
    """Hostile tokens cost no more than a normal request: nothing slow happens on refusal."""
    tokens = [FORGED[c](forge) for c in ("attacker-key-under-real-kid", "header-deeply-nested")]
    for token in tokens:
        started = time.perf_counter()
        response = _send(client, "GET", "/items/my-items", None, f"Bearer {token!s}")
        assert response.status_code == 401
        assert time.perf_counter() - started < 1.0
