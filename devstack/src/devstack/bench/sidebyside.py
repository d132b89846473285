"""This stack against the peer (the official full-stack template's backend), in one run.

The requests are those of the peer harness's ``side-by-side.sh`` (its ``req_for()``):

=====================  ==========================================  ===============================
scenario               peer                                        ours
=====================  ==========================================  ===============================
(a) list 100 items     GET /api/v1/items/ + bearer (its 100)       GET /items/?limit=100
(b) list 20 items      GET /api/v1/items/?limit=20 + bearer        GET /items/?limit=20
(c) get one item       GET /api/v1/items/{id} + bearer             GET /items/{id} + bearer
(d) create item        POST /api/v1/items/ + bearer, JSON          POST /items/ + bearer, same JSON
(e) login, -c8         POST /api/v1/login/access-token (form)      POST /auth/token (form), straight
                                                                   to auth-service's own port
=====================  ==========================================  ===============================

(a) to (d) go through our gateway. Both systems are driven by the same generated wrk script
(kind ``request``), ``-t2 -c50``, a warm-up, then the measured run; per scenario the order is
peer, ours, peer, ours. Each run records the CPU time of the loaded system's processes (per
component), wrk's own, and what the rest of the machine used meanwhile (noise).
"""

from __future__ import annotations

import os
import resource
import statistics
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from devstack.bench import probes
from devstack.bench.errors import BenchError
from devstack.bench.options import SideBySide
from devstack.bench.wrk import Workload, Wrk, WrkResult

Reporter = Callable[[str], None]

SCENARIOS = ("a", "b", "c", "d", "e")
READ_WRITE = ("a", "b", "c", "d")
TITLES = {
    "a": "(a) list 100 items",
    "b": "(b) list 20 items",
    "c": "(c) get one item",
    "d": "(d) create item",
    "e": "(e) login, -c8",
}
SYSTEMS = ("peer", "ours")
CREATE_BODY = '{"title":"wrk item","description":"created by side-by-side.sh"}'
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom one system is loaded."""

    base: str  # (a) to (d)
    login_base: str  # (e)
    token: str
    item_id: str
    user: str
    password: str


@dataclass(frozen=True)
class Request:
    """One scenario's request for one system, sent as is by every wrk connection."""

    base: str
    method: str
    path: str
    connections: int
    body: str = ""
    content_type: str = ""
    token: str = ""
    expect_items: int | None = None

    def workload(self) -> Workload:
        return Workload(
            "request",
            self.path,
            tokens=(self.token,) if self.token else (),
            method=self.method,
            body=self.body,
            content_type=self.content_type,
        )

    def describe(self) -> str:
        """For the report: never the token, never a password."""
        parts = [f"{self.method} {self.base}{self.path}"]
        if self.token:
            parts.append("+ bearer")
        if self.body:
            parts.append("form (username, password)" if self.content_type == FORM else "JSON")
        return " ".join(parts)


def _login_form(user: str, password: str) -> str:
    return urllib.parse.urlencode({"username": user, "password": password})


def peer_requests(
    peer: Endpoint, *, items: int, connections: int, login_connections: int
) -> dict[str, Request]:
    """side-by-side.sh's ``req_for peer``."""
    base, token = peer.base, peer.token
    return {
        "a": Request(base, "GET", "/api/v1/items/", connections, token=token, expect_items=items),
        "b": Request(base, "GET", "/api/v1/items/?limit=20", connections, token=token,
                     expect_items=20),
        "c": Request(base, "GET", f"/api/v1/items/{peer.item_id}", connections, token=token),
        "d": Request(base, "POST", "/api/v1/items/", connections, CREATE_BODY, JSON, token),
        "e": Request(peer.login_base, "POST", "/api/v1/login/access-token", login_connections,
                     _login_form(peer.user, peer.password), FORM),
    }  # fmt: skip


def ours_requests(
    ours: Endpoint, *, items: int, connections: int, login_connections: int
) -> dict[str, Request]:
    """side-by-side.sh's ``req_for ours``: the gateway, logins straight to auth-service."""
    base, token = ours.base, ours.token
    return {
        "a": Request(base, "GET", f"/items/?limit={items}", connections, expect_items=items),
        "b": Request(base, "GET", "/items/?limit=20", connections, expect_items=20),
        "c": Request(base, "GET", f"/items/{ours.item_id}", connections, token=token),
        "d": Request(base, "POST", "/items/", connections, CREATE_BODY, JSON, token),
        "e": Request(ours.login_base, "POST", "/auth/token", login_connections,
                     _login_form(ours.user, ours.password), FORM),
    }  # fmt: skip


@dataclass(frozen=True)
class System:
    name: str
    requests: Mapping[str, Request]
    components: Callable[[], dict[str, list[int]]]
    healthy: Callable[[], bool]


# --------------------------------------------------------------------------- running


def preflight(system: System, scenario: str) -> dict[str, Any]:
    """The exact request once: status, body size, and the item count of the list scenarios."""
    request = system.requests[scenario]
    headers = {"Authorization": f"Bearer {request.token}"} if request.token else {}
    if request.body:
        headers["Content-Type"] = request.content_type
    response = httpx.request(
        request.method,
        request.base + request.path,
        content=request.body.encode() or None,
        headers=headers,
        timeout=60,
    )
    count: int | None = None
    if request.expect_items is not None and response.status_code == 200:
        data = response.json()
        count = len(data["data"] if isinstance(data, dict) else data)
    ok = 200 <= response.status_code < 300 and count == request.expect_items
    return {
        "scenario": scenario,
        "system": system.name,
        "request": request.describe(),
        "status": response.status_code,
        "bytes": len(response.content),
        "items": count,
        "ok": ok,
    }


def _cpu(components: Mapping[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far, per component and process."""
    return {
        name: {pid: probes.cpu_seconds([pid]) for pid in pids} for name, pids in components.items()
    }


def _cpu_used(
    before: Mapping[str, dict[int, float]], after: Mapping[str, dict[int, float]]
) -> dict[str, float]:
    """What each component used between the two samples, process by process: one that started
    in between (a PostgreSQL backend) counts from its start, and one that ended (an overflow
    connection closed, an autovacuum worker done) takes nothing away from the others."""
    return {
        name: sum(
            max(seconds - before.get(name, {}).get(pid, 0.0), 0.0)
            for pid, seconds in per_pid.items()
        )
        for name, per_pid in after.items()
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    wrk: Wrk,
    system: System,
    scenario: str,
    round_no: int,
    options: SideBySide,
) -> dict[str, Any]:
    """One warm-up and one measured wrk run, with the CPU of everything around it."""
    request = system.requests[scenario]
    duration = options.login_duration if scenario == "e" else options.duration
    name = f"sbs-{scenario}-{system.name}-r{round_no}"

    workload = request.workload()

    def run(seconds: float, label: str, sent: Workload) -> WrkResult:
        return wrk.run(
            request.base,
            sent,
            name=label,
            connections=request.connections,
            duration=seconds,
            threads=options.threads,
            timeout=options.timeout,
        )

    warmup = None
    if options.warmup:
        # The warm-up counts every status; the measured run leaves that to wrk (see wrk.py),
        # except for logins, whose rate is low and whose 503s are told apart.
        warmup = run(options.warmup, f"{name}-warmup", workload)
        pids = [pid for pids in system.components().values() for pid in pids]
        probes.wait_idle(pids, timeout=options.settle_timeout)
    measured = workload.lean() if warmup is not None and scenario != "e" else workload
    cpu_before = _cpu(system.components())
    wrk_before = _children_cpu()
    busy_before, total_before = probes.machine_cpu_seconds()
    result = run(duration, name, measured)
    if warmup is not None:
        result = result.after_warmup(warmup)
    busy_after, total_after = probes.machine_cpu_seconds()
    wrk_cpu = _children_cpu() - wrk_before
    cpu = _cpu_used(cpu_before, _cpu(system.components()))
    wall = (total_after - total_before) / (os.cpu_count() or 1)
    busy = busy_after - busy_before
    system_cpu = sum(cpu.values())
    requests = result.requests
    return {
        "scenario": scenario,
        "system": system.name,
        "round": round_no,
        "connections": request.connections,
        **result.as_dict(),
        "cpu_ms_per_request": round(system_cpu / requests * 1000, 3) if requests else 0.0,
        "cpu_ms_per_request_by_component": {
            name: round(seconds / requests * 1000, 3) if requests else 0.0
            for name, seconds in sorted(cpu.items())
        },
        "wall_s": round(wall, 2),
        "system_cores": round(system_cpu / wall, 2) if wall else 0.0,
        "wrk_cores": round(wrk_cpu / wall, 2) if wall else 0.0,
        "machine_busy_cores": round(busy / wall, 2) if wall else 0.0,
        # The rest of the machine (the other system idling, other tenants): the noise.
        "other_cores": round(max(busy - system_cpu - wrk_cpu, 0.0) / wall, 2) if wall else 0.0,
    }


def run_side_by_side(
    wrk: Wrk,
    systems: Sequence[System],
    options: SideBySide,
    say: Reporter,
) -> dict[str, Any]:
    """Every scenario, every round, the systems alternating (peer first)."""
    runs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    idle_before = probes.busy_cores(3.0)
    say(f"side by side: machine busy with the systems idle: {idle_before:.2f} cores")
    for scenario in SCENARIOS:
        rounds = options.login_rounds if scenario == "e" else options.rounds
        for system in systems:
            check = preflight(system, scenario)
            checks.append(check)
            if not check["ok"]:
                say(f"  WARNING preflight {scenario} {system.name}: {check}")
        for round_no in range(1, rounds + 1):
            for system in systems:
                if not system.healthy():
                    raise BenchError(
                        f"{system.name} stopped answering during the side-by-side runs"
                    )
                entry = measure(wrk, system, scenario, round_no, options)
                runs.append(entry)
                say(
                    f"  {TITLES[scenario]:<20} {system.name:<4} r{round_no} "
                    f"{entry['rps']:8.1f} req/s  p99 {entry['p99_ms']:8.1f} ms  "
                    f"non-2xx {entry['non_2xx']}  errors {entry['socket_errors']}  "
                    f"{entry['cpu_ms_per_request']:.2f} CPU ms/req  "
                    f"other {entry['other_cores']:.2f} cores"
                )
    idle_after = probes.busy_cores(3.0)
    return {
        "systems": [s.name for s in systems],
        "requests": {s.name: {k: r.describe() for k, r in s.requests.items()} for s in systems},
        "noise": {
            "idle_busy_cores_before": round(idle_before, 2),
            "idle_busy_cores_after": round(idle_after, 2),
        },
        "preflight": checks,
        "runs": runs,
        "summary": summarise_runs(runs),
    }


# --------------------------------------------------------------------------- summaries


def _median(values: Iterable[float]) -> float:
    data = list(values)
    return round(statistics.median(data), 3) if data else 0.0


def summarise_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{scenario: {system: medians over the rounds}}``; errors are summed."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in SCENARIOS:
        for system in SYSTEMS:
            mine = [r for r in runs if r["scenario"] == scenario and r["system"] == system]
            if not mine:
                continue
            components = sorted({c for r in mine for c in r["cpu_ms_per_request_by_component"]})
            out.setdefault(scenario, {})[system] = {
                "rounds": len(mine),
                "rps": _median(r["rps"] for r in mine),
                "ok_rps": _median(r["ok_rps"] for r in mine),
                "p50_ms": _median(r["p50_ms"] for r in mine),
                "p90_ms": _median(r["p90_ms"] for r in mine),
                "p99_ms": _median(r["p99_ms"] for r in mine),
                "max_ms": max(r["max_ms"] for r in mine),
                "non_2xx": sum(r["non_2xx"] for r in mine),
                "socket_errors": sum(r["socket_errors"] for r in mine),
                "timeouts": sum(r["timeouts"] for r in mine),
                "cpu_ms_per_request": _median(r["cpu_ms_per_request"] for r in mine),
                "cpu_ms_per_request_by_component": {
                    c: _median(r["cpu_ms_per_request_by_component"].get(c, 0.0) for r in mine)
                    for c in components
                },
                "other_cores": _median(r["other_cores"] for r in mine),
                "other_cores_max": max(r["other_cores"] for r in mine),
            }
    return out


def ratios(side: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per scenario both systems were measured in: ours ÷ peer (req/s, CPU per request)."""
    rows = []
    for scenario in SCENARIOS:
        both = side.get("summary", {}).get(scenario, {})
        if "ours" not in both or "peer" not in both:
            continue
        ours, peer = both["ours"], both["peer"]
        rows.append(
            {
                "scenario": scenario,
                "title": TITLES[scenario],
                "ours_rps": ours["rps"],
                "peer_rps": peer["rps"],
                "rps_ratio": round(ours["rps"] / peer["rps"], 2) if peer["rps"] else None,
                "ours_p99_ms": ours["p99_ms"],
                "peer_p99_ms": peer["p99_ms"],
                "ours_cpu_ms": ours["cpu_ms_per_request"],
                "peer_cpu_ms": peer["cpu_ms_per_request"],
                "cpu_ratio": (
                    round(ours["cpu_ms_per_request"] / peer["cpu_ms_per_request"], 3)
                    if peer["cpu_ms_per_request"]
                    else None
                ),
            }
        )
    return rows


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def ratio_table(results: Mapping[str, Any]) -> list[str]:
    """The Markdown ratio table (also printed at the end of a run); empty without a peer."""
    side = results.get("side_by_side") or {}
    rows = ratios(side)
    if not rows:
        return []
    lines = [
        "| scenario | ours req/s | peer req/s | ours/peer | p99 ours | p99 peer "
        "| CPU ms/req ours | CPU ms/req peer | CPU ours/peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['title']} | {row['ours_rps']:,.1f} | {row['peer_rps']:,.1f} "
            f"| **{_fmt(row['rps_ratio'], '.2f', 'x')}** | {row['ours_p99_ms']:,.1f} ms "
            f"| {row['peer_p99_ms']:,.1f} ms | {row['ours_cpu_ms']:.2f} | {row['peer_cpu_ms']:.2f} "
            f"| {_fmt(row['cpu_ratio'], '.3f')} |"
        )
    rss = side.get("rss_mb") or {}
    if "ours" in rss and "peer" in rss:
        lines.append(
            f"| RSS, whole system | {rss['ours']['mb']:,.0f} MiB ({rss['ours']['processes']} "
            f"processes) | {rss['peer']['mb']:,.0f} MiB ({rss['peer']['processes']} processes) "
            f"| {rss['ours']['mb'] / rss['peer']['mb']:.2f}x | | | | | |"
        )
    return lines
