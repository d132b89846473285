"""Benchmark data: scenario data through the public API, growth data bulk-loaded in SQL.

The scenario data (users, their tokens, items) is created the way clients create it, through
the public API: ``POST /auth/register`` and ``POST /auth/token`` straight to auth-service's own
port (the gateway limits both to a few per minute per client IP, as ``make run`` starts it;
the peer harness logs in the same way), ``POST /items/`` through the gateway. The growth
datasets (10k to 1M items) would take hours that way, so they are written straight into the
items database with one ``INSERT ... SELECT generate_series`` each, and the counter shards
that ``X-Total-Count`` reads (items_service.models) are rebuilt from the table in the same
transaction, so the service sees exactly what the API would have produced.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx

from devstack.bench.errors import BenchError
from svckit.db import libpq_url

T = TypeVar("T")

PASSWORD = "Bench!Passw0rd-{n}"  # noqa: S105 - throwaway accounts of a local run


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password: str
    token: str


@dataclass(frozen=True)
class Seeded:
    users: list[User]
    item_ids: list[int]

    @property
    def tokens(self) -> list[str]:
        return [u.token for u in self.users]


async def _bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    slots = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def _post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST, retried while the service answers 503 (e.g. its hashing queue is full: seeding
    at bcrypt cost 12 on a busy machine can outrun it); 2 minutes at most."""
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        response = await client.post(url, **kwargs)
        if response.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(min(float(response.headers.get("retry-after") or 1), 5.0))


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code != 200:
        raise BenchError(
            f"seeding failed: {what} answered {response.status_code}: {response.text[:300]}"
        )
    return response


async def _seed(base_url: str, auth_url: str, run_id: str, users: int, items: int) -> Seeded:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client,
        httpx.AsyncClient(base_url=auth_url, timeout=60, limits=limits) as auth,
    ):

        async def register(n: int) -> tuple[int, str, str]:
            username = f"bench_{run_id}_{n}"
            password = PASSWORD.format(n=n)
            body = {
                "username": username,
                "email": f"{username}@bench.example.org",
                "password": password,
                "full_name": f"Bench user {n}",
            }
            data = _check(await _post(auth, "/auth/register", json=body), "register").json()
            return int(data["id"]), username, password

        async def login(account: tuple[int, str, str]) -> User:
            user_id, username, password = account
            form = {"grant_type": "password", "username": username, "password": password}
            data = _check(await _post(auth, "/auth/token", data=form), "login").json()
            return User(user_id, username, password, data["access_token"])

        # bcrypt at cost 12 dominates; a few at a time keeps the hashing queue short.
        accounts = await _bounded(4, [functools.partial(register, n) for n in range(users)])
        seeded = await _bounded(4, [functools.partial(login, a) for a in accounts])

        async def create(n: int) -> int:
            user = seeded[n % len(seeded)]
            body = {"title": f"Seed item {n}", "description": "Seeded through the gateway"}
            headers = {"Authorization": f"Bearer {user.token}"}
            response = await _post(client, "/items/", json=body, headers=headers)
            return int(_check(response, "create item").json()["id"])

        item_ids = await _bounded(16, [functools.partial(create, n) for n in range(items)])
    return Seeded(seeded, sorted(item_ids))


def seed_through_api(
    base_url: str, *, auth_url: str, run_id: str, users: int, items: int
) -> Seeded:
    """Register ``users`` users and log each in at ``auth_url`` (auth-service itself), then
    create ``items`` items through the gateway at ``base_url``."""
    return asyncio.run(_seed(base_url, auth_url, run_id, users, items))


# --------------------------------------------------------------------------- growth data

_LOAD = """
INSERT INTO items (title, description, owner_id)
SELECT 'Bulk item ' || g,
       'Bulk-loaded for the growth benchmark',
       CASE WHEN g % $2::bigint = 0 THEN $3::bigint
            ELSE ($4::bigint[])[1 + g % cardinality($4::bigint[])] END
FROM generate_series(1, $1::bigint) AS g
"""

# The counters are sharded by ``id % shards``; the launcher imports no service code, so the
# shard count is read from the schema's own range check (``shard < N``).
_SHARD_RANGE = """
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conname = 'ck_item_count_shards_shard_range'
"""

_REBUILD_TOTALS = """
INSERT INTO item_count_shards (shard, count)
SELECT id % $1::int, count(*) FROM items GROUP BY 1
"""

_REBUILD_OWNED = """
INSERT INTO owner_item_counts (owner_id, shard, count)
SELECT owner_id, id % $1::int, count(*) FROM items GROUP BY 1, 2
"""


async def counter_shards(conn: asyncpg.Connection) -> int:
    """How many counter shards items-service's schema has."""
    definition = await conn.fetchval(_SHARD_RANGE)
    match = re.search(r"shard < (\d+)", definition or "")
    if match is None:
        raise BenchError("items DB: no counter-shard range check (is it migrated?)")
    return int(match.group(1))


@dataclass(frozen=True)
class GrowthSet:
    size: int
    heavy_user: int
    heavy_items: int
    # The heavy user owns the items whose id is a multiple of this.
    stride: int
    load_seconds: float


async def _load(url: str, size: int, heavy_user: int, others: Sequence[int]) -> GrowthSet:
    heavy_items = min(10_000, size)
    stride = size // heavy_items
    loop = asyncio.get_running_loop()
    started = loop.time()
    conn = await asyncpg.connect(libpq_url(url), timeout=10)
    try:
        async with conn.transaction():
            await conn.execute(
                "TRUNCATE items, item_count_shards, owner_item_counts RESTART IDENTITY"
            )
            await conn.execute(_LOAD, size, stride, heavy_user, list(others) or [heavy_user])
            shards = await counter_shards(conn)
            await conn.execute(_REBUILD_TOTALS, shards)
            await conn.execute(_REBUILD_OWNED, shards)
        # Outside the transaction: a table that was just written is vacuumed and analysed
        # before it is read, as autovacuum would have done by the time it got that big.
        await conn.execute("VACUUM ANALYZE items, item_count_shards, owner_item_counts")
    finally:
        await conn.close()
    return GrowthSet(size, heavy_user, heavy_items, stride, loop.time() - started)


def load_growth_set(
    items_database_url: str, *, size: int, heavy_user: int, others: Sequence[int]
) -> GrowthSet:
    """Replace every item with ``size`` bulk-loaded ones (ids 1..size).

    ``heavy_user`` owns ``min(10_000, size)`` of them, spread evenly over the id range; the
    rest belong to ``others`` in turn.
    """
    return asyncio.run(_load(items_database_url, size, heavy_user, others))


async def _server_version(url: str) -> str:
    conn = await asyncpg.connect(libpq_url(url), timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def postgres_version(url: str) -> str:
    return asyncio.run(_server_version(url))
