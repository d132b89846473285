"""The benchmark, for real: ``devstack bench --smoke`` starts the stack, drives it with wrk
and writes its report. The numbers are not judged here (CI machines are noisy); the shape of
the report is, and so is that the read scenarios answered every request with a 2xx."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.bench.report import ANALYSIS_END, ANALYSIS_START, existing_analysis, write_markdown
from devstack.bench.targets import evaluate, jwks_bound
from devstack.bench.wrk import Workload, parse_result
from devstack.cli import main

READS = ("list20", "list100", "read", "read_direct", "latency_gateway", "latency_direct")
SCENARIOS = (*READS, "create", "login", "mixed_read", "mixed_login")
GROWTH_PATHS = ("first_page", "keyset_deep", "offset_deep", "my_items_first")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, float]:
    root = tmp_path_factory.mktemp("bench")
    out = root / "out"
    started = time.monotonic()
    code = main(["bench", "--smoke", "--data-dir", str(root / "data"), "--output-dir", str(out)])
    elapsed = time.monotonic() - started
    assert code == 0
    return json.loads((out / "benchmarks-smoke.json").read_text()), out, elapsed


def test_smoke_run_is_short(smoke: tuple[dict[str, Any], Path, float]) -> None:
    _, _, elapsed = smoke
    assert elapsed < 150, f"the smoke bench took {elapsed:.0f} s"


def test_smoke_report_has_every_scenario(smoke: tuple[dict[str, Any], Path, float]) -> None:
    results, _, _ = smoke
    assert results["mode"] == "smoke"
    assert set(SCENARIOS) <= set(results["scenarios"])
    for key in SCENARIOS:
        scenario = results["scenarios"][key]
        assert scenario["rounds"] == len(scenario["runs"]) == 1
        for field in ("rps", "ok_rps", "p50_ms", "p99_ms", "errors", "non_2xx", "statuses"):
            assert field in scenario, f"{key} lacks {field}"
        run = scenario["runs"][0]
        for service in ("auth-service", "items-service"):
            workers = run["rss_mb"][service]
            assert len(workers) == results["config"]["workers_per_service"]
            assert all(10 < mb < 2000 for mb in workers), workers
        assert run["jwks_fetches"] >= 0
        assert 0 < run["cpu"]["stack_cores"] <= run["cpu"]["machine_busy_cores"] + 0.2
    for key in READS:
        per_request = results["scenarios"][key]["cpu_us_per_request"]
        assert per_request["items-service"] > 0, per_request
    scenarios = results["scenarios"]
    # The gateway's share shows up where requests go through it, not on the direct path.
    via_gateway = scenarios["read"]["cpu_us_per_request"]["traefik"]
    assert via_gateway > 5 * scenarios["read_direct"]["cpu_us_per_request"]["traefik"]


def test_read_scenarios_answer_every_request(smoke: tuple[dict[str, Any], Path, float]) -> None:
    results, _, _ = smoke
    for key in READS:
        scenario = results["scenarios"][key]
        assert scenario["requests"] > 0, key
        assert scenario["errors"] == 0, (key, scenario)
        assert scenario["non_2xx"] == 0, (key, scenario["statuses"])
        assert scenario["rps"] > 0
        assert 0 < scenario["p50_ms"] <= scenario["p99_ms"]
    mixed = results["scenarios"]["mixed_read"]
    assert mixed["errors"] == 0
    assert mixed["non_2xx"] == 0


def test_logins_are_answered_with_200_or_503(smoke: tuple[dict[str, Any], Path, float]) -> None:
    results, _, _ = smoke
    for key in ("login", "mixed_login"):
        statuses = results["scenarios"][key]["statuses"]
        assert set(statuses) <= {"2xx", "503"}, statuses
    assert results["calibration"]["bcrypt_verify_ms"] > 50  # cost 12, not the test cost 4
    assert results["config"]["env"]["AUTH_BCRYPT_ROUNDS"] == "12"


def test_growth_and_jwks_are_reported(smoke: tuple[dict[str, Any], Path, float]) -> None:
    results, _, _ = smoke
    (growth,) = results["growth"]
    assert growth["size"] == 1000
    assert growth["heavy_user_items"] == 1000
    for key in GROWTH_PATHS:
        for mode in ("c1", "c50"):
            data = growth["paths"][key][mode]
            assert data["requests"] > 0
            assert data["errors"] == data["non_2xx"] == 0, (key, mode, data)
    jwks = results["jwks"]
    per_worker = jwks["fetches_per_worker"]
    assert len(per_worker) == results["config"]["workers_per_service"]
    # Each worker fetched at start-up, and not once per request.
    bound = jwks_bound(jwks["elapsed_s"], jwks["max_age_s"])
    assert all(1 <= n <= bound for n in per_worker.values()), per_worker


def test_targets_and_markdown(smoke: tuple[dict[str, Any], Path, float]) -> None:
    results, out, _ = smoke
    names = [t["target"] for t in results["targets"]]
    assert "(1) throughput" in names
    assert "(5) logins" in names
    assert "(7) gateway cost, one connection" in names
    assert [c.as_dict() for c in evaluate(results)] == results["targets"]
    markdown = (out / "benchmarks-smoke.md").read_text()
    for heading in ("## Targets", "## Scenarios", "## Growth", "## Method", "## Machine"):
        assert heading in markdown


def test_markdown_keeps_the_analysis(
    smoke: tuple[dict[str, Any], Path, float], tmp_path: Path
) -> None:
    results, _, _ = smoke
    path = tmp_path / "benchmarks.md"
    assert existing_analysis(path) == "No analysis written yet."
    write_markdown(results, path)
    text = path.read_text()
    path.write_text(text.replace("No analysis written yet.", "Where the time goes: bcrypt."))
    write_markdown(results, path)
    rewritten = path.read_text()
    assert rewritten.count(ANALYSIS_START) == rewritten.count(ANALYSIS_END) == 1
    assert "Where the time goes: bcrypt." in rewritten
    assert "No analysis written yet." not in rewritten


def test_wrk_script_and_result_parsing() -> None:
    script = Workload("login", "/auth/token", users=[("ann", 'p"w&1')]).script()
    assert 'usernames = {"ann"}' in script
    assert 'passwords = {"p\\"w&1"}' in script  # a Lua string literal, quote escaped
    assert "function response(" in script or "response = function(" in script
    output = (
        "Running 1s test\nBENCH_RESULT "
        '{"requests":10,"duration_us":2000000,"bytes":1,"connect_errors":1,"read_errors":0,'
        '"write_errors":0,"status_errors":0,"timeouts":2,"latency_us":{"min":100,"mean":1.0,'
        '"max":900,"stdev":1.0,"p50":500,"p90":800,"p99":900,"p999":900},'
        '"statuses":{"s2xx":7,"s503":3}}\n'
    )
    result = parse_result(output)
    assert result.rps == 5.0
    assert result.ok_rps == 3.5
    assert result.errors == 3
    assert result.non_2xx == 3
    assert result.latency_ms["p50"] == 0.5
