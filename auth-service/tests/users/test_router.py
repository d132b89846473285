import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.models import OutboxEvent

from ..conftest import PASSWORD, AppContext, unique
from ..helpers import admin_with_token, bearer, login, register, user_with_token
from ..items_server import ItemsServer, item


@pytest.fixture
def items_server() -> Iterator[ItemsServer]:
    server = ItemsServer().start()
    yield server
    server.stop()


# ------------------------------------------------------------------ /users/me


async def test_me_includes_the_items_from_items_service(
    app_context: AppContext, items_server: ItemsServer
) -> None:
    async with app_context(items_url=items_server.url) as (_, client):
        user, tokens = await user_with_token(client)
        items_server.body = [item(1, user["id"]), item(2, user["id"])]
        response = await client.get(
            "/users/me", headers={**bearer(tokens["access_token"]), "X-Request-ID": "rid-123"}
        )
    assert response.status_code == 200
    body = response.json()
    assert [i["id"] for i in body["items"]] == [1, 2]
    assert set(body["items"][0]) == {
        "id",
        "title",
        "description",
        "owner_id",
        "created_at",
        "updated_at",
    }
    assert body["username"] == user["username"]
    sent = items_server.requests[0]["headers"]
    assert sent["Authorization"] == f"Bearer {tokens['access_token']}"
    assert sent["X-Request-ID"] == "rid-123"


async def test_me_has_null_items_when_items_service_is_slow(
    app_context: AppContext, items_server: ItemsServer
) -> None:
    items_server.delay = 2.0
    async with app_context(items_url=items_server.url, items_timeout_seconds=0.3) as (_, client):
        _, tokens = await user_with_token(client)
        started = time.perf_counter()
        response = await client.get("/users/me", headers=bearer(tokens["access_token"]))
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["items"] is None
    assert elapsed < 1.0


async def test_me_has_null_items_when_items_service_is_down(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)  # items_url points at a closed port
    response = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json()["items"] is None


async def test_me_has_null_items_when_items_service_fails(
    app_context: AppContext, items_server: ItemsServer
) -> None:
    items_server.status = 503
    async with app_context(items_url=items_server.url) as (_, client):
        _, tokens = await user_with_token(client)
        response = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert response.json()["items"] is None


async def test_me_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/me")).status_code == 401


# ------------------------------------------------------------------ PUT /users/me


async def test_update_full_name_and_request_an_email_change(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    email = f"{unique()}@Example.com"
    response = await client.put(
        "/users/me",
        json={"email": email, "full_name": "  New Name  "},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200
    # The new address is used only once confirmed (tests/recovery cover the confirmation).
    assert response.json()["email"] == user["email"]
    assert response.json()["full_name"] == "New Name"


async def test_partial_update_keeps_other_fields(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    response = await client.put(
        "/users/me", json={"full_name": None}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200
    assert response.json()["full_name"] is None
    assert response.json()["email"] == user["email"]


async def test_update_to_a_taken_email_is_400(client: httpx.AsyncClient) -> None:
    other = await register(client)
    _, tokens = await user_with_token(client)
    response = await client.put(
        "/users/me", json={"email": other["email"].upper()}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 400
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    "body",
    [
        {"email": None},
        {"email": "not-an-email"},
        {"username": "renamed"},
        {"is_admin": True},
        {"full_name": "x" * 256},
        {"full_name": "nul\x00byte"},
        {"password": None},
        [],
    ],
)
async def test_invalid_updates_are_422(client: httpx.AsyncClient, body: Any) -> None:
    _, tokens = await user_with_token(client)
    response = await client.put("/users/me", json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == 422


async def test_changing_the_password_requires_the_current_one(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    headers = bearer(tokens["access_token"])
    missing = await client.put("/users/me", json={"password": "N3w-Passw0rd!"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["body", "current_password"]

    wrong = await client.put(
        "/users/me",
        json={"password": "N3w-Passw0rd!", "current_password": "Wr0ng-Passw0rd!"},
        headers=headers,
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "incorrect_password"

    weak = await client.put(
        "/users/me", json={"password": "weak", "current_password": PASSWORD}, headers=headers
    )
    assert weak.status_code == 422
    assert len(weak.json()["errors"]) >= 3

    ok = await client.put(
        "/users/me",
        json={"password": "N3w-Passw0rd!", "current_password": PASSWORD},
        headers=headers,
    )
    assert ok.status_code == 200
    old = await client.post(
        "/auth/token", data={"username": user["username"], "password": PASSWORD}
    )
    assert old.status_code == 401
    await login(client, user["username"], "N3w-Passw0rd!")


# ------------------------------------------------------------------ DELETE /users/me


async def test_delete_me_removes_the_account_and_records_an_event(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user, tokens = await user_with_token(client)
    response = await client.delete("/users/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"message": "User deleted"}
    failed = await client.post(
        "/auth/token", data={"username": user["username"], "password": PASSWORD}
    )
    assert failed.status_code == 401
    payloads = (await connection.execute(select(OutboxEvent.payload))).scalars().all()
    assert {"user_id": user["id"]} in payloads


# ------------------------------------------------------------------ admin


async def test_non_admins_get_403(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    headers = bearer(tokens["access_token"])
    for method, path in [
        ("GET", "/users/"),
        ("GET", f"/users/{user['id']}"),
        ("PATCH", f"/users/{user['id']}"),
        ("DELETE", f"/users/{user['id']}"),
        ("GET", "/users/999999"),
    ]:
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 403, (method, path)


async def test_admin_lists_users_with_paging_and_total(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, admin = await admin_with_token(client, connection)
    for _ in range(3):
        await register(client)
    headers = bearer(admin["access_token"])
    everyone = await client.get("/users/", headers=headers)
    assert everyone.status_code == 200
    count = int(everyone.headers["x-total-count"])
    ids = [u["id"] for u in everyone.json()]
    assert ids == sorted(ids)
    assert len(ids) == min(count, 100)
    page = await client.get("/users/", params={"skip": 1, "limit": 2}, headers=headers)
    assert [u["id"] for u in page.json()] == ids[1:3]
    assert page.headers["x-total-count"] == str(count)


@pytest.mark.parametrize(
    "params",
    [{"skip": -1}, {"limit": 0}, {"limit": 101}, {"limit": "abc"}, {"skip": 2**63}],
)
async def test_bad_paging_is_422(
    client: httpx.AsyncClient, connection: AsyncConnection, params: dict[str, Any]
) -> None:
    _, admin = await admin_with_token(client, connection)
    response = await client.get("/users/", params=params, headers=bearer(admin["access_token"]))
    assert response.status_code == 422


async def test_admin_reads_a_user_or_gets_404(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user = await register(client)
    _, admin = await admin_with_token(client, connection)
    headers = bearer(admin["access_token"])
    assert (await client.get(f"/users/{user['id']}", headers=headers)).json() == user
    missing = await client.get("/users/987654321", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


@pytest.mark.parametrize("user_id", ["0", "-1", "abc", str(2**63), "1.5"])
async def test_bad_user_ids_are_422(
    client: httpx.AsyncClient, connection: AsyncConnection, user_id: str
) -> None:
    _, admin = await admin_with_token(client, connection)
    response = await client.get(f"/users/{user_id}", headers=bearer(admin["access_token"]))
    assert response.status_code == 422


async def test_admin_updates_a_user(client: httpx.AsyncClient, connection: AsyncConnection) -> None:
    user = await register(client)
    _, admin = await admin_with_token(client, connection)
    response = await client.patch(
        f"/users/{user['id']}",
        json={"is_admin": True, "full_name": "Promoted", "email": f"{unique()}@EXAMPLE.com"},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["is_admin"] is True
    assert body["full_name"] == "Promoted"
    assert body["email"] == body["email"].lower()


@pytest.mark.parametrize(
    "body", [{"is_active": None}, {"is_admin": "yes please"}, {"username": "x"}, {"email": "bad"}]
)
async def test_invalid_admin_updates_are_422(
    client: httpx.AsyncClient, connection: AsyncConnection, body: dict[str, Any]
) -> None:
    user = await register(client)
    _, admin = await admin_with_token(client, connection)
    response = await client.patch(
        f"/users/{user['id']}", json=body, headers=bearer(admin["access_token"])
    )
    assert response.status_code == 422


async def test_a_deactivated_user_cannot_log_in(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user = await register(client)
    _, admin = await admin_with_token(client, connection)
    await client.patch(
        f"/users/{user['id']}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": PASSWORD}
    )
    assert response.status_code == 403


async def test_admin_rights_are_checked_in_the_database_not_the_token(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    admin_user, admin = await admin_with_token(client, connection)
    other_admin, _ = await admin_with_token(client, connection)
    await client.patch(
        f"/users/{admin_user['id']}",
        json={"is_admin": False},
        headers=bearer(admin["access_token"]),
    )
    # The token still says "admin", the database no longer does.
    response = await client.get("/users/", headers=bearer(admin["access_token"]))
    assert response.status_code == 403
    del other_admin


async def test_admin_deletes_a_user(client: httpx.AsyncClient, connection: AsyncConnection) -> None:
    user = await register(client)
    _, admin = await admin_with_token(client, connection)
    headers = bearer(admin["access_token"])
    response = await client.delete(f"/users/{user['id']}", headers=headers)
    assert response.status_code == 200
    assert (await client.get(f"/users/{user['id']}", headers=headers)).status_code == 404
    payloads = (await connection.execute(select(OutboxEvent.payload))).scalars().all()
    assert {"user_id": user["id"]} in payloads


# ------------------------------------------------------------------ the last admin


async def _only_admin(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make the caller the only active admin of the (rolled-back) database."""
    from sqlalchemy import update

    from auth_service.models import User

    await connection.execute(update(User).values(is_admin=False))
    return await admin_with_token(client, connection)


@pytest.mark.parametrize(
    ("method", "body"),
    [("PATCH", {"is_admin": False}), ("PATCH", {"is_active": False}), ("DELETE", None)],
)
async def test_the_last_admin_cannot_be_removed(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    method: str,
    body: dict[str, Any] | None,
) -> None:
    admin_user, admin = await _only_admin(client, connection)
    response = await client.request(
        method, f"/users/{admin_user['id']}", json=body, headers=bearer(admin["access_token"])
    )
    assert response.status_code == 409
    assert response.json()["code"] == "last_admin"
    payloads = (await connection.execute(select(OutboxEvent.payload))).scalars().all()
    assert {"user_id": admin_user["id"]} not in payloads  # rolled back with the refusal


async def test_the_last_admin_cannot_delete_themselves(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, admin = await _only_admin(client, connection)
    response = await client.delete("/users/me", headers=bearer(admin["access_token"]))
    assert response.status_code == 409


async def test_with_a_second_admin_demotion_works(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    admin_user, admin = await _only_admin(client, connection)
    await admin_with_token(client, connection)
    response = await client.patch(
        f"/users/{admin_user['id']}",
        json={"is_admin": False},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 200
    assert response.json()["is_admin"] is False
