"""The stack under test, started exactly as `make run` starts it: ``devstack run`` in a child
process (its own process group), on free ports and the bench's data folder.

The bench process never plays the launcher: the stack's processes are the child and its
descendants (found in /proc by their command lines) plus embedded PostgreSQL's (whose
postmaster pgserver may leave re-parented: found by its ``postmaster.pid``). Stopped like
Ctrl-C: SIGINT to the child's process group, then SIGTERM/SIGKILL by PID for what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from devstack.bench import probes
from devstack.bench.errors import BenchError
from devstack.config import StackConfig
from devstack.sizing import Sizing
from devstack.stack import AUTH, GATEWAY, ITEMS, POSTGRES, REDIS, STATE_FILE, running_stack_env
from svckit.testing.servers import free_port

Reporter = Callable[[str], None]

LAUNCHER = "launcher"
READY = "Stack ready"
# Settings the bench must not pass on: the child starts its embedded servers and sizes
# itself as `make run` does; ports and the data folder are the bench's (set below).
UNSET = (
    "AUTH_DATABASE_URL",
    "ITEMS_DATABASE_URL",
    "REDIS_URL",
    "DEVSTACK_AUTH_WORKERS",
    "DEVSTACK_ITEMS_WORKERS",
    "DEVSTACK_DATA_DIR",
    "GATEWAY_PORT",
)
# Component names (as the bench reports them) by the stack's own names.
COMPONENT_NAMES = {
    ITEMS: "items-service",
    AUTH: "auth-service",
    GATEWAY: "traefik",
    REDIS: "redis",
    POSTGRES: "postgres",
}


def classify(argv: list[str]) -> str | None:
    """The stack component a process's command line belongs to; ``None``: as its parent."""
    if not argv:
        return None
    program = Path(argv[0]).name
    if program.startswith("redis-server"):
        return REDIS
    if program == "traefik":
        return GATEWAY
    if program in ("postgres", "postmaster") or argv[0].startswith("postgres:"):
        return POSTGRES
    if any(Path(a).name == "uvicorn" for a in argv[:2]) or "svckit.serve" in argv[:3]:
        joined = " ".join(argv)
        if "auth_service" in joined:
            return AUTH
        if "items_service" in joined:
            return ITEMS
    return None


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def postmaster_pid(postgres_dir: Path) -> int | None:
    """The embedded PostgreSQL's postmaster, from its ``postmaster.pid``, if it runs."""
    try:
        pid = int((postgres_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if probes.alive(pid) else None


def stop_leftover(data_dir: Path, report: Reporter, *, timeout: float = 20.0) -> bool:
    """Stop the `devstack run` an earlier, killed bench left running on ``data_dir`` (its
    state file names it; only a process still running that command on that folder), like
    Ctrl-C, SIGKILL after ``timeout``. Whether there was one."""
    try:
        pid = int(json.loads((data_dir / STATE_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    argv = _argv(pid)
    if not (probes.alive(pid) and "run" in argv and str(data_dir) in argv):
        return False
    report(f"stopping the stack an earlier run left behind (pid {pid})")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and probes.alive(pid):
        time.sleep(0.2)
    if probes.alive(pid) and _argv(pid) == argv:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return True


class LaunchedStack:
    """``devstack run`` as a child process; the bench's view of the stack it runs.

    Offers what the bench reads of :class:`devstack.stack.Stack`: ``base_url``,
    ``auth_url``, ``items_url``, ``items_database_url``, ``data_dir``, ``env()`` and
    ``pid(component)``, plus :meth:`components` (every process, by component).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        report: Reporter | None = None,
        startup_timeout: float = 300.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self._report = report or (lambda _message: None)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.gateway_port = free_port()
        self.child_env = self._child_env()
        # The configuration the child reads from that environment (ports, sizing, binaries).
        self.config = StackConfig.from_env(self.child_env, data_dir=data_dir)
        self.argv = [
            str(self.config.bin_dir / "devstack"),
            "run",
            "--data-dir",
            str(data_dir),
            "--gateway-port",
            str(self.gateway_port),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._state: dict[str, str] = {}
        # Every stack process seen, with its command line: killed by PID if left behind.
        self._seen: dict[int, list[str]] = {}

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        env.update(
            {
                "GATEWAY_METRICS_PORT": str(free_port()),
                "AUTH_PORT": str(free_port()),
                "ITEMS_PORT": str(free_port()),
                "DEVSTACK_SMTP_PORT": str(free_port()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ what the bench reads

    @property
    def sizing(self) -> Sizing:
        return self.config.sizing

    @property
    def pid_of_launcher(self) -> int:
        if self.process is None:
            raise BenchError("the stack is not started")
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def auth_url(self) -> str:
        return self._state.get("AUTH_SERVICE_URL") or f"http://127.0.0.1:{self.config.auth_port}"

    @property
    def items_url(self) -> str:
        return self._state.get("ITEMS_SERVICE_URL") or f"http://127.0.0.1:{self.config.items_port}"

    @property
    def items_database_url(self) -> str | None:
        return self._state.get("ITEMS_DATABASE_URL")

    def env(self) -> dict[str, str]:
        """What the stack's children get: the launcher's environment and what it added."""
        return {**self.child_env, **self._state}

    def components(self) -> dict[str, list[int]]:
        """Process ids by component: every descendant of the launcher child, classified by
        command line (a process without a component of its own is its parent's: uvicorn's
        workers, the launcher's helpers), and PostgreSQL's processes. Never this process."""
        launcher = self.pid_of_launcher
        out: dict[str, list[int]] = {}

        def walk(pid: int, inherited: str) -> None:
            argv = _argv(pid)
            if not argv:
                return  # gone (or a zombie)
            self._seen[pid] = argv
            name = classify(argv) if pid != launcher else None
            label = name or inherited
            out.setdefault(label, []).append(pid)
            for child in probes.children(pid):
                walk(child, label)

        walk(launcher, LAUNCHER)
        master = postmaster_pid(self.data_dir / "postgres")
        if master is not None:
            postgres = set(out.get(POSTGRES, []))
            for pid in probes.descendants(master):
                argv = _argv(pid)
                if argv and pid not in postgres:
                    self._seen[pid] = argv
                    postgres.add(pid)
            for name in list(out):
                out[name] = [p for p in out[name] if p not in postgres]
            out[POSTGRES] = sorted(postgres)
        return {COMPONENT_NAMES.get(name, name): pids for name, pids in out.items() if pids}

    def servers(self, name: str) -> list[int]:
        """The processes of component ``name`` that its command line names (a service's
        uvicorn processes, one per worker; not their helpers), oldest first."""
        pids = self.components().get(COMPONENT_NAMES.get(name, name), [])
        return sorted(p for p in pids if classify(_argv(p)) is not None)

    def pid(self, name: str) -> int | None:
        """The top process of component ``name`` (auth-service, items-service, gateway,
        redis), as :meth:`devstack.stack.Stack.pid`; ``None`` when it does not run here."""
        servers = self.servers(name)
        return servers[0] if servers else None

    # ------------------------------------------------------------------ start and stop

    def start(self) -> Self:
        """Start ``devstack run`` and wait until it prints "Stack ready"; stopped again
        (and :class:`BenchError` raised) if it exits or does not get ready in time."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._report(f"$ {' '.join(self.argv)}  (log: {self.log_path})")
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.child_env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._wait_ready()
            state = json.loads((self.data_dir / STATE_FILE).read_text())
            if int(state["pid"]) != self.process.pid:
                raise BenchError(
                    f"{self.data_dir / STATE_FILE} names pid {state['pid']}, not the launcher "
                    f"{self.process.pid}"
                )
            self._state = running_stack_env(self.data_dir)
        except BaseException:
            self.stop()
            raise
        self.components()  # what to stop by PID should the launcher leave anything behind
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if READY.encode() in self.log_path.read_bytes():
                return
            if self.process.poll() is not None:
                raise BenchError(
                    f"`devstack run` exited with status {self.process.returncode} before the "
                    f"stack was ready; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        raise BenchError(
            f"`devstack run` was not ready after {self.startup_timeout:.0f} s; last lines of "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Like Ctrl-C: SIGINT to the launcher's process group, up to ``stop_timeout`` seconds
        for it to stop the stack; then SIGTERM and SIGKILL by PID for anything left."""
        with _signals_ignored():
            process = self.process
            if process is not None and process.poll() is None:
                self._report("stopping the stack (SIGINT to `devstack run`)")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._report("`devstack run` did not stop in time: SIGTERM, then SIGKILL")
            with contextlib.suppress(OSError):
                master = postmaster_pid(self.data_dir / "postgres")
                if master is not None and classify(_argv(master)) == POSTGRES:
                    self._seen.setdefault(master, _argv(master))
            if process is not None:
                self._seen.setdefault(process.pid, self.argv)
            self._kill_leftovers()
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
            if self._log is not None:
                self._log.close()
                self._log = None

    def _leftovers(self) -> list[int]:
        # Only processes that still run the command line they were seen with (no reused PID).
        return [pid for pid, argv in self._seen.items() if probes.alive(pid) and _argv(pid) == argv]

    def _kill_leftovers(self) -> None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            left = self._leftovers()
            if not left:
                return
            self._report(f"{len(left)} stack processes left behind: {sig.name} {left}")
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._leftovers():
                if self.process is not None:
                    self.process.poll()  # reap the launcher
                time.sleep(0.1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not cut the stack's shutdown short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
