"""Faults: Redis or PostgreSQL gone, under use, and back again.

* Redis stopped: the gateway's login limiter fails closed with Traefik's 500 (not
  configurable in Traefik) and answers fast; auth-service's per-account throttle fails closed
  with 503 (never unlimited guesses, never a login without the throttle); routes that need no
  Redis keep working; everything recovers when Redis returns, without restarts.
* PostgreSQL stopped and restarted under a write load: the services answer 503 (never
  another 5xx, never a hang), recover on their own (same processes), and every write that was
  acknowledged with a 2xx is still there afterwards.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from devstack.stack import Stack
from e2e.api import Client, Tokens, assert_envelope, unique_username

SERVICES = ("auth-service", "items-service")


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.needs_stack
@pytest.mark.needs_embedded_redis
def test_redis_down_login_fails_closed_everywhere_then_recovers(
    live_stack: Stack, client_factory: Callable[[], Client]
) -> None:
    client = client_factory()
    user = client.register()
    tokens = client.login(user["username"])
    pids = {name: live_stack.pid(name) for name in SERVICES}
    direct = httpx.Client(base_url=live_stack.auth_url, trust_env=False, timeout=10)
    form = {"username": user["username"], "password": "Str0ng!Passw0rd"}

    live_stack.stop_component("redis")
    try:
        # Gateway: Traefik's limiter cannot count, so it refuses (500), and quickly.
        for attempt in range(3):
            started = time.perf_counter()
            response = client_factory().post("/auth/token", data=form)
            elapsed = time.perf_counter() - started
            assert response.status_code == 500, (attempt, response.text)
            assert elapsed < 1.5, (attempt, elapsed)
        # auth-service itself (reached directly, as a second gateway replica on a healthy
        # Redis would): its per-account throttle cannot count either, so no password is
        # checked at all, right or wrong: 503, never 200, never 401.
        for password in (form["password"], "Wr0ng!Password"):
            started = time.perf_counter()
            response = direct.post("/auth/token", data={**form, "password": password})
            elapsed = time.perf_counter() - started
            assert_envelope(response, 503)
            assert "retry-after" in response.headers
            assert elapsed < 2.0, elapsed
        # What needs no Redis keeps working: token verification, reads, writes.
        assert client.get("/auth/me", headers=tokens.headers).status_code == 200
        assert client.get("/items/", params={"limit": 1}).status_code == 200
        created = client.post("/items/", json={"title": "no redis"}, headers=tokens.headers)
        assert created.status_code == 200
    finally:
        live_stack.start_component("redis")

    _wait_for(
        lambda: client_factory().post("/auth/token", data=form).status_code == 200,
        30,
        "gateway logins after Redis came back",
    )
    assert direct.post("/auth/token", data=form).status_code == 200
    direct.close()
    # The throttle counts again: five failures lock the account.
    statuses = [
        client_factory().login_response(user["username"], f"Gu3ss!{n}").status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429], statuses
    assert {name: live_stack.pid(name) for name in SERVICES} == pids  # nothing restarted


@dataclass
class Load:
    """Writers creating items and readers of auth-service, until stopped; records answers."""

    client: Client
    tokens: Tokens
    acknowledged: list[int] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _record(self, kind: str, status: int) -> None:
        with self._lock:
            self.statuses[(kind, status)] += 1

    def _writer(self, name: str) -> None:
        n = 0
        while not self.stop.is_set() and n < 5000:
            n += 1
            try:
                response = self.client.post(
                    "/items/", json={"title": f"{name}-{n}"}, headers=self.tokens.headers
                )
            except httpx.HTTPError as exc:  # a hang or a dropped connection is a failure
                self.errors.append(f"write: {type(exc).__name__}")
                continue
            self._record("write", response.status_code)
            if response.status_code == 200:
                with self._lock:
                    self.acknowledged.append(response.json()["id"])
            time.sleep(0.01)

    def _reader(self) -> None:
        n = 0
        while not self.stop.is_set() and n < 5000:
            n += 1
            try:
                response = self.client.get("/auth/me", headers=self.tokens.headers)
            except httpx.HTTPError as exc:
                self.errors.append(f"read: {type(exc).__name__}")
                continue
            self._record("auth", response.status_code)
            time.sleep(0.02)

    def start(self, writers: int = 3) -> None:
        targets = [lambda i=i: self._writer(f"w{i}") for i in range(writers)] + [self._reader]
        self._threads = [threading.Thread(target=t, daemon=True) for t in targets]
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def count(self, kind: str, status: int) -> int:
        with self._lock:
            return self.statuses[(kind, status)]


def _owned_item_ids(client: Client, tokens: Tokens) -> tuple[set[int], int]:
    ids: set[int] = set()
    total = -1
    skip = 0
    while True:
        response = client.get(
            "/items/my-items", params={"skip": skip, "limit": 100}, headers=tokens.headers
        )
        assert response.status_code == 200, response.text
        total = int(response.headers["x-total-count"])
        page = [item["id"] for item in response.json()]
        ids.update(page)
        skip += len(page)
        if not page or skip >= total:
            return ids, total


@pytest.mark.needs_stack
@pytest.mark.needs_embedded_postgres
def test_database_restart_under_load_loses_no_acknowledged_write(
    live_stack: Stack, client_factory: Callable[[], Client]
) -> None:
    client = client_factory()
    user = client.register(username=unique_username("load"))
    tokens = client.login(user["username"])
    pids = {name: live_stack.pid(name) for name in SERVICES}
    load = Load(client, tokens)
    load.start()
    try:
        _wait_for(lambda: load.count("write", 200) >= 20, 20, "writes before the outage")
        live_stack.stop_component("postgres")
        try:
            _wait_for(
                lambda: load.count("write", 503) >= 5 and load.count("auth", 503) >= 3,
                20,
                "503s from both services while PostgreSQL is down",
            )
            time.sleep(1.0)
        finally:
            live_stack.start_component("postgres")
        written_before = load.count("write", 200)
        read_before = load.count("auth", 200)
        _wait_for(
            lambda: (
                load.count("write", 200) > written_before + 10
                and load.count("auth", 200) > read_before + 5
            ),
            45,
            "both services to recover",
        )
    finally:
        load.finish()

    assert not load.errors, load.errors[:10]
    unexpected = {key: n for key, n in load.statuses.items() if key[1] not in (200, 503)}
    assert not unexpected, (unexpected, load.statuses)
    assert {name: live_stack.pid(name) for name in SERVICES} == pids  # recovered by themselves
    # Every write acknowledged with a 2xx survived the outage.
    stored, total = _owned_item_ids(client, tokens)
    acknowledged = set(load.acknowledged)
    assert len(acknowledged) == len(load.acknowledged)  # no id handed out twice
    assert acknowledged <= stored, sorted(acknowledged - stored)[:20]
    assert total == len(stored)
    print(
        f"{len(acknowledged)} writes acknowledged, {len(stored)} stored;",
        dict(sorted(load.statuses.items())),
    )
