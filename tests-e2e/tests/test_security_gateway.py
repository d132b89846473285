"""The gateway's edge protections: body-size limit and security headers on every answer.

Every response with a body, whoever produced it (a service, Traefik's own 404/429/413),
carries ``X-Content-Type-Options: nosniff``, and none leaks server software or a version.
(Traefik's pre-routing 400 for ambiguous encoded paths has neither body nor headers.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from e2e.api import Client, Tokens, unique_username

MAX_BODY = 1024 * 1024  # GATEWAY_MAX_BODY_BYTES default, kept by the suite's stack


@pytest.fixture(scope="module")
def member(base_url: str) -> Tokens:
    with Client(base_url) as client:
        return client.login(client.register()["username"])


def _json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    prefix, suffix = b'{"title": "', b'"}'
    return prefix + b"a" * (size - len(prefix) - len(suffix)) + suffix


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/register"),
        ("POST", "/auth/token"),
        ("POST", "/auth/refresh"),
        ("PUT", "/users/me"),
        ("POST", "/items/"),
        ("PATCH", "/items/1"),
    ],
)
def test_bodies_over_the_limit_are_413_at_the_gateway(
    client_factory: Callable[[], Client], member: Tokens, method: str, path: str
) -> None:
    client = client_factory()  # its own address: the rate-limited routes have budget left
    response = client.request(
        method,
        path,
        content=_json_of_size(MAX_BODY + 1),
        headers={"Content-Type": "application/json", **member.headers},
    )
    assert response.status_code == 413, response.text[:200]
    assert response.headers.get("x-content-type-options") == "nosniff"


def test_chunked_bodies_over_the_limit_are_413(client: Client, member: Tokens) -> None:
    def chunks() -> Iterator[bytes]:
        body = _json_of_size(MAX_BODY + 64 * 1024)
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = client.post(
        "/items/",
        content=chunks(),  # no Content-Length: Transfer-Encoding: chunked
        headers={"Content-Type": "application/json", **member.headers},
    )
    assert response.status_code == 413


def test_a_body_at_the_limit_reaches_the_service(client: Client, member: Tokens) -> None:
    response = client.post(
        "/items/",
        content=_json_of_size(MAX_BODY),
        headers={"Content-Type": "application/json", **member.headers},
    )
    # The service's own validation answers (title too long), not the gateway's limit.
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def _assert_edge_headers(response: httpx.Response, what: str) -> None:
    headers = response.headers
    if response.content:
        assert headers.get("x-content-type-options") == "nosniff", (what, dict(headers))
    else:
        # Traefik refuses some requests before routing (ambiguous encoded characters), so no
        # middleware adds headers; such answers have no body and no type: nothing to sniff.
        assert "content-type" not in headers, (what, dict(headers))
    server = headers.get("server", "")
    assert not any(ch.isdigit() for ch in server), (what, server)
    assert "uvicorn" not in server.lower(), (what, server)
    assert "x-powered-by" not in headers, what


def test_security_headers_on_every_kind_of_answer(
    client_factory: Callable[[], Client], member: Tokens
) -> None:
    client = client_factory()
    answers: dict[str, httpx.Response] = {
        "200 list": client.get("/items/", params={"limit": 1}),
        "200 jwks": client.get("/.well-known/jwks.json"),
        "200 html docs": client.get("/docs/auth"),
        "200 openapi": client.get("/openapi/items.json"),
        "200 root": client.get("/"),
        "200 me": client.get("/auth/me", headers=member.headers),
        "401 missing": client.get("/items/my-items"),
        "401 invalid": client.get("/auth/me", headers={"Authorization": "Bearer x.y.z"}),
        "403 admin only": client.get("/users/", headers=member.headers),
        "404 service": client.get("/items/999999999"),
        "404 gateway": client.get("/not-routed"),
        "404 internal": client.get("/metrics"),
        "400 encoded slash": client.get("/items/%2F..%2Fmetrics"),
        "405": client.put("/auth/me", headers=member.headers),
        "422": client.get("/items/", params={"limit": 0}),
        "413": client.post(
            "/items/",
            content=_json_of_size(MAX_BODY + 1),
            headers={"Content-Type": "application/json", **member.headers},
        ),
        "preflight": client.request(
            "OPTIONS",
            "/items/",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        ),
    }
    for _ in range(6):
        answers["login"] = client.login_response(unique_username(), "Wr0ng!Password")
    assert answers["login"].status_code == 429  # Traefik's own answer
    expected = {"400 encoded slash": 400, "404 gateway": 404, "404 internal": 404, "413": 413}
    for what, response in answers.items():
        if what in expected:
            assert response.status_code == expected[what], (what, response.status_code)
        _assert_edge_headers(response, what)
    # CORS: no origin is allowed by default, so a foreign page gets no grant.
    assert "access-control-allow-origin" not in answers["preflight"].headers
    # Framing and referrer policy on what a browser might render.
    assert answers["200 html docs"].headers.get("x-frame-options") == "DENY"
    assert answers["200 html docs"].headers.get("referrer-policy") == "no-referrer"
