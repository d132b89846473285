"""Writes: create, partial update (PUT and PATCH), delete; ownership, admin, If-Match."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from items_service.items.schemas import ItemRead

from ..conftest import Tokens, create_item


async def test_create_sets_owner_and_timestamps(
    client: httpx.AsyncClient, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    response = await client.post(
        "/items/", json={"title": "Buy milk", "description": "2 l"}, headers=tokens.headers(7)
    )
    assert response.status_code == 200
    body = response.json()
    ItemRead.model_validate(body)
    assert body["title"] == "Buy milk"
    assert body["description"] == "2 l"
    assert body["owner_id"] == 7
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("Z")
    assert response.headers["etag"] == f'"{body["id"]}-1"'
    row = await sql.fetchrow("SELECT title, owner_id FROM items WHERE id = $1", body["id"])
    assert row is not None
    assert dict(row) == {"title": "Buy milk", "owner_id": 7}


async def test_create_ignores_a_client_supplied_owner(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await client.post(
        "/items/", json={"title": "t", "owner_id": 99, "id": 5}, headers=tokens.headers(7)
    )
    assert response.status_code == 200
    assert response.json()["owner_id"] == 7


async def test_description_is_optional(client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = await create_item(client, tokens, 1, "only a title")
    assert body["description"] is None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "\t\n "},
        {"title": None},
        {"title": 5},
        {"title": "x" * 201},
        {"title": "ok", "description": "d" * 10_001},
        {"title": "nul\x00byte"},
        {"title": "ok", "description": "nul\x00"},
        [],
        "just a string",
    ],
)
async def test_invalid_items_are_422(
    client: httpx.AsyncClient, tokens: Tokens, payload: Any
) -> None:
    response = await client.post("/items/", json=payload, headers=tokens.headers(1))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"]


async def test_lone_surrogates_and_bad_json_are_422(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    headers = {**tokens.headers(1), "Content-Type": "application/json"}
    for raw in (b'{"title": "\\ud800"}', b'{"title": ', b"\xff\xfe", b'{"title": "a"}x'):
        response = await client.post("/items/", content=raw, headers=headers)
        assert response.status_code == 422, (raw, response.text)


async def test_limits_are_inclusive(client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = await create_item(client, tokens, 1, "t" * 200, description="d" * 10_000)
    assert len(body["title"]) == 200
    assert len(body["description"]) == 10_000
    unicode = await create_item(client, tokens, 1, "é" * 200)  # characters, not bytes
    assert unicode["title"] == "é" * 200


async def test_create_requires_a_valid_token(client: httpx.AsyncClient, tokens: Tokens) -> None:
    missing = await client.post("/items/", json={"title": "t"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    bad = await client.post(
        "/items/", json={"title": "t"}, headers={"Authorization": "Bearer abc.def.ghi"}
    )
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert bad.json()["code"] == "invalid_token"
    expired = await client.post(
        "/items/", json={"title": "t"}, headers=tokens.headers(1, exp=1_000_000, iat=999_000)
    )
    assert expired.status_code == 401


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_partial_update_keeps_unset_fields(
    client: httpx.AsyncClient, tokens: Tokens, method: str
) -> None:
    item = await create_item(client, tokens, 3, "title", description="description")
    path = f"/items/{item['id']}"
    response = await client.request(method, path, json={"title": "new"}, headers=tokens.headers(3))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "new"
    assert body["description"] == "description"
    assert body["created_at"] == item["created_at"]
    assert body["updated_at"] > item["updated_at"]
    assert response.headers["etag"] == f'"{item["id"]}-2"'

    response = await client.request(
        method, path, json={"description": "other"}, headers=tokens.headers(3)
    )
    assert response.json()["title"] == "new"
    assert response.json()["description"] == "other"

    cleared = await client.request(
        method, path, json={"description": None}, headers=tokens.headers(3)
    )
    assert cleared.json()["description"] is None
    assert cleared.json()["title"] == "new"
    assert (await client.get(path)).json() == cleared.json()


async def test_update_validation(client: httpx.AsyncClient, tokens: Tokens) -> None:
    item = await create_item(client, tokens, 3)
    path = f"/items/{item['id']}"
    for payload in ({"title": None}, {"title": " "}, {"title": "x" * 201}, {"description": 5}):
        response = await client.patch(path, json=payload, headers=tokens.headers(3))
        assert response.status_code == 422, payload
    assert (await client.get(path)).json() == item


async def test_empty_update_changes_nothing(client: httpx.AsyncClient, tokens: Tokens) -> None:
    item = await create_item(client, tokens, 3)
    path = f"/items/{item['id']}"
    response = await client.patch(path, json={}, headers=tokens.headers(3))
    assert response.status_code == 200
    assert response.json() == item
    assert response.headers["etag"] == f'"{item["id"]}-1"'
    # Still authorised and conditional like a real update.
    assert (await client.patch(path, json={}, headers=tokens.headers(4))).status_code == 403
    stale = {**tokens.headers(3), "If-Match": f'"{item["id"]}-9"'}
    assert (await client.patch(path, json={}, headers=stale)).status_code == 412


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_only_owner_or_admin_may_modify(
    client: httpx.AsyncClient, tokens: Tokens, method: str
) -> None:
    item = await create_item(client, tokens, 3, "mine")
    path = f"/items/{item['id']}"
    payload = {"title": "hijacked"} if method != "DELETE" else None

    other = await client.request(method, path, json=payload, headers=tokens.headers(4))
    assert other.status_code == 403
    assert other.json()["code"] == "forbidden"
    assert (await client.get(path)).json() == item

    missing = await client.request(method, path, json=payload)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"

    admin = await client.request(method, path, json=payload, headers=tokens.headers(9, admin=True))
    assert admin.status_code == 200
    if method == "DELETE":
        assert admin.json() == {"message": "Item deleted"}
        assert (await client.get(path)).status_code == 404
    else:
        assert admin.json()["title"] == "hijacked"
        assert admin.json()["owner_id"] == 3  # an admin edit keeps the owner


async def test_delete(client: httpx.AsyncClient, tokens: Tokens) -> None:
    item = await create_item(client, tokens, 3)
    path = f"/items/{item['id']}"
    response = await client.delete(path, headers=tokens.headers(3))
    assert response.status_code == 200
    assert isinstance(response.json()["message"], str)
    assert (await client.get(path)).status_code == 404
    again = await client.delete(path, headers=tokens.headers(3))
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"


async def test_writes_to_missing_items_are_404(client: httpx.AsyncClient, tokens: Tokens) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.request(
            method,
            "/items/31337",
            json={"title": "x"} if method != "DELETE" else None,
            headers={**tokens.headers(1, admin=True), "If-Match": '"31337-1"'},
        )
        assert response.status_code == 404, method


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_if_match(client: httpx.AsyncClient, tokens: Tokens, method: str) -> None:
    item = await create_item(client, tokens, 3)
    path = f"/items/{item['id']}"
    etag = (await client.get(path)).headers["etag"]

    def headers(if_match: str) -> dict[str, str]:
        return {**tokens.headers(3), "If-Match": if_match}

    ok = await client.request(method, path, json={"title": "v2"}, headers=headers(etag))
    assert ok.status_code == 200
    new_etag = ok.headers["etag"]
    assert new_etag != etag

    stale = await client.request(method, path, json={"title": "v3"}, headers=headers(etag))
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert (await client.get(path)).json()["title"] == "v2"

    for refused in (f"W/{new_etag}", '"garbage"', f'"{item["id"] + 1}-2"', '"1-99999999999"', "x"):
        response = await client.request(
            method, path, json={"title": "v3"}, headers=headers(refused)
        )
        assert response.status_code == 412, refused

    listed = await client.request(
        method, path, json={"title": "v3"}, headers=headers(f'"a", {new_etag}')
    )
    assert listed.status_code == 200
    star = await client.request(method, path, json={"title": "v4"}, headers=headers("*"))
    assert star.status_code == 200
    # Authorisation is decided before the precondition.
    other = await client.request(
        method, path, json={"title": "v5"}, headers={**tokens.headers(4), "If-Match": '"x"'}
    )
    assert other.status_code == 403


async def test_delete_honours_if_match(client: httpx.AsyncClient, tokens: Tokens) -> None:
    item = await create_item(client, tokens, 3)
    path = f"/items/{item['id']}"
    stale = await client.delete(
        path, headers={**tokens.headers(3), "If-Match": f'"{item["id"]}-7"'}
    )
    assert stale.status_code == 412
    ok = await client.delete(path, headers={**tokens.headers(3), "If-Match": f'"{item["id"]}-1"'})
    assert ok.status_code == 200


async def test_counters_stay_exact(
    client: httpx.AsyncClient, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    owners = [1, 2, 3, 1, 2, 1, 1, 4] * 5
    ids = [(await create_item(client, tokens, owner))["id"] for owner in owners]
    for item_id, owner in list(zip(ids, owners, strict=True))[::3]:
        response = await client.delete(f"/items/{item_id}", headers=tokens.headers(owner))
        assert response.status_code == 200

    total = await sql.fetchval("SELECT count(*) FROM items")
    listed = await client.get("/items/", params={"limit": 1})
    assert listed.headers["x-total-count"] == str(total)
    for owner in (1, 2, 3, 4, 5):
        expected = await sql.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner)
        mine = await client.get(
            "/items/my-items", params={"limit": 1}, headers=tokens.headers(owner)
        )
        assert mine.headers["x-total-count"] == str(expected), owner
    # The counts are spread over shards, never a single hot row.
    shards = await sql.fetchval("SELECT count(*) FROM item_count_shards WHERE count > 0")
    assert shards > 1
