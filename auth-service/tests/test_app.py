from typing import Any

import httpx
import pytest

from svckit.testing.servers import free_port

from .conftest import PASSWORD, AppContext
from .helpers import bearer, user_with_token


async def test_root_welcomes_with_links_to_the_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["docs"] == {"auth": "/docs/auth", "items": "/docs/items"}
    assert "message" in body


async def test_docs_and_openapi_live_under_the_gateway_paths(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs/auth")
    assert docs.status_code == 200
    assert "/openapi/auth.json" in docs.text
    schema = (await client.get("/openapi/auth.json")).json()
    assert schema["servers"] == [{"url": "/", "description": "This origin (the gateway)"}]
    for path in (
        "/auth/register",
        "/auth/token",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/users/me",
        "/users/",
        "/users/{user_id}",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ):
        assert path in schema["paths"], path
    assert (await client.get("/docs")).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 404


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "signing_key": "ok"}


async def test_request_ids_are_echoed_or_generated(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32


async def test_errors_use_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "rid-1"})
    assert response.status_code == 404
    assert response.json() == {
        "detail": "Not Found",
        "code": "not_found",
        "status_code": 404,
        "path": "/nowhere",
        "request_id": "rid-1",
    }


async def test_metrics_are_exposed(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text


async def test_cors_is_off_by_default_and_configurable(
    client: httpx.AsyncClient, app_context: AppContext
) -> None:
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    response = await client.options("/auth/token", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    async with app_context(cors_origins=["https://app.example.com"]) as (_, cors_client):
        response = await cors_client.options("/auth/token", headers=preflight)
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"


async def test_a_database_outage_answers_503_never_500(app_context: AppContext) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/auth"
    async with app_context(use_database=False, database_url=dead) as (_, client):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        register = await client.post(
            "/auth/register",
            json={"username": "someone", "email": "someone@example.com", "password": PASSWORD},
        )
        assert register.status_code == 503
        assert register.json()["code"] == "database_unavailable"
        assert (await client.get("/.well-known/jwks.json")).status_code == 503
        me = await client.get("/auth/me", headers=bearer("a.b.c"))
        assert me.status_code in (401, 503)


# Every malformed request gets a 4xx in the envelope, never a 500.
MALFORMED = [
    ("POST", "/auth/register", {"content": b"{not json"}),
    ("POST", "/auth/register", {"content": b"[]", "headers": {"content-type": "application/json"}}),
    (
        "POST",
        "/auth/register",
        {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
    ),
    ("POST", "/auth/register", {"json": {"username": "a" * 10_000, "email": "x", "password": 1}}),
    ("POST", "/auth/register", {"json": {"username": ["x"], "email": {}, "password": None}}),
    (
        "POST",
        "/auth/register",
        {
            "content": b'{"username": "ab\\ud800c", "email": "a@b.co", "password": "x"}',
            "headers": {"content-type": "application/json"},
        },
    ),
    ("POST", "/auth/register", {"data": {"username": "form"}}),
    (
        "POST",
        "/auth/token",
        {
            "content": b"username=%ff%fe&password=%00",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
    ),
    (
        "POST",
        "/auth/token",
        {"content": b"\x00\x01", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    ),
    ("POST", "/auth/token", {"json": [1, 2, 3]}),
    (
        "POST",
        "/auth/refresh",
        {"content": b"null", "headers": {"content-type": "application/json"}},
    ),
    ("POST", "/auth/refresh", {"json": {"refresh_token": "\x00"}}),
    (
        "POST",
        "/auth/refresh",
        {
            "content": b'{"refresh_token": "\\ud800x"}',
            "headers": {"content-type": "application/json"},
        },
    ),
    ("GET", "/users/%00", {}),
    ("GET", "/users/99999999999999999999999999", {}),
    ("PUT", "/users/me", {"content": b"{", "headers": {"content-type": "application/json"}}),
    ("DELETE", "/auth/token", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), MALFORMED)
async def test_malformed_requests_are_4xx(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["status_code"] == response.status_code
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("method", "path", "kwargs"), MALFORMED)
async def test_malformed_requests_with_a_valid_token_are_4xx(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    _, tokens = await user_with_token(client)
    headers = {**kwargs.get("headers", {}), **bearer(tokens["access_token"])}
    response = await client.request(method, path, **{**kwargs, "headers": headers})
    assert 400 <= response.status_code < 500, response.text
