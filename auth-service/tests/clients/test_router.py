"""``/clients``: administrators only; the secret is shown once and works at once."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from ..helpers import admin_with_token, bearer, user_with_token


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def test_create_list_read_rotate_delete(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, tokens = await admin_with_token(client, connection)
    auth = bearer(tokens["access_token"])
    created = await client.post(
        "/clients",
        json={"name": "cron", "grant_types": ["client_credentials"], "scopes": ["items:read"]},
        headers=auth,
    )
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    assert {"client_id", "client_secret", "name", "grant_types", "scopes"} <= set(body)
    client_id = body["client_id"]
    assert client_id.startswith("svc_")

    listed = await client.get("/clients", headers=auth)
    assert listed.status_code == 200
    assert [c["client_id"] for c in listed.json()] == [client_id]
    assert "client_secret" not in listed.json()[0]
    assert "secret_hash" not in listed.json()[0]

    read = await client.get(f"/clients/{client_id}", headers=auth)
    assert read.json()["scopes"] == ["items:read"]
    assert "client_secret" not in read.json()

    rotated = await client.post(f"/clients/{client_id}/secret", headers=auth)
    assert rotated.status_code == 200
    new_secret = rotated.json()["client_secret"]
    assert new_secret != body["client_secret"]
    old = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert old.status_code == 401
    new = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, new_secret),
    )
    assert new.status_code == 200

    assert (await client.delete(f"/clients/{client_id}", headers=auth)).status_code == 200
    assert (await client.get(f"/clients/{client_id}", headers=auth)).status_code == 404
    assert (await client.delete(f"/clients/{client_id}", headers=auth)).status_code == 404
    gone = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, new_secret),
    )
    assert gone.status_code == 401


async def test_non_admins_cannot_manage_clients(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    auth = bearer(tokens["access_token"])
    assert (await client.get("/clients", headers=auth)).status_code == 403
    response = await client.post(
        "/clients", json={"name": "x", "grant_types": ["client_credentials"]}, headers=auth
    )
    assert response.status_code == 403
    assert (await client.get("/clients")).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "", "grant_types": ["client_credentials"]},
        {"name": "x", "grant_types": []},
        {"name": "x", "grant_types": ["implicit"]},
        {"name": "x", "grant_types": ["client_credentials"], "scopes": ["everything"]},
        {"name": "x", "grant_types": ["client_credentials"], "secret": "mine"},
        {"name": "a\x00b", "grant_types": ["client_credentials"]},
    ],
)
async def test_invalid_client_bodies_are_422(
    client: httpx.AsyncClient, connection: AsyncConnection, body: dict[str, Any]
) -> None:
    _, tokens = await admin_with_token(client, connection)
    response = await client.post("/clients", json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == 422


@pytest.mark.parametrize("client_id", ["1234", "svc_%00", "a" * 65])
async def test_impossible_client_ids_are_not_found_or_422(
    client: httpx.AsyncClient, connection: AsyncConnection, client_id: str
) -> None:
    _, tokens = await admin_with_token(client, connection)
    response = await client.get(f"/clients/{client_id}", headers=bearer(tokens["access_token"]))
    assert response.status_code in (404, 422)
