"""Concurrent writers: conditional updates, lost updates, counters under parallel inserts."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from ..conftest import Tokens, create_item


async def test_two_updates_with_one_etag_exactly_one_wins(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    for round_ in range(10):
        item = await create_item(client, tokens, 3, f"round {round_}")
        path = f"/items/{item['id']}"
        etag = (await client.get(path)).headers["etag"]
        headers = {**tokens.headers(3), "If-Match": etag}
        first, second = await asyncio.gather(
            client.patch(path, json={"title": "first"}, headers=headers),
            client.put(path, json={"title": "second"}, headers=headers),
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 412], (first.text, second.text)
        winner = first if first.status_code == 200 else second
        current = await client.get(path)
        assert current.json()["title"] == winner.json()["title"]
        assert current.headers["etag"] == f'"{item["id"]}-2"'


async def test_concurrent_partial_updates_lose_nothing(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    item = await create_item(client, tokens, 3, "t", description="d")
    path = f"/items/{item['id']}"
    responses = await asyncio.gather(
        *(
            client.patch(
                path,
                json={"title": f"title {i}"} if i % 2 else {"description": f"description {i}"},
                headers=tokens.headers(3),
            )
            for i in range(20)
        )
    )
    assert all(r.status_code == 200 for r in responses)
    current = await client.get(path)
    # Every update applied on top of the previous one: 20 bumps, and each field holds the
    # value of one of its own writers.
    assert current.headers["etag"] == f'"{item["id"]}-21"'
    assert current.json()["title"].startswith("title ")
    assert current.json()["description"].startswith("description ")


async def test_parallel_creates_and_deletes_keep_totals_exact(
    client: httpx.AsyncClient, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    created = await asyncio.gather(*(create_item(client, tokens, 1 + i % 3) for i in range(60)))
    await asyncio.gather(
        *(
            client.delete(f"/items/{item['id']}", headers=tokens.headers(item["owner_id"]))
            for item in created[::4]
        )
    )
    assert await sql.fetchval("SELECT count(*) FROM items") == 45
    listed = await client.get("/items/?limit=1")
    assert listed.headers["x-total-count"] == "45"
    for owner in (1, 2, 3):
        expected = await sql.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner)
        mine = await client.get("/items/my-items?limit=1", headers=tokens.headers(owner))
        assert mine.headers["x-total-count"] == str(expected)


async def test_concurrent_deletes_of_one_item(
    client: httpx.AsyncClient, tokens: Tokens, sql: asyncpg.Connection
) -> None:
    item = await create_item(client, tokens, 3)
    responses = await asyncio.gather(
        *(client.delete(f"/items/{item['id']}", headers=tokens.headers(3)) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 404, 404, 404, 404]
    assert (await client.get("/items/")).headers["x-total-count"] == "0"
    assert await sql.fetchval("SELECT sum(count) FROM item_count_shards") == 0
