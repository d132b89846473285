import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.models import RefreshFamily, RefreshToken, User
from auth_service.refresh import token_hash

from .conftest import PASSWORD, AppContext, FakeClock
from .helpers import bearer, login, register, user_with_token


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def test_refresh_returns_a_new_pair(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    response = await refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["token_type"] == "bearer"
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, tokens = await user_with_token(client)
    stored = (await connection.execute(select(RefreshToken.token_hash))).scalars().all()
    assert token_hash(tokens["refresh_token"]) in stored
    assert tokens["refresh_token"].encode() not in stored


async def test_reuse_of_a_used_token_revokes_the_family(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, tokens = await user_with_token(client)
    first = tokens["refresh_token"]
    second = (await refresh(client, first)).json()["refresh_token"]
    third = (await refresh(client, second)).json()["refresh_token"]

    replay = await refresh(client, first)
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_refresh_token"
    # The revocation was committed despite the error answer, so the newest token is dead too.
    assert (await refresh(client, third)).status_code == 401
    reasons = (await connection.execute(select(RefreshFamily.revoke_reason))).scalars().all()
    assert "reuse" in reasons


async def test_reuse_revokes_only_that_family(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    other_session = await login(client, user["username"])
    await refresh(client, tokens["refresh_token"])
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await refresh(client, other_session["refresh_token"])).status_code == 200


@pytest.mark.parametrize("token", ["unknown-token", "x" * 512])
async def test_unknown_tokens_are_401(client: httpx.AsyncClient, token: str) -> None:
    assert (await refresh(client, token)).status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"refresh_token": ""}, {"refresh_token": "x" * 513}, {"refresh_token": 5}, []]
)
async def test_malformed_bodies_are_422(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/auth/refresh", json=body)
    assert response.status_code == 422


async def test_the_family_has_an_absolute_lifetime(
    app_context: AppContext, clock: FakeClock
) -> None:
    async with app_context(refresh_token_ttl_seconds=3600) as (_, client):
        _, tokens = await user_with_token(client)
        clock.advance(1800)
        token = (await refresh(client, tokens["refresh_token"])).json()["refresh_token"]
        clock.advance(1801)  # rotation did not extend the family
        assert (await refresh(client, token)).status_code == 401


async def test_inactive_users_cannot_refresh(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user, tokens = await user_with_token(client)
    await connection.execute(update(User).where(User.id == user["id"]).values(is_active=False))
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401


async def test_a_password_change_revokes_every_family(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    other = await login(client, user["username"])
    response = await client.put(
        "/users/me",
        json={"password": "N3w-Passw0rd!", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await refresh(client, other["refresh_token"])).status_code == 401


async def test_deactivation_revokes_every_family(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    from .helpers import admin_with_token

    user, tokens = await user_with_token(client)
    _, admin = await admin_with_token(client, connection)
    response = await client.patch(
        f"/users/{user['id']}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )
    assert response.status_code == 200
    await connection.execute(update(User).where(User.id == user["id"]).values(is_active=True))
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401


async def test_concurrent_refreshes_with_one_token_exactly_one_wins(
    app_context: AppContext, fresh_database_url: str
) -> None:
    # Real commits and row locks: the app owns an engine on a database of its own.
    async with app_context(use_database=False, database_url=fresh_database_url) as (_, client):
        user = await register(client)
        tokens = await login(client, user["username"])
        responses = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for _ in range(6))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 401, 401, 401, 401, 401]
        # The losers presented a used token: that is reuse, so the family is revoked
        # (RFC 9700 §4.14.2) and the winner's successor no longer works either.
        winner = next(r for r in responses if r.status_code == 200).json()
        assert (await refresh(client, winner["refresh_token"])).status_code == 401
