"""How long, how hard and where a benchmark run goes: the full run and the CI smoke run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from devstack.config import repo_root

FULL_GROWTH_SIZES = (10_000, 100_000, 1_000_000)

# The stack runs exactly as `make run` starts it (StackConfig's defaults: workers, hashing
# threads, pool sizes, the gateway's login/register limits, development environment). The
# only difference: tokens seeded at the start must outlive the whole run (the default access
# token lives 30 minutes); the token's lifetime changes nothing that is measured.
BENCH_ENV = {"AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200"}

# The peer harness (fastapi/full-stack-fastapi-template's backend): run.sh, relative to the
# repository root; env PEER_HARNESS overrides it.
DEFAULT_PEER_HARNESS = Path("../shared/peer-bench/peer-fullstack-template/run.sh")


def default_peer_harness() -> Path:
    configured = os.environ.get("PEER_HARNESS", "").strip()
    path = Path(configured) if configured else DEFAULT_PEER_HARNESS
    return path if path.is_absolute() else (repo_root() / path).resolve()


@dataclass(frozen=True)
class SideBySide:
    """The side-by-side runs against the peer (and this stack alone without one)."""

    threads: int = 2
    connections: int = 50
    login_connections: int = 8
    warmup: float = 5.0
    duration: float = 15.0
    rounds: int = 2
    login_duration: float = 20.0
    login_rounds: int = 1
    timeout: float = 30.0
    # After the warm-up, until the loaded system is idle again (at most): logins the warm-up
    # left queued would otherwise eat into the measured run.
    settle_timeout: float = 20.0
    # Items the peer's bench user owns (run.sh seed), and that (a) lists.
    items: int = 100
    peer_workers: int = 2


@dataclass(frozen=True)
class BenchOptions:
    """One benchmark run. Durations in seconds."""

    smoke: bool = False
    connections: int = 50
    duration: float = 10.0
    warmup: float = 2.0
    repeats: int = 2
    # Logins answer in seconds under a flood: long enough runs to reach the steady state.
    login_duration: float = 30.0
    latency_duration: float = 10.0
    growth_sizes: tuple[int, ...] = FULL_GROWTH_SIZES
    growth_duration: float = 4.0
    growth_repeats: int = 2
    users: int = 20
    items: int = 2000
    # wrk's per-request timeout; a request without an answer by then counts as an error.
    timeout: float = 5.0
    login_timeout: float = 15.0
    # Before each measurement: how long to wait at most for the stack to become idle.
    settle_timeout: float = 20.0
    data_dir: Path = field(default_factory=lambda: repo_root() / ".data" / "bench")
    output_dir: Path = field(default_factory=lambda: repo_root() / "docs")
    env: tuple[tuple[str, str], ...] = ()
    side_by_side: SideBySide = field(default_factory=SideBySide)
    # A git dir of fastapi/full-stack-fastapi-template: also measure it, side by side.
    template_git: Path | None = None
    peer_harness: Path = field(default_factory=default_peer_harness)

    @classmethod
    def full(cls, **overrides: object) -> BenchOptions:
        return replace(cls(), **overrides)  # type: ignore[arg-type]

    @classmethod
    def smoke_run(cls, **overrides: object) -> BenchOptions:
        """Seconds per scenario, one round, a 1k growth set: proves the bench still works."""
        data_dir = repo_root() / ".data" / "bench-smoke"
        smoke = cls(
            smoke=True,
            duration=1.0,
            warmup=0.0,
            repeats=1,
            login_duration=3.0,
            settle_timeout=1.0,
            latency_duration=1.0,
            growth_sizes=(1_000,),
            growth_duration=1.0,
            growth_repeats=1,
            users=4,
            items=100,
            data_dir=data_dir,
            output_dir=data_dir,
            side_by_side=SideBySide(
                warmup=1.0,
                duration=2.0,
                rounds=1,
                login_duration=5.0,
                timeout=10.0,
                settle_timeout=5.0,
            ),
        )
        return replace(smoke, **overrides)  # type: ignore[arg-type]

    @property
    def json_name(self) -> str:
        return "benchmarks-smoke.json" if self.smoke else "benchmarks.json"

    @property
    def markdown_name(self) -> str:
        return "benchmarks-smoke.md" if self.smoke else "benchmarks.md"

    @property
    def charts_dir(self) -> Path:
        """Where the charts go: ``docs/benchmarks/`` (the smoke run: its own folder)."""
        return self.output_dir / ("benchmarks-smoke" if self.smoke else "benchmarks")

    def stack_env(self) -> dict[str, str]:
        return {**BENCH_ENV, **dict(self.env)}
