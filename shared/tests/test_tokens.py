"""TokenVerifier against real RSA keys served by a real loopback JWKS server.

Every rejection is its own case and must raise InvalidToken: any other exception would reach a
client as a 500.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from svckit_support import AUDIENCE, ISSUER

from svckit.jwks import JWKSCache
from svckit.scopes import UserTokenRequired
from svckit.testing.keys import JWKSServer, SigningKey, access_claims, b64url, compact_jws
from svckit.tokens import MAX_LEEWAY_SECONDS, AccessClaims, InvalidToken, TokenVerifier

LEEWAY = 30
DROP = object()  # marks a claim or header member to leave out


@dataclass
class Ctx:
    key: SigningKey
    attacker: SigningKey
    listener: str  # a loopback URL that counts requests: nobody may fetch it

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "RS256", "typ": "at+jwt", "kid": self.key.kid}
        return _apply(header, changes)

    def claims(self, **changes: Any) -> dict[str, Any]:
        return _apply(access_claims(issuer=ISSUER, audience=AUDIENCE, sub="42"), changes)

    def token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """Signed by the real key over exactly this header and these claims."""
        return self.key.sign_raw(self.header(**(header or {})), self.claims(**claims))

    def valid(self) -> str:
        return self.token()

    def public_der(self) -> bytes:
        return self.key.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def pkcs1_pem(self) -> bytes:
        return self.key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )


def _apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _hs256(ctx: Ctx, secret: bytes, alg: str = "HS256") -> str:
    """HMAC-signed with ``secret`` (PyJWT refuses a PEM as HMAC key, so by hand)."""
    unsigned = compact_jws(ctx.header(alg=alg), ctx.claims()).rsplit(".", 1)[0]
    mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(mac)}"


def _alg_none(ctx: Ctx, alg: str, signed: bool) -> str:
    unsigned = compact_jws(ctx.header(alg=alg), ctx.claims(roles=["admin"]))
    if not signed:
        return unsigned  # "h.p."
    real_signature = _segments(ctx.valid())[2]
    return unsigned[:-1] + "." + real_signature


def _alg_none_case(alg: str, signed: bool) -> Callable[[Ctx], str]:
    return lambda ctx: _alg_none(ctx, alg, signed)


def _flip_bit(ctx: Ctx) -> str:
    h, p, s = _segments(ctx.valid())
    raw = bytearray(_b64decode(s))
    raw[len(raw) // 2] ^= 0x01
    return f"{h}.{p}.{b64url(bytes(raw))}"


def _payload_swapped(ctx: Ctx) -> str:
    h, _, s = _segments(ctx.valid())
    forged = b64url(json.dumps(ctx.claims(roles=["admin"], sub="1")).encode())
    return f"{h}.{forged}.{s}"


def _self_signed_x5c(key: SigningKey) -> list[str]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key.private_key, hashes.SHA256())
    )
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def _deep_json(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def _now() -> int:
    return int(time.time())


Case = Callable[[Ctx], str]

REJECTED: dict[str, Case] = {
    # --- alg "none" in every spelling, with and without a signature
    **{
        f"alg-{alg}-{'signed' if signed else 'unsigned'}": _alg_none_case(alg, signed)
        for alg in ("none", "None", "NONE", "nOnE")
        for signed in (False, True)
    },
    "alg-null": lambda ctx: ctx.token({"alg": None}),
    "alg-missing": lambda ctx: ctx.token({"alg": DROP}),
    "alg-lowercase-rs256": lambda ctx: ctx.token({"alg": "rs256"}),
    # --- signature tampering
    "signature-stripped": lambda ctx: ctx.valid().rsplit(".", 1)[0] + ".",
    "signature-bit-flipped": _flip_bit,
    "payload-changed-under-original-signature": _payload_swapped,
    "signature-of-other-token": lambda ctx: (
        ".".join(_segments(ctx.token(sub="7"))[:2]) + "." + _segments(ctx.valid())[2]
    ),
    # --- HMAC with the public key as secret, in every form it could be found in
    "hs256-spki-pem": lambda ctx: _hs256(ctx, ctx.key.public_pem),
    "hs256-spki-pem-no-newline": lambda ctx: _hs256(ctx, ctx.key.public_pem.rstrip(b"\n")),
    "hs256-pkcs1-pem": lambda ctx: _hs256(ctx, ctx.pkcs1_pem()),
    "hs256-der": lambda ctx: _hs256(ctx, ctx.public_der()),
    "hs256-jwk-json": lambda ctx: _hs256(ctx, json.dumps(ctx.key.jwk()).encode()),
    "hmac-under-rs256-header": lambda ctx: _hs256(ctx, ctx.key.public_pem, alg="RS256"),
    # --- the real key under other algorithms
    "real-key-rs384": lambda ctx: ctx.key.sign(ctx.claims(), algorithm="RS384"),
    "real-key-rs512": lambda ctx: ctx.key.sign(ctx.claims(), algorithm="RS512"),
    "real-key-ps256": lambda ctx: ctx.key.sign(ctx.claims(), algorithm="PS256"),
    # --- an attacker's key
    "attacker-key-under-real-kid": lambda ctx: ctx.attacker.sign_raw(ctx.header(), ctx.claims()),
    "attacker-key-own-kid": lambda ctx: ctx.attacker.sign_raw(
        ctx.header(kid=ctx.attacker.kid), ctx.claims()
    ),
    # --- key-carrying headers are never followed (even on an otherwise valid token)
    "jwk-header-attacker-key": lambda ctx: ctx.attacker.sign_raw(
        ctx.header(kid=ctx.attacker.kid, jwk=ctx.attacker.jwk()), ctx.claims()
    ),
    "jwk-header-real-key": lambda ctx: ctx.token({"jwk": ctx.key.jwk()}),
    "jku-header-attacker": lambda ctx: ctx.attacker.sign_raw(
        ctx.header(kid=ctx.attacker.kid, jku=ctx.listener), ctx.claims()
    ),
    "jku-header-real-key": lambda ctx: ctx.token({"jku": ctx.listener}),
    "x5u-header-attacker": lambda ctx: ctx.attacker.sign_raw(
        ctx.header(kid=ctx.attacker.kid, x5u=ctx.listener), ctx.claims()
    ),
    "x5u-header-real-key": lambda ctx: ctx.token({"x5u": ctx.listener}),
    "x5c-header-attacker-cert": lambda ctx: ctx.attacker.sign_raw(
        ctx.header(kid=ctx.attacker.kid, x5c=_self_signed_x5c(ctx.attacker)), ctx.claims()
    ),
    # --- hostile kids
    "kid-path-traversal": lambda ctx: ctx.token({"kid": "../../../../etc/passwd"}),
    "kid-sql": lambda ctx: ctx.token({"kid": "' OR '1'='1'; DROP TABLE signing_keys; --"}),
    "kid-8kb": lambda ctx: ctx.token({"kid": "k" * 8192}),
    "kid-number": lambda ctx: ctx.token({"kid": 1}),
    "kid-null": lambda ctx: ctx.token({"kid": None}),
    "kid-missing": lambda ctx: ctx.token({"kid": DROP}),
    "kid-empty": lambda ctx: ctx.token({"kid": ""}),
    "kid-list": lambda ctx: ctx.token({"kid": [ctx.key.kid]}),
    "kid-case-changed": lambda ctx: ctx.token({"kid": ctx.key.kid.upper()}),
    # --- crit: no extension is understood
    "crit-unknown": lambda ctx: ctx.token({"crit": ["urn:example:policy"]}),
    "crit-exp": lambda ctx: ctx.token({"crit": ["exp"], "exp": _now() + 60}),
    "crit-b64-false": lambda ctx: ctx.token({"crit": ["b64"], "b64": False}),
    "b64-false-without-crit": lambda ctx: ctx.token({"b64": False}),
    # --- shapes
    "jwe-5-parts": lambda ctx: ".".join(
        [b64url(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": ctx.key.kid}).encode())]
        + [b64url(b"x" * 16)] * 4
    ),
    "2-segments": lambda ctx: ".".join(_segments(ctx.valid())[:2]),
    "4-segments": lambda ctx: ctx.valid() + "." + _segments(ctx.valid())[2],
    "1-segment": lambda ctx: _segments(ctx.valid())[0],
    "empty-string": lambda ctx: "",
    "only-dots": lambda ctx: "..",
    "bad-b64-std-alphabet": lambda ctx: ctx.valid().replace("-", "+").replace("_", "/") + "+/",
    "bad-b64-padding": lambda ctx: ".".join(s + "==" for s in _segments(ctx.valid())),
    "bad-b64-length": lambda ctx: "a" + ctx.valid(),
    "bad-b64-spaces": lambda ctx: ctx.valid().replace(".", ". ", 1),
    "leading-space": lambda ctx: " " + ctx.valid(),
    "trailing-newline": lambda ctx: ctx.valid() + "\n",
    "non-ascii": lambda ctx: ctx.valid()[:-2] + "é",
    "header-not-json": lambda ctx: ctx.key.sign_raw(b"not json", ctx.claims()),
    "header-json-array": lambda ctx: ctx.key.sign_raw(b'["RS256"]', ctx.claims()),
    "header-json-string": lambda ctx: ctx.key.sign_raw(b'"RS256"', ctx.claims()),
    "header-non-utf8": lambda ctx: ctx.key.sign_raw(
        b'{"alg":"RS256","typ":"at+jwt","kid":"\xff\xfe"}', ctx.claims()
    ),
    "header-utf16": lambda ctx: ctx.key.sign_raw(
        json.dumps(ctx.header()).encode("utf-16"), ctx.claims()
    ),
    "header-utf8-bom": lambda ctx: ctx.key.sign_raw(
        b"\xef\xbb\xbf" + json.dumps(ctx.header()).encode(), ctx.claims()
    ),
    "header-duplicate-alg": lambda ctx: ctx.key.sign_raw(
        b'{"alg":"none","typ":"at+jwt","kid":"key-1","alg":"RS256"}', ctx.claims()
    ),
    "header-duplicate-kid": lambda ctx: ctx.key.sign_raw(
        b'{"alg":"RS256","typ":"at+jwt","kid":"attacker","kid":"key-1"}', ctx.claims()
    ),
    "payload-utf16": lambda ctx: ctx.key.sign_raw(
        ctx.header(), json.dumps(ctx.claims()).encode("utf-16")
    ),
    "payload-utf8-bom": lambda ctx: ctx.key.sign_raw(
        ctx.header(), b"\xef\xbb\xbf" + json.dumps(ctx.claims()).encode()
    ),
    "payload-non-utf8": lambda ctx: ctx.key.sign_raw(ctx.header(), b'{"sub":"\xff"}'),
    "payload-not-json": lambda ctx: ctx.key.sign_raw(ctx.header(), b"hello"),
    "payload-json-array": lambda ctx: ctx.key.sign_raw(ctx.header(), b"[1,2]"),
    "payload-json-null": lambda ctx: ctx.key.sign_raw(ctx.header(), b"null"),
    "header-deeply-nested": lambda ctx: ctx.key.sign_raw(
        b'{"alg":"RS256","typ":"at+jwt","kid":"key-1","x":' + _deep_json(1500) + b"}",
        ctx.claims(),
    ),
    "payload-deeply-nested": lambda ctx: ctx.key.sign_raw(
        ctx.header(),
        json.dumps(ctx.claims()).encode()[:-1] + b',"x":' + _deep_json(1500) + b"}",
    ),
    "token-100kb": lambda ctx: ctx.token(padding="p" * 100_000),
    # --- time claims
    "exp-missing": lambda ctx: ctx.token(exp=DROP),
    "exp-null": lambda ctx: ctx.token(exp=None),
    "exp-past-leeway": lambda ctx: ctx.token(exp=_now() - LEEWAY - 5),
    "exp-string": lambda ctx: ctx.token(exp="9999999999"),
    "exp-not-a-number": lambda ctx: ctx.token(exp="soon"),
    "exp-bool": lambda ctx: ctx.token(exp=True),
    "exp-huge-float": lambda ctx: ctx.key.sign_raw(
        ctx.header(), json.dumps(ctx.claims(exp=DROP)).encode()[:-1] + b',"exp":1e400}'
    ),
    "exp-nan": lambda ctx: ctx.key.sign_raw(
        ctx.header(), json.dumps(ctx.claims(exp=DROP)).encode()[:-1] + b',"exp":NaN}'
    ),
    "nbf-future-beyond-leeway": lambda ctx: ctx.token(nbf=_now() + LEEWAY + 10),
    "nbf-not-a-number": lambda ctx: ctx.token(nbf="later"),
    "iat-future-beyond-leeway": lambda ctx: ctx.token(iat=_now() + LEEWAY + 10),
    "iat-missing": lambda ctx: ctx.token(iat=DROP),
    "iat-not-a-number": lambda ctx: ctx.token(iat="now"),
    # --- audience
    "aud-missing": lambda ctx: ctx.token(aud=DROP),
    "aud-other": lambda ctx: ctx.token(aud="other-api"),
    "aud-empty": lambda ctx: ctx.token(aud=""),
    "aud-list-of-others": lambda ctx: ctx.token(aud=["web", "admin-api"]),
    "aud-prefix": lambda ctx: ctx.token(aud=AUDIENCE + "x"),
    "aud-list-with-non-string": lambda ctx: ctx.token(aud=[AUDIENCE, 1]),
    "aud-object": lambda ctx: ctx.token(aud={AUDIENCE: True}),
    # --- issuer
    "iss-missing": lambda ctx: ctx.token(iss=DROP),
    "iss-prefix": lambda ctx: ctx.token(iss=ISSUER[:-1]),
    "iss-extended": lambda ctx: ctx.token(iss=ISSUER + "/evil"),
    "iss-substring": lambda ctx: ctx.token(iss="127.0.0.1"),
    "iss-list": lambda ctx: ctx.token(iss=[ISSUER]),
    "iss-number": lambda ctx: ctx.token(iss=8080),
    "iss-trailing-slash": lambda ctx: ctx.token(iss=ISSUER + "/"),
    # --- typ
    "typ-jwt": lambda ctx: ctx.token({"typ": "JWT"}),
    "typ-missing": lambda ctx: ctx.token({"typ": DROP}),
    "typ-refresh": lambda ctx: ctx.token({"typ": "rt+jwt"}),
    "typ-at+jwt-suffix": lambda ctx: ctx.token({"typ": "at+jwt-evil"}),
    "typ-number": lambda ctx: ctx.token({"typ": 1}),
    # --- subject and roles
    "sub-missing": lambda ctx: ctx.token(sub=DROP),
    "sub-non-numeric": lambda ctx: ctx.token(sub="alice"),
    "sub-negative": lambda ctx: ctx.token(sub="-1"),
    "sub-decimal-point": lambda ctx: ctx.token(sub="1.0"),
    "sub-empty": lambda ctx: ctx.token(sub=""),
    "sub-integer": lambda ctx: ctx.token(sub=42),
    "sub-fullwidth-digits": lambda ctx: ctx.token(sub="\uff14\uff12"),
    "sub-beyond-bigint": lambda ctx: ctx.token(sub=str(2**63)),
    "sub-20-digits": lambda ctx: ctx.token(sub="1" * 20),
    "roles-string": lambda ctx: ctx.token(roles="admin"),
    "roles-object": lambda ctx: ctx.token(roles={"admin": True}),
    "roles-non-string-member": lambda ctx: ctx.token(roles=[1]),
    "preferred-username-not-string": lambda ctx: ctx.token(preferred_username=["a"]),
    "jti-not-string": lambda ctx: ctx.token(jti=5),
}


@pytest.fixture(scope="module")
def listener() -> Iterator[JWKSServer]:
    server = JWKSServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ctx(signing_key: SigningKey, attacker_key: SigningKey, listener: JWKSServer) -> Ctx:
    return Ctx(key=signing_key, attacker=attacker_key, listener=listener.url)


# One server and cache for the module (the JWKS tests exercise fresh caches): unknown kids
# here cost at most one fetch per cooldown, like in production.
@pytest.fixture(scope="module")
def jwks_server(signing_key: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer(keys=[signing_key]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def jwks_cache(
    jwks_server: JWKSServer, http_client: httpx.AsyncClient
) -> AsyncIterator[JWKSCache]:
    cache = JWKSCache(jwks_server.url, client=http_client, refresh_cooldown=10, timeout=0.5)
    yield cache
    await cache.aclose()


@pytest.fixture(scope="module")
def verifier(jwks_cache: JWKSCache) -> TokenVerifier:
    return TokenVerifier(jwks_cache, issuer=ISSUER, audience=AUDIENCE, leeway=LEEWAY)


@pytest.fixture(scope="module")
def roomy_verifier(jwks_cache: JWKSCache) -> TokenVerifier:
    """Accepts tokens up to 64 KB, so oversized parts reach the later checks."""
    return TokenVerifier(
        jwks_cache, issuer=ISSUER, audience=AUDIENCE, leeway=LEEWAY, max_token_bytes=65_536
    )


@pytest.mark.parametrize("make", REJECTED.values(), ids=REJECTED.keys())
async def test_rejected(
    make: Case,
    ctx: Ctx,
    verifier: TokenVerifier,
    roomy_verifier: TokenVerifier,
    listener: JWKSServer,
) -> None:
    token = make(ctx)
    # The real key is published and the verifier works: the case alone is what fails.
    assert (await verifier.verify(ctx.valid())).subject == "42"
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    with pytest.raises(InvalidToken):
        await roomy_verifier.verify(token)
    assert listener.requests == 0, "a URL from a token header was fetched"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda ctx: ctx.valid(), id="valid"),
        pytest.param(lambda ctx: ctx.token(exp=_now() - LEEWAY + 10), id="exp-within-leeway"),
        pytest.param(lambda ctx: ctx.token(nbf=_now() + LEEWAY - 10), id="nbf-within-leeway"),
        pytest.param(lambda ctx: ctx.token(iat=_now() + LEEWAY - 10), id="iat-within-leeway"),
        pytest.param(lambda ctx: ctx.token(nbf=DROP), id="nbf-absent"),
        pytest.param(lambda ctx: ctx.token(aud=["web", AUDIENCE]), id="aud-list-with-ours"),
        pytest.param(lambda ctx: ctx.token({"typ": "application/at+jwt"}), id="typ-media-type"),
        pytest.param(lambda ctx: ctx.token({"typ": "AT+JWT"}), id="typ-case-insensitive"),
        pytest.param(lambda ctx: ctx.token(roles=DROP), id="roles-absent"),
        pytest.param(lambda ctx: ctx.token(sub=str(2**63 - 1)), id="sub-max-bigint"),
    ],
)
async def test_accepted(make: Case, ctx: Ctx, verifier: TokenVerifier) -> None:
    claims = await verifier.verify(make(ctx))
    assert isinstance(claims, AccessClaims)
    assert claims.subject.isdecimal()
    assert claims.claims["iss"] == ISSUER


async def test_claims_of_a_valid_token(signing_key: SigningKey, verifier: TokenVerifier) -> None:
    claims = access_claims(issuer=ISSUER, audience=AUDIENCE, sub="7", roles=["admin"])
    verified = await verifier.verify(signing_key.sign(claims))
    assert verified.user_id == 7
    assert verified.is_admin
    assert verified.roles == frozenset({"admin"})
    assert verified.username == "user7"
    assert verified.token_id == claims["jti"]
    assert verified.expires_at == claims["exp"]


async def test_user_without_roles_is_not_admin(
    signing_key: SigningKey, verifier: TokenVerifier
) -> None:
    token = signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE, roles=[]))
    verified = await verifier.verify(token)
    assert not verified.is_admin
    assert verified.roles == frozenset()


async def test_wrong_configuration_rejects_good_tokens(
    signing_key: SigningKey, jwks_cache: JWKSCache
) -> None:
    token = signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE))
    for issuer, audience in ((ISSUER + "x", AUDIENCE), (ISSUER, "other")):
        with pytest.raises(InvalidToken):
            await TokenVerifier(jwks_cache, issuer=issuer, audience=audience).verify(token)


@pytest.mark.parametrize("leeway", [-1, MAX_LEEWAY_SECONDS + 1])
def test_leeway_is_bounded(leeway: int, jwks_cache: JWKSCache) -> None:
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier(jwks_cache, issuer=ISSUER, audience=AUDIENCE, leeway=leeway)


async def test_header_checks_come_before_the_key_lookup(
    ctx: Ctx, jwks_server: JWKSServer, http_client: httpx.AsyncClient
) -> None:
    """Hostile headers cost the JWKS endpoint nothing, even with no cooldown at all."""
    cache = JWKSCache(jwks_server.url, client=http_client, refresh_cooldown=0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    await verifier.verify(ctx.valid())
    fetched = jwks_server.requests
    for name in (
        "alg-none-unsigned",
        "typ-jwt",
        "kid-missing",
        "jku-header-real-key",
        "jwe-5-parts",
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify(REJECTED[name](ctx))
    assert jwks_server.requests == fetched
    # whereas a well-formed token with an unknown kid does look (this test can fail)
    with pytest.raises(InvalidToken):
        await verifier.verify(REJECTED["kid-path-traversal"](ctx))
    assert jwks_server.requests == fetched + 1
    await cache.aclose()


async def test_client_id_and_scope_claims(signing_key: SigningKey, verifier: TokenVerifier) -> None:
    claims = access_claims(
        issuer=ISSUER, audience=AUDIENCE, sub="7", client_id="first-party", scope="items:read"
    )
    verified = await verifier.verify(signing_key.sign(claims))
    assert verified.client_id == "first-party"
    assert verified.scopes == frozenset({"items:read"})
    assert not verified.is_machine
    assert verified.user_id == 7


async def test_a_token_without_scope_holds_the_users_default_scopes(
    signing_key: SigningKey, verifier: TokenVerifier
) -> None:
    user = await verifier.verify(signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE)))
    assert user.scopes == frozenset({"items:read", "items:write"})
    admin = await verifier.verify(
        signing_key.sign(access_claims(issuer=ISSUER, audience=AUDIENCE, roles=["admin"]))
    )
    assert "items:moderate" in admin.scopes
    assert admin.may_moderate


async def test_a_machine_token_is_never_a_user(
    signing_key: SigningKey, verifier: TokenVerifier
) -> None:
    claims = access_claims(
        issuer=ISSUER, audience=AUDIENCE, sub="svc_1", client_id="svc_1", scope="items:moderate"
    )
    del claims["roles"]
    verified = await verifier.verify(signing_key.sign(claims))
    assert verified.is_machine
    assert verified.may_moderate
    assert not verified.is_admin
    with pytest.raises(UserTokenRequired):
        _ = verified.user_id


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "svc_1", "client_id": "svc_2"},  # neither a user id nor the client
        {"sub": "svc_1"},  # no client_id at all
        {"sub": "9abc", "client_id": "9abc"},  # client ids start with a letter
        {"client_id": 5},
        {"client_id": "has space"},
        {"sub": "svc_1", "client_id": "svc_1", "roles": ["admin"]},
        {"scope": ["items:read"]},
        {"scope": "items:read\x01"},
    ],
)
async def test_malformed_client_and_scope_claims_are_rejected(
    signing_key: SigningKey, verifier: TokenVerifier, changes: dict[str, Any]
) -> None:
    claims = access_claims(issuer=ISSUER, audience=AUDIENCE, sub="7")
    claims.update(changes)
    with pytest.raises(InvalidToken):
        await verifier.verify(signing_key.sign(claims))
