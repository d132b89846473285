"""The token test helpers themselves: keys, signing, and the loopback JWKS server."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest

from svckit.testing.keys import JWKSServer, SigningKey, access_claims, b64url, compact_jws


def test_jwk_is_public_only(signing_key: SigningKey) -> None:
    jwk = signing_key.jwk()
    assert jwk["kty"] == "RSA"
    assert (jwk["kid"], jwk["use"], jwk["alg"]) == (signing_key.kid, "sig", "RS256")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()


def test_sign_sets_the_access_token_header(signing_key: SigningKey) -> None:
    token = signing_key.sign({"sub": "1"}, headers={"x": 1})
    assert jwt.get_unverified_header(token) == {
        "alg": "RS256",
        "typ": "at+jwt",
        "kid": signing_key.kid,
        "x": 1,
    }
    assert jwt.decode(token, signing_key.public_pem, algorithms=["RS256"]) == {"sub": "1"}


def test_sign_raw_signs_exactly_what_it_is_given(signing_key: SigningKey) -> None:
    token = signing_key.sign_raw({"alg": "RS256"}, b"raw bytes")
    header, payload, _ = token.split(".")
    assert header == b64url(b'{"alg": "RS256"}')
    assert payload == b64url(b"raw bytes")
    jws = jwt.PyJWS().decode_complete(token, signing_key.public_pem, algorithms=["RS256"])
    assert jws["payload"] == b"raw bytes"


def test_compact_jws_and_b64url() -> None:
    assert b64url(b"\xfb\xff") == "-_8"
    assert compact_jws(b"h", b"p") == "aA.cA."
    assert compact_jws({"a": 1}, b"p", b"s").split(".")[2] == "cw"


def test_access_claims() -> None:
    claims = access_claims(issuer="iss", audience="aud", sub="5", roles=["admin"], now=1000, x=1)
    assert claims["iss"] == "iss"
    assert claims["aud"] == "aud"
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1000, 1000, 1300)
    assert claims["roles"] == ["admin"]
    assert claims["preferred_username"] == "user5"
    assert claims["x"] == 1
    assert (
        access_claims(issuer="i", audience="a")["jti"]
        != access_claims(issuer="i", audience="a")["jti"]
    )


async def test_jwks_server_serves_counts_and_misbehaves_on_demand(
    signing_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    server = JWKSServer(keys=[signing_key], max_age=42).start()
    url = server.url
    try:
        response = await http_client.get(server.url)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=42"
        assert response.json() == {"keys": [signing_key.jwk()]}

        server.status, server.body = 503, b"down"
        response = await http_client.get(server.url)
        assert (response.status_code, response.content) == (503, b"down")

        server.redirect_to = "http://127.0.0.1:9/elsewhere"
        response = await http_client.get(server.url)
        assert (response.status_code, response.headers["location"]) == (302, server.redirect_to)

        server.redirect_to, server.delay = None, 0.2
        started = time.perf_counter()
        await http_client.get(server.url.replace(server.path, "/any/path"))
        assert time.perf_counter() - started >= 0.2
        assert server.requests == 4
        assert len(server.request_headers) == 4
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        await http_client.get(url)  # stopped means stopped


def test_document_is_json_of_the_current_keys(
    signing_key: SigningKey, second_key: SigningKey
) -> None:
    server = JWKSServer(keys=[signing_key])
    server.keys.append(second_key)
    assert [k["kid"] for k in json.loads(json.dumps(server.document()))["keys"]] == [
        signing_key.kid,
        second_key.kid,
    ]
