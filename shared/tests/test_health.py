"""/healthz and /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from fastapi import FastAPI
from svckit_support import client_for, service_app

from svckit.health import Check, health_router


async def ok() -> bool:
    return True


async def down() -> bool:
    return False


async def raises() -> bool:
    raise ConnectionRefusedError("db down")


async def hangs() -> bool:
    await asyncio.sleep(10)
    return True


def app_with(checks: Mapping[str, Check], timeout: float = 0.1) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(lambda: checks, timeout=timeout))
    return app


async def test_healthz_answers_whatever_the_checks_say() -> None:
    async with client_for(app_with({"db": down})) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_when_every_check_passes() -> None:
    async with client_for(app_with({"db": ok, "jwks": ok})) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"db": "ok", "jwks": "ok"}}


async def test_not_ready_lists_what_failed_false_raised_or_timed_out() -> None:
    checks = {"db": ok, "redis": down, "jwks": raises, "slow": hangs}
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client_for(app_with(checks)) as client:
        response = await client.get("/readyz")
    assert loop.time() - started < 1.0  # checks run concurrently, each with its timeout
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "checks": {
            "db": "ok",
            "redis": "unavailable",
            "jwks": "unavailable",
            "slow": "unavailable",
        },
    }


async def test_no_checks_means_ready() -> None:
    async with client_for(app_with({})) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200


async def test_checks_are_built_per_request() -> None:
    state: dict[str, Check] = {}
    app = service_app(readiness_checks=lambda: {"db": state["db"]})
    async with client_for(app) as client:
        # before the lifespan set it up: not ready (503), never a 500
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
        state["db"] = ok
        assert (await client.get("/readyz")).status_code == 200
        state["db"] = down
        assert (await client.get("/readyz")).status_code == 503
