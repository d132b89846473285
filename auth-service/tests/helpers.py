"""Small API helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.models import User

from .conftest import PASSWORD, unique


async def register(
    client: httpx.AsyncClient,
    *,
    username: str | None = None,
    email: str | None = None,
    password: str = PASSWORD,
    full_name: str | None = "Test User",
) -> dict[str, Any]:
    username = username or unique()
    body = {
        "username": username,
        "email": email or f"{username.lower()}@example.com",
        "password": password,
        "full_name": full_name,
    }
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_with_token(
    client: httpx.AsyncClient, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await register(client, **kwargs)
    tokens = await login(client, user["username"], kwargs.get("password", PASSWORD))
    return user, tokens


async def make_admin(connection: AsyncConnection, user_id: int) -> None:
    await connection.execute(update(User).where(User.id == user_id).values(is_admin=True))


async def admin_with_token(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await register(client)
    await make_admin(connection, user["id"])
    tokens = await login(client, user["username"])
    return {**user, "is_admin": True}, tokens
