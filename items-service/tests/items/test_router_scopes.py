"""Scopes on every protected route (RFC 6750 §3.1), and service clients' own tokens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..conftest import Tokens, create_item

CLIENT = "svc_0123456789abcdef"


def machine(tokens: Tokens, scope: str, **claims: Any) -> dict[str, str]:
    """A client-credentials token: ``sub`` is the client (RFC 9068 §2.2), no roles."""
    body: dict[str, Any] = {"sub": CLIENT, "client_id": CLIENT, "scope": scope}
    body.update(claims)
    return {"Authorization": f"Bearer {tokens.token(0, **body)}"}


def challenge(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="{scope}"'
    )
    assert response.json()["error"] == "insufficient_scope"
    assert response.json()["code"] == "insufficient_scope"


async def test_my_items_needs_items_read(client: httpx.AsyncClient, tokens: Tokens) -> None:
    refused = await client.get("/items/my-items", headers=tokens.headers(1, scope="items:write"))
    challenge(refused, "items:read")
    allowed = await client.get("/items/my-items", headers=tokens.headers(1, scope="items:read"))
    assert allowed.status_code == 200


async def test_creating_needs_items_write(client: httpx.AsyncClient, tokens: Tokens) -> None:
    refused = await client.post(
        "/items/", json={"title": "t"}, headers=tokens.headers(1, scope="items:read")
    )
    challenge(refused, "items:write")


async def test_changing_own_items_needs_items_write(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    item = await create_item(client, tokens, 1)
    read_only = tokens.headers(1, scope="items:read")
    for method in ("PATCH", "PUT"):
        response = await client.request(
            method, f"/items/{item['id']}", json={"title": "x"}, headers=read_only
        )
        challenge(response, "items:write")
    challenge(await client.delete(f"/items/{item['id']}", headers=read_only), "items:write")


async def test_a_token_without_a_scope_claim_keeps_the_old_abilities(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    # tokens issued before scopes existed: a user's default scopes
    item = await create_item(client, tokens, 1)
    admin = tokens.headers(2, admin=True)
    response = await client.patch(f"/items/{item['id']}", json={"title": "x"}, headers=admin)
    assert response.status_code == 200


async def test_an_admin_moderates_only_with_items_moderate(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    item = await create_item(client, tokens, 1)
    narrow = tokens.headers(2, admin=True, scope="items:read items:write")
    challenge(
        await client.patch(f"/items/{item['id']}", json={"title": "x"}, headers=narrow),
        "items:moderate",
    )
    full = tokens.headers(2, admin=True, scope="items:write items:moderate")
    assert (
        await client.patch(f"/items/{item['id']}", json={"title": "x"}, headers=full)
    ).status_code == 200


async def test_items_moderate_without_admin_role_is_not_enough_for_a_user(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    item = await create_item(client, tokens, 1)
    response = await client.delete(
        f"/items/{item['id']}", headers=tokens.headers(3, scope="items:write items:moderate")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


async def test_a_service_client_moderates_with_items_moderate(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    item = await create_item(client, tokens, 1)
    changed = await client.patch(
        f"/items/{item['id']}",
        json={"title": "moderated"},
        headers=machine(tokens, "items:moderate"),
    )
    assert changed.status_code == 200
    assert changed.json()["owner_id"] == 1
    deleted = await client.delete(f"/items/{item['id']}", headers=machine(tokens, "items:moderate"))
    assert deleted.status_code == 200


async def test_a_service_client_without_items_moderate_changes_nothing(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    item = await create_item(client, tokens, 1)
    challenge(
        await client.delete(f"/items/{item['id']}", headers=machine(tokens, "items:write")),
        "items:moderate",
    )
    challenge(
        await client.delete(f"/items/{item['id']}", headers=machine(tokens, "items:read")),
        "items:write",
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/items/my-items", None), ("POST", "/items/", {"title": "t"})],
)
async def test_a_machine_token_never_passes_for_a_user(
    client: httpx.AsyncClient, tokens: Tokens, method: str, path: str, body: Any
) -> None:
    headers = machine(tokens, "items:read items:write items:moderate")
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "user_token_required"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": CLIENT, "client_id": "svc_other"},  # sub neither a user nor the client
        {"sub": "1x", "client_id": "1x"},  # a client id never starts with a digit
        {"sub": CLIENT, "client_id": CLIENT, "roles": ["admin"]},  # machines hold no roles
        {"scope": 42},
    ],
)
async def test_malformed_client_claims_are_401(
    client: httpx.AsyncClient, tokens: Tokens, claims: dict[str, Any]
) -> None:
    response = await client.get("/items/my-items", headers=tokens.headers(1, **claims))
    assert response.status_code == 401


async def test_public_reads_need_no_scope(client: httpx.AsyncClient, tokens: Tokens) -> None:
    item = await create_item(client, tokens, 1)
    assert (await client.get("/items/")).status_code == 200
    assert (await client.get(f"/items/{item['id']}")).status_code == 200
