import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from auth_service.password_policy import PasswordPolicy
from auth_service.seed import generated_password, seed
from svckit.tokens import TokenVerifier


def gateway(
    auth_app: ASGIApp,
    verifier: TokenVerifier,
    created: list[tuple[int, str]],
    throttle_first_login: bool = False,
) -> ASGIApp:
    """One ASGI app routing like the gateway: /items to a stand-in that checks the token with
    the real verifier, everything else to the real auth-service app."""
    state = {"logins": 0}

    async def create_item(request: Request) -> JSONResponse:
        token = request.headers["authorization"].removeprefix("Bearer ")
        claims = await verifier.verify(token)
        body = await request.json()
        created.append((claims.user_id, body["title"]))
        return JSONResponse({"id": len(created), "owner_id": claims.user_id, **body})

    items = Starlette(routes=[Route("/items/", create_item, methods=["POST"])])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/items"):
            await items(scope, receive, send)
            return
        if throttle_first_login and scope.get("path") == "/auth/token" and not state["logins"]:
            state["logins"] += 1
            response = JSONResponse({"detail": "slow down"}, 429, headers={"Retry-After": "7"})
            await response(scope, receive, send)
            return
        await auth_app(scope, receive, send)

    return app


async def test_seed_creates_users_and_items_through_the_api(app: FastAPI) -> None:
    created: list[tuple[int, str]] = []
    transport = httpx.ASGITransport(app=gateway(app, app.state.runtime.verifier, created))
    password = generated_password()
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        report = await seed(client, users=2, items_per_user=3, password=password)
        assert report.created_users == ["alice", "bob"]
        assert report.items == 6
        assert len({owner for owner, _ in created}) == 2

        # Twice is fine: the users exist and are logged in again.
        again = await seed(client, users=2, items_per_user=1, password=password)
        assert again.existing_users == ["alice", "bob"]
        assert again.created_users == []
        assert again.items == 2


async def test_seed_waits_out_rate_limits(app: FastAPI) -> None:
    created: list[tuple[int, str]] = []
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    transport = httpx.ASGITransport(
        app=gateway(app, app.state.runtime.verifier, created, throttle_first_login=True)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        report = await seed(
            client, users=1, items_per_user=1, password=generated_password(), sleep=fake_sleep
        )
    assert sleeps == [7.0]
    assert report.items == 1


def test_generated_passwords_satisfy_the_default_policy() -> None:
    for _ in range(20):
        assert PasswordPolicy().problems(generated_password(), username="alice") == []
