"""install_common: everything a service app gets, wired in the right order."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from svckit_support import client_for, service_app

from svckit.app import telemetry
from svckit.metrics import Metrics


def build_app() -> FastAPI:
    app = service_app()

    @app.get("/db-down")
    async def db_down() -> None:
        raise ConnectionRefusedError("connect call failed ('127.0.0.1', 5432)")

    @app.get("/crash")
    async def crash() -> None:
        raise KeyError("internal detail")

    return app


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_app()


async def test_common_routes_and_state(app: FastAPI) -> None:
    async with client_for(app) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
    assert isinstance(app.state.metrics, Metrics)


async def test_connection_failure_is_503_in_the_envelope(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/db-down", headers={"X-Request-ID": "rid-db"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json()["code"] == "database_unavailable"
    assert response.json()["request_id"] == "rid-db"
    assert "5432" not in response.text


async def test_a_500_has_the_request_id_and_is_counted(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/crash", headers={"X-Request-ID": "rid-crash"})
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "rid-crash"
    assert response.json()["request_id"] == "rid-crash"
    assert "internal detail" not in response.text
    assert 'route="/crash",service="test",status="500"' in metrics


async def test_healthz_through_the_full_stack(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


async def test_redis_connection_errors_are_503_in_the_envelope() -> None:
    import httpx
    import redis.asyncio as redis_asyncio
    from fastapi import FastAPI

    from svckit.app import install_common
    from svckit.testing.servers import free_port

    app = FastAPI()
    install_common(app, service="t", readiness_checks=dict)

    @app.get("/needs-redis")
    async def needs_redis() -> dict[str, str]:
        client = redis_asyncio.Redis(port=free_port(), socket_connect_timeout=0.5)
        try:
            await client.get("k")
        finally:
            await client.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/needs-redis")
    assert response.status_code == 503
    assert response.json()["code"] == "dependency_unavailable"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(("enabled", "consulted"), [(False, False), (True, True)])
async def test_opentelemetry_is_consulted_per_request_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, enabled: bool, consulted: bool
) -> None:
    from opentelemetry import trace

    calls: list[None] = []
    real = trace.get_tracer_provider

    def counting() -> trace.TracerProvider:
        calls.append(None)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    app = FastAPI(telemetry=telemetry(enabled))

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async with client_for(app) as client:
        assert (await client.get("/ping")).status_code == 200
    assert bool(calls) is consulted
