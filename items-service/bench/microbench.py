"""A quick local benchmark of items-service alone (no gateway): uvicorn + wrk + PostgreSQL.

    .tools/bin/uv run python items-service/bench/microbench.py [--workers 1] [--duration 8]

Needs ``wrk`` on PATH and a PostgreSQL server (``--admin-url``, default the local one); it
creates and drops its own database. Verification keys come from a local JWKS server. The
numbers are for comparing changes on one machine; ``make bench`` measures the real stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from items_service.migrations import LOCATION as MIGRATIONS
from svckit import migrations
from svckit.db import libpq_url
from svckit.testing.keys import JWKSServer, SigningKey, access_claims
from svckit.testing.servers import create_database, drop_database, free_port

ISSUER = "http://bench.invalid"
DB_NAME = "items_microbench"


def lua_script(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str, script: Path | None, *, duration: int, connections: int, pids: list[int]
) -> str:
    cpu_before = cpu_seconds(pids)
    args = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    result = subprocess.run([*args, url], capture_output=True, text=True, check=True)  # noqa: S603
    cpu = cpu_seconds(pids) - cpu_before
    requests = re.search(r"(\d+) requests in", result.stdout)
    count = int(requests.group(1)) if requests else 0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    p99 = re.search(r"99%\s+([\d.]+\w+)", result.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    return (
        f"{float(rps.group(1)) if rps else 0:8.0f} req/s  p99 {p99.group(1) if p99 else '?':>8}"
        f"  non-2xx {errors.group(1) if errors else 0}"
        f"  service CPU {1000 * cpu / max(count, 1):.2f} ms/req"
        f"  RSS {[round(rss_mb(p), 1) for p in pids]} MB"
    )


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(p) for p in children] or [master]


async def load_items(url: str, size: int) -> None:
    """Replace every item with ``size`` bulk-loaded ones and rebuild the counters."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        async with conn.transaction():
            await conn.execute(
                "TRUNCATE items, item_count_shards, owner_item_counts RESTART IDENTITY"
            )
            await conn.execute(
                "INSERT INTO items (title, description, owner_id) SELECT 'Bulk ' || g, 'd', "
                "1 + g % 50 FROM generate_series(1, $1::bigint) AS g",
                size,
            )
            await conn.execute(
                "INSERT INTO item_count_shards (shard, count) "
                "SELECT id % 16, count(*) FROM items GROUP BY 1"
            )
            await conn.execute(
                "INSERT INTO owner_item_counts (owner_id, shard, count) "
                "SELECT owner_id, id % 16, count(*) FROM items GROUP BY 1, 2"
            )
        await conn.execute("VACUUM ANALYZE items, item_count_shards, owner_item_counts")
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--growth", action="store_true", help="also time the first page at 10k/1M")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 1

    url = asyncio.run(create_database(args.admin_url, DB_NAME, drop_existing=True))
    asyncio.run(migrations.upgrade(MIGRATIONS, url))
    key = SigningKey.generate()
    jwks = JWKSServer(keys=[key]).start()
    port = free_port()
    env = {
        **os.environ,
        "ITEMS_DATABASE_URL": url,
        "ITEMS_JWKS_URL": jwks.url,
        "ITEMS_ISSUER": ISSUER,
        "ITEMS_EVENTS_ENABLED": "false",
        "ITEMS_ACCESS_LOG": os.environ.get("ITEMS_ACCESS_LOG", "true"),
        "ITEMS_LOG_LEVEL": os.environ.get("ITEMS_LOG_LEVEL", "INFO"),
    }
    uvicorn = Path(sys.executable).parent / "uvicorn"
    server = subprocess.Popen(  # noqa: S603
        [str(uvicorn), "--factory", "items_service.app:create_app", "--port", str(port),
         "--workers", str(args.workers), "--no-access-log", "--no-server-header"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    scratch = Path(tempfile.mkdtemp(prefix="items-bench-"))
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        startup_rss = [round(rss_mb(p), 1) for p in worker_pids(server.pid)]
        print(f"worker RSS after startup (MB): {startup_rss}")
        tokens = [
            key.sign(access_claims(issuer=ISSUER, audience="api", sub=str(u), lifetime=3600))
            for u in range(1, 11)
        ]
        with httpx.Client(base_url=base) as client:
            ids = [
                client.post(
                    "/items/",
                    json={"title": f"seed {n}", "description": "x" * 100},
                    headers={"Authorization": f"Bearer {tokens[n % 10]}"},
                ).json()["id"]
                for n in range(1000)
            ]
        pids = worker_pids(server.pid)
        print(f"idle worker RSS (MB): {[round(rss_mb(p), 1) for p in pids]}")
        auth = f'{{["Authorization"] = "Bearer {tokens[0]}"}}'
        read = lua_script(
            scratch / "read.lua",
            f"local ids = {{{','.join(map(str, ids))}}}\n"
            f"local headers = {auth}\n"
            "request = function()\n"
            '  return wrk.format("GET", "/items/" .. ids[math.random(#ids)], headers)\n'
            "end\n",
        )
        create = lua_script(
            scratch / "create.lua",
            'wrk.method = "POST"\n'
            'wrk.body = \'{"title": "bench item", "description": "created by wrk"}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {tokens[1]}"\n',
        )
        scenarios = [
            ("GET /items/?limit=20", f"{base}/items/?limit=20", None),
            ("GET /items/?limit=100", f"{base}/items/?limit=100", None),
            ("GET /items/{id} bearer", f"{base}/", read),
            ("POST /items/ bearer", f"{base}/items/", create),
        ]
        for name, target, script in scenarios:
            result = run_wrk(
                target, script, duration=args.duration, connections=args.connections, pids=pids
            )
            print(f"{name:<24} {result}", flush=True)
        if args.growth:
            for size in (10_000, 1_000_000):
                asyncio.run(load_items(url, size))
                result = run_wrk(
                    f"{base}/items/?limit=20", None, duration=args.duration, connections=1,
                    pids=pids,
                )  # fmt: skip
                total = httpx.get(f"{base}/items/?limit=1").headers["x-total-count"]
                print(f"first page at {size:>9,} (total {total}): {result}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
        jwks.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        asyncio.run(drop_database(args.admin_url, DB_NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
