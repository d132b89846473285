"""Measurements taken around the load: worker memory, JWKS fetches, bcrypt cost, the machine."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

# ----------------------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (none when it is gone)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def worker_pids(master_pid: int) -> list[int]:
    """The uvicorn worker processes under ``master_pid`` (the master itself with 1 worker).

    Workers are the ``multiprocessing`` spawn children; the resource tracker is not one.
    """
    workers = [pid for pid in children(master_pid) if "spawn_main" in _cmdline(pid)]
    return sorted(workers) or [master_pid]


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def rss_total_mb(pids: Iterable[int]) -> tuple[int, float]:
    """(processes, MiB): the sum of ``VmRSS`` of the distinct ``pids`` still alive."""
    values = [v for v in (rss_mb(pid) for pid in set(pids)) if v is not None]
    return len(values), sum(values)


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (``VmRSS``), ``None`` if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


# ----------------------------------------------------------------------------- JWKS fetches

_JWKS_SAMPLE = re.compile(
    r'^items_jwks_(fetches|fetch_failures)_total\{[^}]*pid="(\d+)"[^}]*\}\s+([0-9.eE+]+)$',
    re.MULTILINE,
)


def parse_jwks_metrics(text: str) -> dict[int, dict[str, int]]:
    """``{pid: {"fetches": n, "fetch_failures": m}}`` from items-service's ``/metrics``."""
    out: dict[int, dict[str, int]] = {}
    for kind, pid, value in _JWKS_SAMPLE.findall(text):
        out.setdefault(int(pid), {})[kind] = int(float(value))
    return out


def jwks_fetches(items_url: str, pids: Iterable[int], *, attempts: int = 30) -> dict[int, int]:
    """JWKS fetches per items-service worker, read from each worker's own ``/metrics``.

    Every worker keeps its own registry and the workers share one listening socket, so
    scrapes go out in parallel on fresh connections until each worker has answered once.
    Workers that never answered are missing from the result.
    """
    wanted = set(pids)
    seen: dict[int, int] = {}

    def scrape(_: int) -> str:
        try:
            return httpx.get(f"{items_url}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""

    with ThreadPoolExecutor(4) as pool:
        for _ in range(attempts):
            for text in pool.map(scrape, range(4)):
                for pid, values in parse_jwks_metrics(text).items():
                    seen[pid] = values.get("fetches", 0)
            if wanted <= seen.keys():
                break
    return {pid: n for pid, n in seen.items() if pid in wanted}


# ----------------------------------------------------------------------------- CPU

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time (user + system) used so far by ``pids``; processes that are gone count 0."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may contain spaces
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out = [pid]
    for child in children(pid):
        out += descendants(child)
    return out


def busy_cores(seconds: float) -> float:
    """How many cores the whole machine kept busy during the next ``seconds``."""
    busy0, total0 = machine_cpu_seconds()
    time.sleep(seconds)
    busy1, total1 = machine_cpu_seconds()
    wall = (total1 - total0) / (os.cpu_count() or 1)
    return (busy1 - busy0) / wall if wall else 0.0


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all CPUs together."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / _TICKS, sum(fields) / _TICKS


def wait_idle(
    pids: Iterable[int], *, threshold: float = 0.1, timeout: float = 20.0, interval: float = 0.5
) -> float:
    """Wait until ``pids`` together use less than ``threshold`` cores, e.g. until logins that
    a finished load run left queued have drained. Returns the seconds waited; gives up after
    ``timeout``. Other tenants of the machine are not waited for: they are noise either way.
    """
    watched = list(pids)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(watched)
        time.sleep(interval)
        if (cpu_seconds(watched) - before) / interval < threshold:
            break
    return time.monotonic() - started


# ----------------------------------------------------------------------------- bcrypt


# Run in a process of its own, like the services: the launcher imports none of their code.
# It says when it is ready and waits for the word, so that several start hashing together.
_BCRYPT_PROBE = """
import statistics, sys, time
from auth_service.passwords import build_context
rounds, samples = int(sys.argv[1]), int(sys.argv[2])
context = build_context(rounds)
password = "Calibrate!Passw0rd"  # hashed and thrown away
hashed = context.hash(password)
print("ready", flush=True)
sys.stdin.readline()
times = []
for _ in range(samples):
    started = time.perf_counter()
    context.verify(password, hashed)
    times.append(time.perf_counter() - started)
print(statistics.median(times), flush=True)
"""


def bcrypt_verify_seconds(rounds: int, samples: int = 5, parallel: int = 1) -> float:
    """Median wall time of one password verification at ``rounds``, as auth-service does it
    (its own hashing context), with ``parallel`` verifications under way at once, each in a
    child process of the workspace's Python. The hashing limit of a machine is every core
    hashing: one verification alone can run faster than each of several together."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _BCRYPT_PROBE, str(rounds), str(samples)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(max(1, parallel))
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the bcrypt probe did not start")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        medians = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            if child.returncode != 0:
                raise RuntimeError(f"the bcrypt probe failed ({child.returncode})")
            medians.append(float(out.strip()))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return statistics.median(medians)


# ----------------------------------------------------------------------------- machine


def _first_line(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def machine_info(*, traefik: Path, wrk: str, postgres: str) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    mem = re.search(r"^MemTotal:\s+(\d+)", meminfo, re.MULTILINE)
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    traefik_version = _first_line([str(traefik), "version"]).replace("Version:", "").strip()
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "sched_autogroup": autogroup.read_text().strip() == "1" if autogroup.exists() else None,
        "python": sys.version.split()[0],
        "postgres": postgres,
        "traefik": traefik_version,
        "wrk": wrk,
        "packages": {
            name: _version(name)
            for name in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg")
        },
    }
