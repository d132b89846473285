"""How long, how hard and where a benchmark run goes: the full run and the CI smoke run."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from devstack.config import repo_root

FULL_GROWTH_SIZES = (10_000, 100_000, 1_000_000)

# The stack's environment for a run: production settings (private keys encrypted at rest with
# a throwaway passphrase) except the gateway's limits on login/register/refresh, which the
# scenarios (and seeding) would otherwise hit at once. 0 does not lift a limit with Traefik's
# Redis store, a very large budget does.
BENCH_ENV = {
    "AUTH_ENVIRONMENT": "production",
    "ITEMS_ENVIRONMENT": "production",
    "AUTH_BCRYPT_ROUNDS": "12",
    "GATEWAY_LOGIN_RATE_LIMIT": "1000000",
    "GATEWAY_LOGIN_RATE_PERIOD": "1s",
    "GATEWAY_REGISTER_RATE_LIMIT": "1000000",
    "GATEWAY_REGISTER_RATE_PERIOD": "1s",
    "GATEWAY_REFRESH_RATE_LIMIT": "1000000",
    "GATEWAY_REFRESH_RATE_PERIOD": "1s",
    # Tokens seeded at the start must outlive the whole run.
    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
}


@dataclass(frozen=True)
class BenchOptions:
    """One benchmark run. Durations in seconds."""

    smoke: bool = False
    workers: int = 2
    connections: int = 50
    duration: float = 10.0
    warmup: float = 2.0
    repeats: int = 3
    # Logins answer in seconds under a flood: long enough runs to reach the steady state.
    login_duration: float = 30.0
    latency_duration: float = 10.0
    growth_sizes: tuple[int, ...] = FULL_GROWTH_SIZES
    growth_duration: float = 4.0
    growth_repeats: int = 3
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
        )
        return replace(smoke, **overrides)  # type: ignore[arg-type]

    @property
    def json_name(self) -> str:
        return "benchmarks-smoke.json" if self.smoke else "benchmarks.json"

    @property
    def markdown_name(self) -> str:
        return "benchmarks-smoke.md" if self.smoke else "benchmarks.md"

    def stack_env(self) -> dict[str, str]:
        # Production refuses to run without a key passphrase: a throwaway one per run.
        passphrase = {"AUTH_KEY_PASSPHRASE": secrets.token_urlsafe(24)}
        return {**BENCH_ENV, **passphrase, **dict(self.env)}
