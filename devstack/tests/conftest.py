"""A real local stack (embedded PostgreSQL and Redis, both services, Traefik) for the tests.

The limits are lowered so the rate-limit tests are quick; bcrypt is at its cheapest cost.
Each test that counts rate-limited requests uses a loopback source address of its own
(127.0.0.x), since the gateway's budget is per client IP.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest
from stack_env import STACK_ENV, ClientFactory

from devstack import Stack, StackConfig

_addresses = (f"127.0.0.{n}" for n in itertools.count(10))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("stack"), env=STACK_ENV)
    with Stack(config) as running:
        yield running


@pytest.fixture
def source_address() -> str:
    """A loopback address no other test used: a fresh client for the rate limiter."""
    return next(_addresses)


@pytest.fixture
def client(stack: Stack, source_address: str) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(local_address=source_address)
    with httpx.Client(base_url=stack.base_url, transport=transport, timeout=10) as c:
        yield c


@pytest.fixture
def client_factory(stack: Stack) -> Iterator[ClientFactory]:
    """Clients with fresh source addresses; ``base_url`` picks another gateway."""
    made: list[httpx.Client] = []

    def make(base_url: str | None = None, source_address: str | None = None) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source_address or next(_addresses))
        c = httpx.Client(base_url=base_url or stack.base_url, transport=transport, timeout=10)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
