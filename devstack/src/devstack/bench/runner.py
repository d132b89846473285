"""The benchmark run: start the stack, seed it, drive the scenarios with wrk, grow the data.

Scenarios run in rounds: every round runs each scenario once, in the same order, and the
report takes the median of the rounds. Interleaving keeps slow drifts of a noisy machine
(another tenant, a warming cache) from landing on one scenario only, so paths measured in
one run can be compared with each other.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.bench import probes, sidebyside
from devstack.bench.errors import BenchError
from devstack.bench.launcher import LaunchedStack, stop_leftover
from devstack.bench.options import BenchOptions
from devstack.bench.peer import Peer
from devstack.bench.seed import Seeded, load_growth_set, postgres_version, seed_through_api
from devstack.bench.wrk import Workload, Wrk, WrkResult, ensure_wrk, wrk_version
from devstack.stack import AUTH, ITEMS
from svckit.testing.servers import free_port

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Scenario:
    key: str
    number: str
    title: str
    via: str  # "gateway" or "direct"
    workload: Workload
    connections: int
    kind: str = "throughput"  # or "latency" (one connection)


@dataclass
class Recorder:
    """Raw results, per scenario key: one entry per round."""

    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, key: str, entry: dict[str, Any]) -> None:
        self.runs.setdefault(key, []).append(entry)


class BenchRun:
    def __init__(
        self, options: BenchOptions, stack: LaunchedStack, wrk: Wrk, report: Reporter
    ) -> None:
        self.options = options
        self.stack = stack
        self.wrk = wrk
        self.say = report
        self.recorder = Recorder()
        self.started = time.monotonic()

    # ------------------------------------------------------------------ probes

    def workers(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for service in (AUTH, ITEMS):
            servers = self.stack.servers(service)
            if not servers:
                raise BenchError(f"{service} is not running")
            out[service] = sorted({w for server in servers for w in probes.worker_pids(server)})
        return out

    def rss(self) -> dict[str, list[float]]:
        return {
            service: [round(probes.rss_mb(pid) or 0.0, 1) for pid in pids]
            for service, pids in self.workers().items()
        }

    def settle(self) -> None:
        """Wait until the stack's own processes are idle again (bounded)."""
        pids = [pid for pids in self.workers().values() for pid in pids]
        gateway = self.stack.pid("gateway")
        probes.wait_idle(
            [*pids, *([gateway] if gateway else [])], timeout=self.options.settle_timeout
        )

    def jwks_fetches(self) -> dict[int, int]:
        return probes.jwks_fetches(self.stack.items_url, self.workers()[ITEMS])

    def _base(self, via: str) -> str:
        return self.stack.base_url if via == "gateway" else self.stack.items_url

    # ------------------------------------------------------------------ scenarios

    def scenarios(self, seeded: Seeded) -> list[Scenario]:
        c = self.options.connections
        read = Workload("get_item", "/items/", ids=seeded.item_ids, tokens=seeded.tokens)
        return [
            Scenario("list20", "1", "GET /items/?limit=20, anonymous", "gateway",
                     Workload("get", "/items/?limit=20"), c),
            Scenario("list100", "2", "GET /items/?limit=100, anonymous", "gateway",
                     Workload("get", "/items/?limit=100"), c),
            Scenario("read", "3", "GET /items/{id}, bearer token", "gateway", read, c),
            Scenario("create", "4", "POST /items/, bearer token", "gateway",
                     Workload("create_item", "/items/", tokens=seeded.tokens), c),
            Scenario("read_direct", "7", "GET /items/{id}, bearer token, items-service direct",
                     "direct", read, c),
            Scenario("latency_gateway", "7", "GET /items/{id}, one connection, via the gateway",
                     "gateway", read, 1, kind="latency"),
            Scenario("latency_direct", "7", "GET /items/{id}, one connection, items-service "
                     "direct", "direct", read, 1, kind="latency"),
        ]  # fmt: skip

    def login_workload(self, seeded: Seeded) -> Workload:
        return Workload(
            "login", "/auth/token", users=[(u.username, u.password) for u in seeded.users]
        )

    def components(self) -> dict[str, list[int]]:
        """Process ids of each part of the stack, every process `make run` starts, for CPU
        accounting and memory: the `devstack run` child ("launcher", with the local SMTP
        server's thread) and its descendants, and PostgreSQL's (its backends come and go).
        The bench process is none of them."""
        return self.stack.components()

    def healthy(self) -> bool:
        try:
            url = f"{self.stack.base_url}/.well-known/jwks.json"
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    # ------------------------------------------------------------------ side by side

    def side_by_side(self, seeded: Seeded, peer: Peer | None) -> dict[str, Any]:
        """Scenarios (a) to (e) against the peer, alternating; this stack alone without one."""
        sbs = self.options.side_by_side
        user = seeded.users[0]
        ours = sidebyside.Endpoint(
            base=self.stack.base_url,
            login_base=self.stack.auth_url,
            token=user.token,
            item_id=str(seeded.item_ids[0]),
            user=user.username,
            password=user.password,
        )
        shape = {
            "items": sbs.items,
            "connections": sbs.connections,
            "login_connections": sbs.login_connections,
        }
        systems = []
        if peer is not None:
            token = peer.token()
            name, password = peer.credentials()
            endpoint = sidebyside.Endpoint(
                peer.base_url, peer.base_url, token, peer.first_item(token), name, password
            )
            systems.append(
                sidebyside.System(
                    "peer", sidebyside.peer_requests(endpoint, **shape), peer.components,
                    peer.healthy,
                )
            )  # fmt: skip
        systems.append(
            sidebyside.System(
                "ours", sidebyside.ours_requests(ours, **shape), self.components, self.healthy
            )
        )
        self.settle()
        side = sidebyside.run_side_by_side(self.wrk, systems, sbs, self.say)
        rss: dict[str, Any] = {}
        for system in systems:
            parts = system.components()
            count, total = probes.rss_total_mb(pid for pids in parts.values() for pid in pids)
            rss[system.name] = {
                "processes": count,
                "mb": round(total, 1),
                "by_component": {
                    name: round(probes.rss_total_mb(pids)[1], 1) for name, pids in parts.items()
                },
                "pids": parts,
            }
        side["rss_mb"] = rss
        return side

    def _measure(
        self, key: str, run: Callable[[], dict[str, WrkResult]], round_no: int
    ) -> dict[str, WrkResult]:
        self.settle()
        jwks_before = self.jwks_fetches()
        components = self.components()
        cpu_before = {name: probes.cpu_seconds(pids) for name, pids in components.items()}
        busy_before, total_before = probes.machine_cpu_seconds()
        results = run()
        busy_after, total_after = probes.machine_cpu_seconds()
        # Postgres backends that ended during the run are missed: a small undercount.
        components = self.components()
        cpu = {
            name: probes.cpu_seconds(pids) - cpu_before.get(name, 0.0)
            for name, pids in components.items()
        }
        jwks_after = self.jwks_fetches()
        rss = self.rss()
        fetched = sum(jwks_after.get(pid, 0) - jwks_before.get(pid, 0) for pid in jwks_after)
        wall = (total_after - total_before) / (os.cpu_count() or 1)
        stack_cpu = sum(max(v, 0.0) for v in cpu.values())
        machine = {
            "wall_s": round(wall, 2),
            "machine_busy_cores": round((busy_after - busy_before) / wall, 2) if wall else 0.0,
            "stack_cores": round(stack_cpu / wall, 2) if wall else 0.0,
        }
        requests = sum(r.requests for r in results.values())
        cpu_us = {
            name: round(max(v, 0.0) / requests * 1e6) if requests else 0 for name, v in cpu.items()
        }
        for name, result in results.items():
            self.recorder.add(
                name,
                {
                    "round": round_no,
                    **result.as_dict(),
                    "rss_mb": rss,
                    "jwks_fetches": fetched,
                    # Both wrk runs of scenario 6 share the stack: its CPU is per request of both.
                    "cpu_us_per_request": cpu_us,
                    "cpu": machine,
                },
            )
            self.say(
                f"  {name:<16} {result.rps:8.1f} req/s  p50 {result.latency_ms['p50']:7.2f} ms"
                f"  p99 {result.latency_ms['p99']:8.2f} ms  errors {result.errors}"
                f"  non-2xx {result.non_2xx}  stack {machine['stack_cores']:.2f} of "
                f"{machine['machine_busy_cores']:.2f} busy cores"
            )
        return results

    def _wrk(
        self,
        scenario: Scenario,
        duration: float,
        *,
        name: str,
        workload: Workload | None = None,
    ) -> WrkResult:
        return self.wrk.run(
            self._base(scenario.via),
            workload or scenario.workload,
            name=name,
            connections=scenario.connections,
            duration=duration,
            timeout=self.options.timeout,
        )

    def run_rounds(self, seeded: Seeded) -> None:
        options = self.options
        scenarios = self.scenarios(seeded)
        login = self.login_workload(seeded)
        read = next(s for s in scenarios if s.key == "read")
        for round_no in range(1, options.repeats + 1):
            self.say(f"round {round_no}/{options.repeats}")
            for scenario in scenarios:
                duration = (
                    options.latency_duration if scenario.kind == "latency" else options.duration
                )
                warmup = None
                if options.warmup:
                    warmup = self._wrk(scenario, options.warmup, name=f"{scenario.key}-warmup")

                def solo(
                    s: Scenario = scenario, d: float = duration, w: WrkResult | None = warmup
                ) -> dict[str, WrkResult]:
                    if w is None:
                        return {s.key: self._wrk(s, d, name=s.key)}
                    # After a warm-up that counted every status, wrk's own count will do
                    # (without the response() hook, which costs wrk a fifth more CPU per
                    # request; wrk.py).
                    lean = self._wrk(s, d, name=s.key, workload=s.workload.lean())
                    return {s.key: lean.after_warmup(w)}

                self._measure(scenario.key, solo, round_no)

            def logins() -> dict[str, WrkResult]:
                return {"login": self._login(login, options.login_duration, name="login")}

            self._measure("login", logins, round_no)

            def mixed() -> dict[str, WrkResult]:
                flood = self.wrk.start(
                    self.stack.auth_url,
                    login,
                    name="mixed-login",
                    connections=options.connections,
                    duration=options.login_duration,
                    timeout=options.login_timeout,
                )
                reads = self._wrk(read, options.login_duration, name="mixed-read")
                return {
                    "mixed_read": reads,
                    "mixed_login": flood.result(
                        timeout=options.login_duration + options.login_timeout + 30
                    ),
                }

            self._measure("mixed", mixed, round_no)

    def _login(self, workload: Workload, duration: float, *, name: str) -> WrkResult:
        return self.wrk.run(
            self.stack.auth_url,
            workload,
            name=name,
            connections=self.options.connections,
            duration=duration,
            timeout=self.options.login_timeout,
        )

    # ------------------------------------------------------------------ growth

    def run_growth(self, seeded: Seeded) -> list[dict[str, Any]]:
        options = self.options
        heavy = seeded.users[0]
        others = [u.id for u in seeded.users[1:]]
        database_url = self.stack.items_database_url
        assert database_url is not None
        out = []
        for size in options.growth_sizes:
            self.say(f"growth: loading {size:,} items")
            self.settle()
            loaded = load_growth_set(database_url, size=size, heavy_user=heavy.id, others=others)
            total = httpx.get(f"{self.stack.base_url}/items/", params={"limit": 1}, timeout=30)
            if total.headers.get("x-total-count") != str(size):
                raise BenchError(
                    f"after loading {size} items X-Total-Count is "
                    f"{total.headers.get('x-total-count')!r}: the counters are inconsistent"
                )
            deep = int(size * 0.9)
            heavy_deep = loaded.stride * int(loaded.heavy_items * 0.9)
            bearer = [heavy.token]
            paths = {
                "first_page": Workload("get", "/items/?limit=20"),
                "keyset_deep": Workload("get", f"/items/?after={deep}&limit=20"),
                "offset_deep": Workload("get", f"/items/?skip={deep}&limit=20"),
                "my_items_first": Workload("get", "/items/my-items?limit=20", tokens=bearer),
                "my_items_keyset_deep": Workload(
                    "get", f"/items/my-items?after={heavy_deep}&limit=20", tokens=bearer
                ),
            }
            runs: dict[str, dict[str, list[WrkResult]]] = {
                k: {"c1": [], f"c{options.connections}": []} for k in paths
            }
            for _ in range(options.growth_repeats):
                for key, workload in paths.items():
                    for connections in (1, options.connections):
                        self.settle()
                        runs[key][f"c{connections}"].append(
                            self.wrk.run(
                                self.stack.base_url,
                                workload,
                                name=f"growth-{size}-{key}-c{connections}",
                                connections=connections,
                                duration=options.growth_duration,
                                timeout=15.0,
                            )
                        )
            entry: dict[str, Any] = {
                "size": size,
                "heavy_user_items": loaded.heavy_items,
                "load_seconds": round(loaded.load_seconds, 1),
                "paths": {
                    key: {
                        "path": workload.path,
                        **{mode: summarise_results(results) for mode, results in runs[key].items()},
                    }
                    for key, workload in paths.items()
                },
            }
            for key, data in entry["paths"].items():
                self.say(
                    f"  {size:>9,} {key:<22} c1 p50 {data['c1']['p50_ms']:8.2f} ms   "
                    f"c{options.connections} {data[f'c{options.connections}']['rps']:8.1f} req/s"
                )
            out.append(entry)
        return out


def _median(values: Iterable[float]) -> float:
    data = list(values)
    return round(statistics.median(data), 3) if data else 0.0


def summarise_results(results: Sequence[WrkResult]) -> dict[str, Any]:
    return summarise([r.as_dict() for r in results])


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the rounds for rates and latencies; sums for everything that went wrong."""
    return {
        "rounds": len(runs),
        "rps": _median(r["rps"] for r in runs),
        "ok_rps": _median(r["ok_rps"] for r in runs),
        "p50_ms": _median(r["p50_ms"] for r in runs),
        "p90_ms": _median(r["p90_ms"] for r in runs),
        "p99_ms": _median(r["p99_ms"] for r in runs),
        "max_ms": max((r["max_ms"] for r in runs), default=0.0),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "timeouts": sum(r["timeouts"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "statuses": _sum_statuses(r["statuses"] for r in runs),
        **_cpu_summary(runs),
    }


def _cpu_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in runs if "cpu" in r]
    if not measured:
        return {}
    names = sorted({name for r in measured for name in r["cpu_us_per_request"]})
    return {
        "cpu_us_per_request": {
            name: _median(r["cpu_us_per_request"].get(name, 0) for r in measured) for name in names
        },
        "stack_cores": _median(r["cpu"]["stack_cores"] for r in measured),
        "machine_busy_cores": _median(r["cpu"]["machine_busy_cores"] for r in measured),
    }


def _sum_statuses(items: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for statuses in items:
        for k, v in statuses.items():
            total[k] = total.get(k, 0) + v
    return total


_MARKER = ".devstack-bench"
_SECRET_SUFFIXES = ("PASSWORD", "PASSPHRASE", "SECRET", "TOKEN")


def _fresh_data_dir(path: Path) -> None:
    """Empty the data folder (a fresh database and logs for every run), but only one that
    is empty or was made by an earlier run: ``--data-dir`` must not wipe anything else."""
    if path.exists() and any(path.iterdir()):
        if not (path / _MARKER).exists():
            raise BenchError(
                f"{path} is not empty and was not made by `devstack bench`; "
                "choose another --data-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / _MARKER).touch()


def run_bench(options: BenchOptions, report: Reporter = print) -> dict[str, Any]:
    """Run the whole benchmark and return its results (see report.py for the shape)."""
    wrk_binary = ensure_wrk()
    peer_work = options.data_dir / "peer"
    peer = (
        Peer(
            run_sh=options.peer_harness,
            template_git=options.template_git,
            work=peer_work,
            port=free_port(),
            pgport=free_port(),
            workers=options.side_by_side.peer_workers,
            items=options.side_by_side.items,
            report=report,
        )
        if options.template_git is not None
        else None
    )
    if peer is not None and (
        (peer_work / "server.pid").exists() or (peer_work / "pgdata" / "postmaster.pid").exists()
    ):
        # A peer left behind by an earlier, killed run: stopped before its folder goes.
        peer.touched = True
        peer.stop()
    # Likewise a stack left behind by an earlier, killed run, before its folder goes.
    stop_leftover(options.data_dir / "stack", report)
    _fresh_data_dir(options.data_dir)
    wrk = Wrk(wrk_binary, options.data_dir / "wrk")
    env = options.stack_env()
    # As `make run` starts it: `devstack run` in a child process with the launcher's own
    # defaults (workers, ...); only ports, folder and `env` are the bench's own.
    stack = LaunchedStack(
        options.data_dir / "stack",
        log_path=options.data_dir / "launcher.log",
        env=env,
        report=lambda m: report(f"  {m}"),
    )
    wall_started = time.time()
    try:
        if peer is not None:
            # Built before this stack starts: the build competes with nothing measured.
            peer.step("setup")
        sizing = stack.sizing
        # The cores the stack was sized for (a container's or taskset's share): the ones
        # auth-service's hashing threads run on.
        cores = sizing.cores
        report(
            f"starting the stack in {stack.data_dir} as `make run` does and sizes it: "
            f"{sizing.describe()}"
        )
        with stack:
            run = BenchRun(options, stack, wrk, report)
            report(
                f"seeding {options.users} users (straight to auth-service) and "
                f"{options.items} items (through the gateway)"
            )
            seed_started = time.monotonic()
            seeded = seed_through_api(
                stack.base_url,
                auth_url=stack.auth_url,
                run_id=uuid.uuid4().hex[:6],
                users=options.users,
                items=options.items,
            )
            seed_seconds = time.monotonic() - seed_started
            effective = stack.env()
            bcrypt_rounds = int(effective.get("AUTH_BCRYPT_ROUNDS") or 12)
            if peer is not None:
                # Chosen now that this stack's ports are taken (setup bound only PGPORT).
                peer.port = free_port()
                peer.step("start")
                peer.step("seed")
            report("side by side" + (" with the peer" if peer else " (no peer: ours alone)"))
            side_started = time.monotonic()
            side = run.side_by_side(seeded, peer)
            side["elapsed_s"] = round(time.monotonic() - side_started, 1)
            if peer is not None:
                peer.stop()
            # The hashing limit, taken now: next to the side-by-side logins just run and the
            # rounds' logins to come (the machine's speed drifts over a run), with every core
            # hashing as auth-service's threads do under a login load.
            verify_seconds = probes.bcrypt_verify_seconds(bcrypt_rounds, parallel=cores)
            report(
                f"bcrypt verify (cost {bcrypt_rounds}, {cores} at once): "
                f"{verify_seconds * 1000:.0f} ms"
            )
            run.run_rounds(seeded)
            rss_after_scenarios = run.rss()
            jwks_after_scenarios = run.jwks_fetches()
            scenario_elapsed = time.monotonic() - run.started
            growth = run.run_growth(seeded) if options.growth_sizes else []
            jwks_final = run.jwks_fetches()
            rss_after_growth = run.rss()
            elapsed = time.monotonic() - run.started
            assert stack.items_database_url is not None
            machine = probes.machine_info(
                traefik=stack.config.bin_dir / "traefik",
                wrk=wrk_version(wrk_binary),
                postgres=postgres_version(stack.items_database_url),
            )
    finally:
        if peer is not None:
            peer.stop()
    run_elapsed = time.time() - wall_started
    max_age = int(effective.get("AUTH_JWKS_MAX_AGE_SECONDS") or 300)
    results: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall_started)),
        "mode": "smoke" if options.smoke else "full",
        # The whole run, peer build and stack start included (budget: about 25 minutes).
        "elapsed_s": round(run_elapsed, 1),
        "machine": machine,
        "config": {
            # As devstack.sizing sized `make run` on this machine.
            "workers": {"auth-service": sizing.auth_workers, "items-service": sizing.items_workers},
            "sizing": dataclasses.asdict(sizing),
            # The stack's launcher: `make run`'s command, in a child process of the bench.
            "launcher": {
                "argv": stack.argv,
                "pid": stack.pid_of_launcher,
                "log": str(stack.log_path),
            },
            # The only settings of the bench's own (everything else is `make run`'s).
            "bench_env": {k: v for k, v in env.items() if not k.endswith(_SECRET_SUFFIXES)},
            "connections": options.connections,
            "duration_s": options.duration,
            "login_duration_s": options.login_duration,
            "latency_duration_s": options.latency_duration,
            "warmup_s": options.warmup,
            "rounds": options.repeats,
            "wrk_timeout_s": options.timeout,
            "wrk_login_timeout_s": options.login_timeout,
            "users": options.users,
            "seed_items": options.items,
            "seed_seconds": round(seed_seconds, 1),
            "growth_sizes": list(options.growth_sizes),
            "growth_duration_s": options.growth_duration,
            "growth_rounds": options.growth_repeats,
            "env": {
                k: effective.get(k, "")
                for k in sorted(
                    {
                        *env,
                        "AUTH_BCRYPT_ROUNDS",
                        "AUTH_ENVIRONMENT",
                        "GATEWAY_LOGIN_RATE_LIMIT",
                        "GATEWAY_REGISTER_RATE_LIMIT",
                        "AUTH_HASHING_CONCURRENCY",
                        "AUTH_HASHING_QUEUE_TIMEOUT_SECONDS",
                        "AUTH_JWKS_MAX_AGE_SECONDS",
                        "AUTH_LOG_LEVEL",
                        "ITEMS_LOG_LEVEL",
                        "AUTH_ACCESS_LOG",
                        "ITEMS_ACCESS_LOG",
                        "ITEMS_DB_POOL_SIZE",
                        "AUTH_DB_POOL_SIZE",
                    }
                )
                if not k.endswith(_SECRET_SUFFIXES)
            },
        },
        "calibration": {
            "cores": cores,
            "bcrypt_rounds": bcrypt_rounds,
            "bcrypt_verify_ms": round(verify_seconds * 1000, 1),
            "hashing_limit_rps": round(cores / verify_seconds, 2),
        },
        "scenarios": {
            key: {"runs": runs, **summarise(runs)} for key, runs in run.recorder.runs.items()
        },
        "memory": {"after_scenarios_mb": rss_after_scenarios, "after_growth_mb": rss_after_growth},
        "jwks": {
            "max_age_s": max_age,
            "elapsed_s": round(elapsed, 1),
            "scenario_elapsed_s": round(scenario_elapsed, 1),
            "fetches_per_worker_after_scenarios": {
                str(k): v for k, v in jwks_after_scenarios.items()
            },
            "fetches_per_worker": {str(k): v for k, v in jwks_final.items()},
        },
        "growth": growth,
        "side_by_side": {
            **side,
            "config": {
                **dataclasses.asdict(options.side_by_side),
                "peer": None
                if peer is None
                else {
                    "harness": str(options.peer_harness),
                    "template_git": str(options.template_git),
                    "port": peer.port,
                    "pgport": peer.pgport,
                },
            },
        },
    }  # fmt: skip
    return results
