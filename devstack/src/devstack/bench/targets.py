"""The performance targets, checked against a run's results.

Every check compares numbers of the same run (medians of its rounds), as asked: the machine
is too noisy for comparisons across runs. The headline targets are ratios to the peer (the
official full-stack template's backend) measured side by side in the same run; the older
absolute req/s figures are shown for information only, never pass/fail.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

P99_LIMIT_MS = 250.0
THROUGHPUT = {"list20": 1000.0, "list100": 800.0, "read": 1200.0, "create": 1000.0}
# Side by side with the peer: ours ÷ peer req/s per scenario (and a lower p99 than the peer's).
RATIO_TARGETS = {"a": 6.0, "b": 5.0, "c": 5.0, "d": 5.0}
# CPU per request at most this share of the peer's, on every read and write scenario.
CPU_SHARE = 0.2
# Logins at -c8 straight to auth-service: this share of cores ÷ bcrypt verify time, 0 non-2xx.
SBS_LOGIN_SHARE = 0.90
LOGIN_SHARE = 0.85
MIXED_READ_SHARE = 0.40
GATEWAY_OVERHEAD_MS = 0.5
RSS_LIMIT_MB = 120.0
GROWTH_FACTOR = 2.0
# "Queue briefly": auth-service's default hashing queue timeout (5 s), plus nothing.
BRIEF_QUEUE_MS = 5000.0


@dataclass(frozen=True)
class Check:
    target: str
    goal: str
    measured: str
    met: bool | None  # None: not measurable in this run, or information only
    info: bool = False  # information only: never pass/fail

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_round(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(r["round"]): r for r in runs}


def _scenario_checks(scenarios: dict[str, Any]) -> list[Check]:
    checks = []
    for key, number in (("list20", "1"), ("list100", "2"), ("read", "3"), ("create", "4")):
        s = scenarios.get(key)
        if s is None:
            continue
        goal = THROUGHPUT[key]
        checks += [
            Check(f"({number}) throughput", f"(was >= {goal:,.0f} req/s)",
                  f"{s['rps']:,.0f} req/s", None, info=True),
            Check(f"({number}) p99", f"<= {P99_LIMIT_MS:.0f} ms", f"{s['p99_ms']:.1f} ms",
                  s["p99_ms"] <= P99_LIMIT_MS),
            Check(f"({number}) errors", "0 errors, 0 non-2xx",
                  f"{s['errors']} errors, {s['non_2xx']} non-2xx",
                  s["errors"] == 0 and s["non_2xx"] == 0),
        ]  # fmt: skip
    return checks


def _login_checks(results: dict[str, Any]) -> list[Check]:
    scenarios = results["scenarios"]
    limit = results["calibration"]["hashing_limit_rps"]
    checks = []
    login = scenarios.get("login")
    if login is not None:
        share = login["ok_rps"] / limit if limit else 0.0
        checks.append(
            Check(
                "(5) logins, -c50",
                f"(was >= {LOGIN_SHARE:.0%} of the hashing limit, {limit:.2f}/s)",
                f"{login['ok_rps']:.2f} logins/s = {share:.0%}",
                None,
                info=True,
            )
        )
    read, mixed = scenarios.get("read"), scenarios.get("mixed_read")
    flood = scenarios.get("mixed_login")
    if read is not None and mixed is not None:
        solo = _per_round(read["runs"])
        ratios = [
            r["rps"] / solo[n]["rps"]
            for n, r in _per_round(mixed["runs"]).items()
            if n in solo and solo[n]["rps"]
        ]
        ratio = statistics.median(ratios) if ratios else 0.0
        checks += [
            Check("(6) reads during a login flood", f">= {MIXED_READ_SHARE:.0%} of solo reads",
                  f"{mixed['rps']:,.0f} req/s = {ratio:.0%} of solo", ratio >= MIXED_READ_SHARE),
            Check("(6) reads never time out", "0 timeouts, 0 errors, 0 non-2xx",
                  f"{mixed['timeouts']} timeouts, {mixed['errors']} errors, "
                  f"{mixed['non_2xx']} non-2xx",
                  mixed["errors"] == 0 and mixed["non_2xx"] == 0),
        ]  # fmt: skip
    if flood is not None:
        statuses = flood["statuses"]
        other = {k: v for k, v in statuses.items() if k not in ("2xx", "503")}
        checks.append(
            Check(
                "(6) excess logins: quick 503 or brief queue, never hang",
                f"every login answered (200 or 503), p99 <= {BRIEF_QUEUE_MS / 1000:g} s, "
                "none timed out",
                f"{statuses.get('2xx', 0)} ok, {statuses.get('503', 0)} 503, "
                f"{flood['timeouts']} timeouts, other {other or 0}; p99 "
                f"{flood['p99_ms'] / 1000:.1f} s, max {flood['max_ms'] / 1000:.1f} s",
                flood["errors"] == 0 and not other and flood["p99_ms"] <= BRIEF_QUEUE_MS,
            )
        )
    return checks


def _latency_checks(scenarios: dict[str, Any]) -> list[Check]:
    gateway, direct = scenarios.get("latency_gateway"), scenarios.get("latency_direct")
    if gateway is None or direct is None:
        return []
    direct_rounds = _per_round(direct["runs"])
    diffs = [
        r["p50_ms"] - direct_rounds[n]["p50_ms"]
        for n, r in _per_round(gateway["runs"]).items()
        if n in direct_rounds
    ]
    diff = statistics.median(diffs) if diffs else math.inf
    return [
        Check(
            "(7) gateway cost, one connection",
            f"p50 via gateway <= direct + {GATEWAY_OVERHEAD_MS} ms",
            f"{gateway['p50_ms']:.2f} vs {direct['p50_ms']:.2f} ms: +{diff:.2f} ms",
            diff <= GATEWAY_OVERHEAD_MS,
        )
    ]


def _memory_checks(results: dict[str, Any]) -> list[Check]:
    peak: dict[str, float] = {}
    snapshots = [run["rss_mb"] for s in results["scenarios"].values() for run in s["runs"]]
    snapshots += [m for m in results["memory"].values() if m]
    for snapshot in snapshots:
        for service, values in snapshot.items():
            peak[service] = max([peak.get(service, 0.0), *values])
    # Information only: the memory target is the whole stack's against the peer's (side by
    # side); how it splits over processes is make run's sizing's business.
    return [
        Check(
            f"RSS per worker, {service}",
            f"(was <= {RSS_LIMIT_MB:.0f} MB after each run)",
            f"max {value:.0f} MB",
            None,
            info=True,
        )
        for service, value in sorted(peak.items())
    ]


def jwks_bound(elapsed_s: float, max_age_s: int) -> int:
    """Fetches one worker may make in ``elapsed_s``: the first, then one per cache lifetime."""
    return 1 + math.ceil(elapsed_s / max_age_s) if max_age_s else 1


def _jwks_checks(results: dict[str, Any]) -> list[Check]:
    jwks = results["jwks"]
    per_worker = jwks["fetches_per_worker"]
    if not per_worker:
        return [Check("JWKS fetches", "one per cache lifetime", "not exported", None)]
    bound = jwks_bound(jwks["elapsed_s"], jwks["max_age_s"])
    requests = sum(
        s["requests"]
        for key, s in results["scenarios"].items()
        if key not in ("login", "mixed_login")
    )
    worst = max(per_worker.values())
    return [
        Check(
            "JWKS fetches by items-service",
            f"<= 1 per worker per {jwks['max_age_s']} s cache lifetime (<= {bound} per worker "
            f"in {jwks['elapsed_s']:.0f} s), 0 per request",
            f"{sum(per_worker.values())} in all ({worst} max per worker) for {requests:,} requests",
            worst <= bound,
        )
    ]


def _growth_checks(growth: list[dict[str, Any]]) -> list[Check]:
    if len(growth) < 1:
        return []
    smallest, largest = growth[0], growth[-1]
    first_small = smallest["paths"]["first_page"]["c1"]["p50_ms"]
    first_large = largest["paths"]["first_page"]["c1"]["p50_ms"]
    deep_large = largest["paths"]["keyset_deep"]["c1"]["p50_ms"]
    checks = []
    if largest is not smallest:
        checks.append(
            Check(
                f"Growth: first page at {largest['size']:,} items",
                f"<= {GROWTH_FACTOR:g}x its time at {smallest['size']:,}",
                f"{first_large:.2f} vs {first_small:.2f} ms = {first_large / first_small:.2f}x",
                first_large <= GROWTH_FACTOR * first_small,
            )
        )
    checks.append(
        Check(
            f"Growth: keyset deep page at {largest['size']:,} items",
            f"<= {GROWTH_FACTOR:g}x the first page",
            f"{deep_large:.2f} vs {first_large:.2f} ms = {deep_large / first_large:.2f}x",
            deep_large <= GROWTH_FACTOR * first_large,
        )
    )
    return checks


_SBS_NAMES = {"a": "list 100", "b": "list 20", "c": "get by id", "d": "create"}


def _side(results: dict[str, Any], scenario: str, system: str) -> dict[str, Any] | None:
    summary = (results.get("side_by_side") or {}).get("summary") or {}
    found: dict[str, Any] | None = summary.get(scenario, {}).get(system)
    return found


def side_by_side_checks(results: dict[str, Any]) -> list[Check]:
    """The targets of the side-by-side run; those that need the peer are n/a without it."""
    checks = []
    for scenario, goal in RATIO_TARGETS.items():
        name = f"({scenario}) {_SBS_NAMES[scenario]} vs peer"
        ours, peer = _side(results, scenario, "ours"), _side(results, scenario, "peer")
        if ours is None or peer is None or not peer["rps"]:
            checks.append(Check(name, f">= {goal:g}x the peer's req/s, lower p99", "n/a", None))
            continue
        ratio = ours["rps"] / peer["rps"]
        checks.append(
            Check(
                name,
                f">= {goal:g}x the peer's req/s, lower p99",
                f"{ratio:.2f}x ({ours['rps']:,.0f} vs {peer['rps']:,.0f} req/s); p99 "
                f"{ours['p99_ms']:,.1f} vs {peer['p99_ms']:,.1f} ms",
                ratio >= goal and ours["p99_ms"] < peer["p99_ms"],
            )
        )
    for scenario in RATIO_TARGETS:
        name = f"({scenario}) CPU per request vs peer"
        ours, peer = _side(results, scenario, "ours"), _side(results, scenario, "peer")
        if ours is None or peer is None or not peer["cpu_ms_per_request"]:
            checks.append(Check(name, f"<= {CPU_SHARE:g} x the peer's", "n/a", None))
            continue
        share = ours["cpu_ms_per_request"] / peer["cpu_ms_per_request"]
        checks.append(
            Check(
                name,
                f"<= {CPU_SHARE:g} x the peer's",
                f"{ours['cpu_ms_per_request']:.2f} vs {peer['cpu_ms_per_request']:.2f} ms "
                f"= {share:.3f}",
                share <= CPU_SHARE,
            )
        )
    login = _side(results, "e", "ours")
    limit = results.get("calibration", {}).get("hashing_limit_rps") or 0.0
    login_goal = f">= {SBS_LOGIN_SHARE:.0%} of the bcrypt limit ({limit:.2f}/s), 0 non-2xx"
    if login is None or not limit:
        checks.append(Check("(e) logins, -c8, straight to auth-service", login_goal, "n/a", None))
    else:
        share = login["ok_rps"] / limit
        checks.append(
            Check(
                "(e) logins, -c8, straight to auth-service",
                login_goal,
                f"{login['ok_rps']:.2f} logins/s = {share:.0%}, {login['non_2xx']} non-2xx, "
                f"{login['socket_errors']} socket errors",
                share >= SBS_LOGIN_SHARE and login["non_2xx"] == 0,
            )
        )
    rss = (results.get("side_by_side") or {}).get("rss_mb") or {}
    if "ours" in rss and "peer" in rss:
        ours_mb, peer_mb = rss["ours"]["mb"], rss["peer"]["mb"]
        checks.append(
            Check(
                "RSS of the whole stack vs peer",
                "<= the peer's (fastapi + workers + its PostgreSQL)",
                f"{ours_mb:,.0f} vs {peer_mb:,.0f} MiB",
                ours_mb <= peer_mb,
            )
        )
    else:
        checks.append(Check("RSS of the whole stack vs peer", "<= the peer's", "n/a", None))
    return checks


def evaluate(results: dict[str, Any]) -> list[Check]:
    scenarios = results["scenarios"]
    return [
        *side_by_side_checks(results),
        *_scenario_checks(scenarios),
        *_login_checks(results),
        *_latency_checks(scenarios),
        *_memory_checks(results),
        *_jwks_checks(results),
        *_growth_checks(results["growth"]),
    ]
