"""User deletion reaches items-service; /users/me composes the user's items."""

from __future__ import annotations

import time

import pytest

from devstack.stack import Stack
from e2e.api import Client


def _wait_until(predicate: object, timeout: float = 15.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def test_users_me_includes_items(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    item = client.create_item(tokens, "composed")
    me = client.get("/users/me", headers=tokens.headers)
    assert me.status_code == 200
    assert [i["id"] for i in me.json()["items"]] == [item["id"]]


def test_deleting_a_user_deletes_their_items(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    items = [client.create_item(tokens, f"doomed {n}")["id"] for n in range(3)]
    assert client.delete("/users/me", headers=tokens.headers).status_code == 200
    assert _wait_until(lambda: all(client.get(f"/items/{i}").status_code == 404 for i in items))


@pytest.mark.needs_stack
def test_users_me_items_null_when_items_service_is_down(live_stack: Stack, client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    live_stack.stop_component("items-service")
    try:
        started = time.perf_counter()
        me = client.get("/users/me", headers=tokens.headers)
        assert me.status_code == 200
        assert me.json()["items"] is None
        assert me.json()["username"] == user["username"]
        assert time.perf_counter() - started < 3
    finally:
        live_stack.start_component("items-service")


@pytest.mark.needs_stack
def test_deletion_while_items_service_is_down_is_delivered_later(
    live_stack: Stack, client: Client
) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    item = client.create_item(tokens, "survives the outage?")
    live_stack.stop_component("items-service")
    try:
        assert client.delete("/users/me", headers=tokens.headers).status_code == 200
    finally:
        live_stack.start_component("items-service")
    assert _wait_until(lambda: client.get(f"/items/{item['id']}").status_code == 404)
