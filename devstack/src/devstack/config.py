"""Configuration of a local stack: ports, data folder, external servers, extra environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from devstack.sizing import Sizing, size_stack
from svckit.testing.servers import free_port

DEFAULT_HOST = "127.0.0.1"
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_AUTH_PORT = 8001
DEFAULT_ITEMS_PORT = 8002
DEFAULT_GATEWAY_METRICS_PORT = 8082
DEFAULT_SMTP_PORT = 1025


def repo_root() -> Path:
    """The checkout this package lives in (devstack/src/devstack/config.py -> root)."""
    return Path(__file__).resolve().parents[3]


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a port number, not {raw!r}") from None
    if not 0 < value < 65536:
        raise ValueError(f"{name} must be between 1 and 65535, not {value}")
    return value


def _count(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def _url(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class StackConfig:
    """Everything :class:`devstack.stack.Stack` needs to know.

    A ``None`` database or Redis URL means "start an embedded server in ``data_dir``".
    ``env`` is added to every child's environment (after the parent's own), e.g.
    ``{"AUTH_BCRYPT_ROUNDS": "4", "GATEWAY_LOGIN_RATE_LIMIT": "3"}``.
    """

    data_dir: Path
    host: str = DEFAULT_HOST
    gateway_port: int = DEFAULT_GATEWAY_PORT
    gateway_metrics_port: int = DEFAULT_GATEWAY_METRICS_PORT
    auth_port: int = DEFAULT_AUTH_PORT
    items_port: int = DEFAULT_ITEMS_PORT
    smtp_port: int = DEFAULT_SMTP_PORT
    # Workers per service; None: sized to the machine (devstack.sizing).
    auth_workers: int | None = None
    items_workers: int | None = None
    # Traefik's GOMAXPROCS; None: sized to the machine (devstack.sizing).
    gateway_procs: int | None = None
    auth_database_url: str | None = None
    items_database_url: str | None = None
    redis_url: str | None = None
    trusted_ips: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 90.0
    gateway_dir: Path = field(default_factory=lambda: repo_root() / "gateway")
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    auth_app: str = "auth_service.app:create_app"
    items_app: str = "items_service.app:create_app"

    def __post_init__(self) -> None:
        for workers in (self.auth_workers, self.items_workers):
            if workers is not None and workers < 1:
                raise ValueError("workers must be at least 1")
        if self.gateway_procs is not None and self.gateway_procs < 1:
            raise ValueError("the gateway's GOMAXPROCS must be at least 1")

    @property
    def sizing(self) -> Sizing:
        """Workers, hashing threads, pool sizes and the gateway's GOMAXPROCS for this machine
        (devstack.sizing)."""
        return size_stack(
            auth_workers=self.auth_workers,
            items_workers=self.items_workers,
            gateway_procs=self.gateway_procs,
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> StackConfig:
        """The configuration ``make run`` uses: defaults, overridden by the environment.

        Reads ``DEVSTACK_DATA_DIR`` (default ``.data/stack`` in the checkout),
        ``GATEWAY_PORT``, ``GATEWAY_METRICS_PORT``, ``AUTH_PORT``, ``ITEMS_PORT``,
        ``DEVSTACK_SMTP_PORT`` (the local SMTP server's),
        ``AUTH_DATABASE_URL``, ``ITEMS_DATABASE_URL``, ``REDIS_URL`` and
        ``GATEWAY_TRUSTED_IPS`` (comma-separated), ``DEVSTACK_AUTH_WORKERS``,
        ``DEVSTACK_ITEMS_WORKERS`` and ``GATEWAY_GOMAXPROCS`` (default: sized to the machine)
        and ``DEVSTACK_BIN_DIR`` (where traefik, uvicorn and the service CLIs are; default:
        this Python's bin folder).
        """
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("DEVSTACK_DATA_DIR") or repo_root() / ".data" / "stack")
        trusted = tuple(
            ip.strip() for ip in env.get("GATEWAY_TRUSTED_IPS", "").split(",") if ip.strip()
        )
        config = cls(
            data_dir=data_dir.resolve(),
            gateway_port=_int(env, "GATEWAY_PORT", DEFAULT_GATEWAY_PORT),
            gateway_metrics_port=_int(env, "GATEWAY_METRICS_PORT", DEFAULT_GATEWAY_METRICS_PORT),
            auth_port=_int(env, "AUTH_PORT", DEFAULT_AUTH_PORT),
            items_port=_int(env, "ITEMS_PORT", DEFAULT_ITEMS_PORT),
            smtp_port=_int(env, "DEVSTACK_SMTP_PORT", DEFAULT_SMTP_PORT),
            auth_database_url=_url(env, "AUTH_DATABASE_URL"),
            items_database_url=_url(env, "ITEMS_DATABASE_URL"),
            redis_url=_url(env, "REDIS_URL"),
            trusted_ips=trusted,
            auth_workers=_count(env, "DEVSTACK_AUTH_WORKERS"),
            items_workers=_count(env, "DEVSTACK_ITEMS_WORKERS"),
            gateway_procs=_count(env, "GATEWAY_GOMAXPROCS"),
        )
        if env.get("DEVSTACK_BIN_DIR"):
            config = replace(config, bin_dir=Path(env["DEVSTACK_BIN_DIR"]).resolve())
        return replace(config, **overrides)  # type: ignore[arg-type]

    @classmethod
    def ephemeral(cls, data_dir: Path, **overrides: object) -> StackConfig:
        """A configuration on free ports (for tests and benchmarks); embedded servers."""
        config = cls(
            data_dir=data_dir,
            gateway_port=free_port(),
            gateway_metrics_port=free_port(),
            auth_port=free_port(),
            items_port=free_port(),
            smtp_port=free_port(),
        )
        return replace(config, **overrides)  # type: ignore[arg-type]
