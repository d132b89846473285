"""The docker compose stack as operators run it (``make compose-test`` only).

Volumes keep the data over ``down`` and ``up``; a deletion made while items-service is down
reaches it once it is back; replicas started with ``--scale`` share the load; stopping one
under load fails no request that was not already on it. The stack is the one
containers/compose-test.sh brought up (``E2E_COMPOSE_PROJECT``, ``E2E_COMPOSE_ENV_FILE``);
clients reach the gateway container on the compose network, each from an address of its own.
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.config import repo_root
from e2e.api import Client, Tokens, unique_username
from e2e.compose import ComposeStack, replica_request_counts

pytestmark = pytest.mark.needs_compose

SCALE = {"items-service": 3, "auth-service": 2}


def _wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


@pytest.fixture(scope="module")
def compose() -> ComposeStack:
    stack = ComposeStack(
        repo_root(), os.environ["E2E_COMPOSE_PROJECT"], Path(os.environ["E2E_COMPOSE_ENV_FILE"])
    )
    stack.add_source_addresses()
    return stack


def _client(compose: ComposeStack) -> Client:
    return Client(compose.gateway_url(), compose.next_source_address())


def test_services_run_unprivileged_on_a_read_only_root_without_build_tools(
    compose: ComposeStack,
) -> None:
    for service in ("auth-service", "items-service"):
        container = compose.containers(service)[0]
        settings = "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}"
        inspected = subprocess.run(
            ["docker", "inspect", "-f", settings, container.id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert inspected == ["true", "10001:10001"], (service, inspected)
        # The uid, whether /app can be written, and any build tool on PATH (pip is the base
        # image's own).
        script = "id -u; touch /app/x 2>/dev/null && echo writable; command -v uv gcc cc || true"
        probe = subprocess.run(
            ["docker", "exec", container.id, "sh", "-c", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
        assert probe == ["10001"], (service, probe)


def test_login_limit_holds_per_client_address(compose: ComposeStack) -> None:
    """Five logins a minute per client address (the default), counted per real address."""
    with _client(compose) as attacker, _client(compose) as other:
        statuses = [
            attacker.login_response(unique_username(), "Wr0ng!Password").status_code
            for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429], statuses
        assert other.login_response(unique_username(), "Wr0ng!Password").status_code == 401
        print(f"\nlogin limit: {attacker.source_address} {statuses}, {other.source_address} 401")


def test_down_and_up_keeps_users_items_keys_and_refresh_tokens(compose: ComposeStack) -> None:
    with _client(compose) as client:
        user = client.register()
        tokens = client.login(user["username"])
        item = client.create_item(tokens, "kept in a volume")
        kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}

    compose.down()
    compose.up()
    compose.add_source_addresses()

    with _client(compose) as client:
        assert {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]} >= kids
        # The access token from before still verifies: same keys, same issuer.
        assert client.get(f"/items/{item['id']}").json()["title"] == "kept in a volume"
        me = client.get("/users/me", headers=tokens.headers)
        assert me.status_code == 200, me.text
        assert [i["id"] for i in me.json()["items"]] == [item["id"]]
        refreshed = client.refresh_response(tokens.refresh_token)
        assert refreshed.status_code == 200, refreshed.text
        assert client.login(user["username"]).access_token


def test_user_deleted_while_items_service_is_stopped_loses_items_once_it_is_back(
    compose: ComposeStack,
) -> None:
    with _client(compose) as client:
        user = client.register()
        tokens = client.login(user["username"])
        items = [client.create_item(tokens, f"doomed {n}")["id"] for n in range(3)]
        compose.stop("items-service")
        try:
            deleted = client.delete("/users/me", headers=tokens.headers)
            assert deleted.status_code == 200, deleted.text
        finally:
            compose.start("items-service")
        compose.wait_healthy(timeout=120)
        assert _wait_until(
            lambda: all(client.get(f"/items/{i}").status_code == 404 for i in items), 60
        ), "the deletion never reached items-service"


def _user_with_token(compose: ComposeStack) -> Tokens:
    with _client(compose) as client:
        user = client.register()
        return client.login(user["username"])


def test_replicas_share_the_load(compose: ComposeStack) -> None:
    compose.up(SCALE)
    tokens = _user_with_token(compose)
    items = [c for c in compose.containers("items-service") if c.state == "running"]
    auths = [c for c in compose.containers("auth-service") if c.state == "running"]
    assert (len(items), len(auths)) == (3, 2)
    before_items = replica_request_counts(items, "/items/")
    before_auth = replica_request_counts(auths, "/users/me")

    clients = [_client(compose) for _ in range(8)]
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def send(n: int) -> None:
        client = clients[n % len(clients)]
        path = "/items/" if n % 2 else "/users/me"
        status = client.get(path, headers=tokens.headers).status_code
        with lock:
            statuses[status] += 1

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(send, range(3000)))
    for c in clients:
        c.close()

    after_items = replica_request_counts(items, "/items/")
    after_auth = replica_request_counts(auths, "/users/me")
    print(f"\nstatuses of 3,000 requests: {dict(statuses)}")
    assert statuses == {200: 3000}
    for name, before, after in (
        ("items-service", before_items, after_items),
        ("auth-service", before_auth, after_auth),
    ):
        served = {replica: after[replica] - before[replica] for replica in after}
        total = sum(served.values())
        shares = {replica: round(100 * n / total, 1) for replica, n in served.items()}
        print(f"{name}: {total:.0f} requests, per replica % {shares}")
        assert total == 1500
        assert min(shares.values()) >= 20, f"{name} replicas do not share the load: {shares}"


def test_stopping_a_replica_under_load_fails_no_request_beyond_those_in_flight(
    compose: ComposeStack,
) -> None:
    compose.up(SCALE)
    tokens = _user_with_token(compose)
    victim = next(c for c in compose.containers("items-service") if c.state == "running")
    workers = 8
    clients = [_client(compose) for _ in range(workers)]
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + 20

    def load(client: Client) -> None:
        while time.monotonic() < stop_at:
            try:
                status = client.get("/items/", headers=tokens.headers).status_code
            except Exception:
                status = 0  # no answer at all
            with lock:
                statuses[status] += 1

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(load, c) for c in clients]
        time.sleep(4)
        subprocess.run(
            ["docker", "stop", "-t", "15", victim.id], check=True, timeout=60, capture_output=True
        )
        time.sleep(4)
        subprocess.run(["docker", "start", victim.id], check=True, timeout=60, capture_output=True)
        for f in futures:
            f.result()
    for c in clients:
        c.close()

    failed = sum(n for status, n in statuses.items() if status == 0 or status >= 500)
    print(f"\nreplica-stop run, status counts: {dict(statuses)}")
    # At most the requests that were in flight on the stopped replica: one per worker.
    assert failed <= workers, statuses
    assert statuses[200] > 100

    compose.wait_healthy(SCALE, timeout=120)
    rejoined = next(c for c in compose.containers("items-service") if c.id == victim.id)
    before = replica_request_counts([rejoined], "/items/")[rejoined.name]
    with _client(compose) as client:
        for _ in range(150):
            assert client.get("/items/", headers=tokens.headers).status_code == 200
    after = replica_request_counts([rejoined], "/items/")[rejoined.name]
    print(f"rejoined replica served {after - before:.0f} of 150 requests")
    assert after - before > 0, "the restarted replica gets no traffic"
