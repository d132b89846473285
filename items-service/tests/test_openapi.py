"""The OpenAPI document and docs are served where the gateway routes them, and are accurate."""

from __future__ import annotations

from typing import Any

import httpx


async def _schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi/items.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_docs_are_served_under_the_gateway_paths(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs/items")
    assert docs.status_code == 200
    assert "/openapi/items.json" in docs.text
    assert (await client.get("/docs/items/oauth2-redirect")).status_code == 200
    assert (await client.get("/docs")).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 404


async def test_bearer_scheme_points_at_the_auth_token_endpoint(client: httpx.AsyncClient) -> None:
    schema = await _schema(client)
    schemes = schema["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"


async def test_operations_document_auth_and_responses(client: httpx.AsyncClient) -> None:
    paths = (await _schema(client))["paths"]
    assert set(paths) == {"/items/", "/items/my-items", "/items/{item_id}"}
    protected = [
        ("/items/my-items", "get"),
        ("/items/", "post"),
        ("/items/{item_id}", "put"),
        ("/items/{item_id}", "patch"),
        ("/items/{item_id}", "delete"),
    ]
    for path, method in protected:
        operation = paths[path][method]
        assert operation.get("security"), (path, method)
        assert "401" in operation["responses"]
    for path, method in [("/items/", "get"), ("/items/{item_id}", "get")]:
        assert not paths[path][method].get("security"), (path, method)

    listing = paths["/items/"]["get"]
    assert {"X-Total-Count", "Link"} <= set(listing["responses"]["200"]["headers"])
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == {"skip", "limit", "after"}
    assert params["limit"]["schema"]["maximum"] == 100
    assert params["limit"]["schema"]["minimum"] == 1

    read = paths["/items/{item_id}"]["get"]
    assert "ETag" in read["responses"]["200"]["headers"]
    assert "304" in read["responses"]
    patch = paths["/items/{item_id}"]["patch"]
    assert {"403", "404", "412", "422"} <= set(patch["responses"])
    assert any(p["name"] == "if-match" for p in patch["parameters"])


async def test_item_schema_matches_the_contract(client: httpx.AsyncClient) -> None:
    schemas = (await _schema(client))["components"]["schemas"]
    item = schemas["ItemRead"]
    assert set(item["properties"]) == {
        "id",
        "title",
        "description",
        "owner_id",
        "created_at",
        "updated_at",
    }
    create = schemas["ItemCreate"]
    assert create["required"] == ["title"]
    assert create["properties"]["title"]["maxLength"] == 200
