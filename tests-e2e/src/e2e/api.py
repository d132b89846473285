"""A thin client of the public API, as the end-to-end suite uses it.

Every :class:`Client` can bind its own loopback source address (127.0.1.x …), so tests act as
different clients of the gateway's per-IP login limit without spoofing any header. With
``E2E_SOURCE_ADDRESSES`` set to a network (``make compose-test``: a block on the compose
network's bridge, see :mod:`e2e.compose`) the addresses come from that network instead.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

STRONG_PASSWORD = "Str0ng!Passw0rd"

_addresses = itertools.count(2)
_lock = threading.Lock()


def next_source_address() -> str:
    """An address no other client of this process has used (127.1.0.4, 127.1.0.5, …).

    From ``E2E_SOURCE_ADDRESSES`` (a network, e.g. ``172.20.248.0/21``) when that is set.
    """
    with _lock:
        n = next(_addresses)
    pool = os.environ.get("E2E_SOURCE_ADDRESSES")
    if pool:
        network = ipaddress.ip_network(pool)
        if n >= network.num_addresses - 1:
            raise RuntimeError(f"E2E_SOURCE_ADDRESSES={pool} has no unused address left")
        return str(network.network_address + n - 1)
    return f"127.1.{(n // 250) % 250}.{n % 250 + 2}"


def unique_username(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class Tokens:
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Client:
    """An httpx client of the gateway bound to one source address."""

    def __init__(self, base_url: str, source_address: str | None = None, timeout: float = 15.0):
        self.source_address = source_address or next_source_address()
        transport = httpx.HTTPTransport(local_address=self.source_address, retries=0)
        self.http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.put(url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.patch(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(url, **kwargs)

    # -- flows -------------------------------------------------------------------------------

    def register(
        self,
        username: str | None = None,
        password: str = STRONG_PASSWORD,
        email: str | None = None,
        full_name: str | None = "E2E User",
    ) -> dict[str, Any]:
        username = username or unique_username()
        body = {
            "username": username,
            "email": email or f"{username}@example.com",
            "password": password,
            "full_name": full_name,
        }
        response = self.post("/auth/register", json=body)
        assert response.status_code == 200, response.text
        user: dict[str, Any] = response.json()
        return user

    def login_response(self, username: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        return self.post("/auth/token", data={"username": username, "password": password})

    def login(self, username: str, password: str = STRONG_PASSWORD) -> Tokens:
        response = self.login_response(username, password)
        assert response.status_code == 200, response.text
        body = response.json()
        return Tokens(body["access_token"], body["refresh_token"])

    def refresh_response(self, refresh_token: str) -> httpx.Response:
        return self.post("/auth/refresh", json={"refresh_token": refresh_token})

    def create_item(self, tokens: Tokens, title: str = "thing", **fields: Any) -> dict[str, Any]:
        response = self.post("/items/", json={"title": title, **fields}, headers=tokens.headers)
        assert response.status_code == 200, response.text
        item: dict[str, Any] = response.json()
        return item


class ClientFactory(Protocol):
    """Makes clients of the suite's gateway (the ``client_factory`` fixture); each one gets
    a source address of its own unless ``source_address`` names one."""

    def __call__(self, source_address: str | None = None) -> Client: ...


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> None:
    """``response`` is an error in the shared envelope with ``status`` (and ``code``)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert {"detail", "code", "status_code", "path", "request_id"} <= body.keys(), body
    assert body["status_code"] == status
    if code is not None:
        assert body["code"] == code, body
