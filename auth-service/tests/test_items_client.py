import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from auth_service.items_client import fetch_my_items
from svckit.testing.servers import free_port

from .items_server import ItemsServer, item


@pytest.fixture
def server() -> Iterator[ItemsServer]:
    s = ItemsServer().start()
    yield s
    s.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_returns_the_items_and_forwards_the_token(
    server: ItemsServer, http: httpx.AsyncClient
) -> None:
    server.body = [item(1, 7), item(2, 7)]
    items = await fetch_my_items(http, base_url=server.url, token="tok", timeout=1.0)
    assert items is not None
    assert [i.id for i in items] == [1, 2]
    request = server.requests[0]
    assert request["path"] == "/items/my-items?limit=100"
    assert request["headers"]["Authorization"] == "Bearer tok"


async def test_slow_answer_gives_none_within_the_timeout(
    server: ItemsServer, http: httpx.AsyncClient
) -> None:
    server.delay = 2.0
    started = time.perf_counter()
    assert await fetch_my_items(http, base_url=server.url, token="t", timeout=0.3) is None
    assert time.perf_counter() - started < 0.8


async def test_down_gives_none(http: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert await fetch_my_items(http, base_url=url, token="t", timeout=1.0) is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"detail": "boom"}),
        (401, {"detail": "no"}),
        (200, {"not": "a list"}),
        (200, [{"id": "x"}]),
        (200, b"not json"),
        (302, b""),
    ],
)
async def test_bad_answers_give_none(
    server: ItemsServer, http: httpx.AsyncClient, status: int, body: Any
) -> None:
    server.status, server.body = status, body
    assert await fetch_my_items(http, base_url=server.url, token="t", timeout=1.0) is None


async def test_an_empty_list_is_an_empty_list(server: ItemsServer, http: httpx.AsyncClient) -> None:
    assert await fetch_my_items(http, base_url=server.url, token="t", timeout=1.0) == []
