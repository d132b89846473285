"""Public reads: listing, paging (offset and keyset), totals, single items, ETags."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from items_service.items.schemas import ItemRead

from ..conftest import Tokens, create_item


async def _create_many(client: httpx.AsyncClient, tokens: Tokens, owners: list[int]) -> list[int]:
    return [
        (await create_item(client, tokens, owner, f"item {i}"))["id"]
        for i, owner in enumerate(owners)
    ]


def _next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


async def test_empty_list_has_zero_total_and_no_next_link(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/")
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"
    assert "link" not in response.headers


async def test_list_is_ordered_by_id_with_exact_total(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    ids = await _create_many(client, tokens, [1, 2, 1, 3, 2])
    response = await client.get("/items/")
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body] == sorted(ids)
    assert response.headers["x-total-count"] == "5"
    for item in body:
        # The fast renderer writes exactly the documented schema.
        assert set(item) == set(ItemRead.model_fields)
        ItemRead.model_validate(item)


async def test_default_limit_is_100(client: httpx.AsyncClient, tokens: Tokens) -> None:
    await _create_many(client, tokens, [5] * 103)
    response = await client.get("/items/")
    assert len(response.json()) == 100
    assert response.headers["x-total-count"] == "103"
    assert _next_link(response) is not None


async def test_skip_and_limit(client: httpx.AsyncClient, tokens: Tokens) -> None:
    ids = sorted(await _create_many(client, tokens, [1] * 7))
    response = await client.get("/items/", params={"skip": 2, "limit": 3})
    assert [item["id"] for item in response.json()] == ids[2:5]
    assert response.headers["x-total-count"] == "7"
    beyond = await client.get("/items/", params={"skip": 50})
    assert beyond.json() == []
    assert beyond.headers["x-total-count"] == "7"
    edge = await client.get("/items/", params={"limit": 100, "skip": 0})
    assert len(edge.json()) == 7


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -1}, "limit"),
        ({"skip": -1}, "skip"),
        ({"limit": "ten"}, "limit"),
        ({"skip": 2**63}, "skip"),
        ({"after": -1}, "after"),
        ({"after": "x"}, "after"),
        ({"after": 2**63}, "after"),
    ],
)
@pytest.mark.parametrize("path", ["/items/", "/items/my-items"])
async def test_bad_paging_is_422_in_the_envelope(
    client: httpx.AsyncClient, tokens: Tokens, path: str, params: dict[str, Any], field: str
) -> None:
    response = await client.get(path, params=params, headers=tokens.headers(1))
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["status_code"] == 422
    assert body["path"] == path
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["errors"][0]["loc"] == ["query", field]


async def test_keyset_pages_follow_link_headers(client: httpx.AsyncClient, tokens: Tokens) -> None:
    ids = sorted(await _create_many(client, tokens, [1, 2] * 6))
    seen: list[int] = []
    url: str | None = "/items/?limit=5"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["x-total-count"] == "12"
        seen += [item["id"] for item in response.json()]
        url = _next_link(response)
        pages += 1
    assert seen == ids
    assert pages == 3  # 5 + 5 + 2: the last page carries no Link


async def test_keyset_after_returns_items_with_greater_ids(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    ids = sorted(await _create_many(client, tokens, [1] * 6))
    response = await client.get("/items/", params={"after": ids[1], "limit": 2})
    assert [item["id"] for item in response.json()] == ids[2:4]
    assert _next_link(response) == f"/items/?after={ids[3]}&limit=2"
    # An exactly full last page has no next link (one extra row is fetched to know).
    last = await client.get("/items/", params={"after": ids[3], "limit": 2})
    assert [item["id"] for item in last.json()] == ids[4:6]
    assert "link" not in last.headers
    assert (await client.get("/items/", params={"after": ids[-1]})).json() == []
    # skip counts from the cursor.
    skipped = await client.get("/items/", params={"after": ids[0], "skip": 2, "limit": 1})
    assert [item["id"] for item in skipped.json()] == [ids[3]]


async def test_my_items_lists_only_the_callers_items(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    ids = await _create_many(client, tokens, [1, 2, 1, 3, 1])
    mine = [i for i, owner in zip(ids, [1, 2, 1, 3, 1], strict=True) if owner == 1]
    response = await client.get("/items/my-items", headers=tokens.headers(1))
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == mine
    assert {item["owner_id"] for item in response.json()} == {1}
    assert response.headers["x-total-count"] == "3"

    page = await client.get("/items/my-items?limit=2", headers=tokens.headers(1))
    assert [item["id"] for item in page.json()] == mine[:2]
    link = _next_link(page)
    assert link == f"/items/my-items?after={mine[1]}&limit=2"
    rest = await client.get(link, headers=tokens.headers(1))
    assert [item["id"] for item in rest.json()] == mine[2:]
    assert rest.headers["x-total-count"] == "3"

    nobody = await client.get("/items/my-items", headers=tokens.headers(99))
    assert nobody.json() == []
    assert nobody.headers["x-total-count"] == "0"


async def test_my_items_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/my-items")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "not_authenticated"


async def test_read_item_with_etag(client: httpx.AsyncClient, tokens: Tokens) -> None:
    created = await create_item(client, tokens, 4, "one", description="first")
    response = await client.get(f"/items/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == f'"{created["id"]}-1"'


async def test_if_none_match_gives_304(client: httpx.AsyncClient, tokens: Tokens) -> None:
    created = await create_item(client, tokens, 4)
    path = f"/items/{created['id']}"
    tag = (await client.get(path)).headers["etag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        response = await client.get(path, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.headers["etag"] == tag
        assert response.content == b""
    assert (await client.get(path, headers={"If-None-Match": '"nope"'})).status_code == 200


@pytest.mark.parametrize(
    ("raw_id", "status"),
    [
        ("424242", 404),
        ("0", 404),
        ("-5", 404),
        ("99999999999999999999", 404),
        (str(2**63), 404),
        ("abc", 422),
        ("1.5", 422),
    ],
)
async def test_missing_or_malformed_ids_never_500(
    client: httpx.AsyncClient, tokens: Tokens, raw_id: str, status: int
) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(
            method,
            f"/items/{raw_id}",
            json={"title": "x"} if method in ("PUT", "PATCH") else None,
            headers=tokens.headers(1),
        )
        assert response.status_code == status, (method, response.text)
        body = response.json()
        assert body["status_code"] == status
        assert body["code"] == ("not_found" if status == 404 else "validation_error")
        assert body["path"] == f"/items/{raw_id}"


async def test_public_reads_ignore_the_authorization_header(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    created = await create_item(client, tokens, 4)
    garbage = {"Authorization": "Bearer not-a-token"}
    assert (await client.get("/items/", headers=garbage)).status_code == 200
    assert (await client.get(f"/items/{created['id']}", headers=garbage)).status_code == 200
