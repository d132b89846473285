"""Child processes of the stack: one process group each, output in a log file.

Every child is started in a process group of its own (in the launcher's session, so that a
service's workers can join it), so stopping it signals the whole group by the group id we
recorded, never by name. A service with several workers is several processes in one group,
each serving a listening socket on the service's port that the launcher binds and hands to
it (``--fd``, see ``svckit.serve``): no supervisor process beside them. The launcher is the
supervisor: :meth:`ManagedProcess.revive` starts a worker that exited again, on the socket it
kept for it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from devstack.errors import BinaryMissing, ComponentFailed, PortInUse


def require_binary(path: Path, hint: str) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BinaryMissing(f"{path.name} not found at {path}: {hint}")
    return path


def ensure_port_free(host: str, port: int, what: str, setting: str) -> None:
    """Raise :class:`PortInUse` when ``host:port`` cannot be bound."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUse(
                f"port {port} on {host} ({what}) is already in use: stop whatever listens "
                f"there or choose another port with {setting}=<port>"
            ) from None


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# A worker restarted this many times within the window is failing, not crashing now and
# then: restarting it again would only loop, so the stack stops with its log instead.
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0


@dataclass
class ManagedProcess:
    """One long-running child: started with :meth:`start`, stopped with :meth:`stop`.

    With ``listen`` (host, port), :meth:`start` starts ``workers`` copies of the command,
    each with ``--fd <n>`` added: a socket listening on that address that the launcher bound
    for it (SO_REUSEPORT), inherited. The launcher keeps its copy of each socket until
    :meth:`stop`, so a worker that exits can be started again on the same socket
    (:meth:`revive`): connections the kernel queued on it meanwhile wait for the new worker
    instead of being reset."""

    name: str
    args: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    listen: tuple[str, int] | None = None
    workers: int = 1
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list, init=False, repr=False)
    _restarts: list[list[float]] = field(default_factory=list, init=False, repr=False)
    _group: int | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """The process group's id: the first worker's pid (kept when a worker is revived)."""
        return self._group if self.processes else None

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)

    def start(self) -> None:
        if self.running():
            return
        if self.workers > 1 and self.listen is None:
            raise ValueError(f"{self.name}: several workers need a socket to share (listen)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_sockets()
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
        self.processes, self._restarts, self._group = [], [], None
        try:
            if self.listen is not None:
                self._sockets = [self._bind(*self.listen) for _ in range(self.workers)]
            for n in range(self.workers):
                self.processes.append(self._spawn(n))
                self._restarts.append([])
        except BaseException:
            self.stop()
            raise

    def _spawn(self, n: int) -> subprocess.Popen[bytes]:
        """Worker ``n`` (0-based), in the component's process group: the first one started
        leads it (0: its own pid), the others join it while any member is alive."""
        args: list[str] = list(self.args)
        pass_fds: tuple[int, ...] = ()
        if self._sockets:
            fd = self._sockets[n].fileno()
            args += ["--fd", str(fd)]
            pass_fds = (fd,)
        alive = any(p.poll() is None for i, p in enumerate(self.processes) if i != n)
        group = self._group if alive and self._group is not None else 0
        with self.log_path.open("ab") as log:
            try:
                process = self._popen(args, log, pass_fds, group)
            except OSError:
                if group == 0:
                    raise
                # The group's last member exited since we looked: lead a new one.
                group = 0
                process = self._popen(args, log, pass_fds, group)
        if group == 0:
            self._group = process.pid
        return process

    def _popen(
        self, args: list[str], log: IO[bytes], pass_fds: tuple[int, ...], group: int
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(self.env),
            cwd=self.cwd,
            pass_fds=pass_fds,
            process_group=group,
        )

    def _bind(self, host: str, port: int) -> socket.socket:
        """A listening socket of its own for one worker. SO_REUSEPORT: the workers' sockets
        share the port and the kernel spreads new connections over them evenly. With one
        shared socket, whichever worker was in accept() took them: the gateway opened its 50
        connections in a burst and one of two workers got 50 of 54 (measured under make
        run), leaving the other nearly idle. SO_REUSEADDR: a restart binds while old
        connections are still in TIME_WAIT. The backlog is uvicorn's default."""
        try:
            return socket.create_server((host, port), backlog=2048, reuse_port=True)
        except OSError as exc:
            raise PortInUse(f"{self.name} cannot listen on {host}:{port}: {exc}") from None

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it does not exit in time;
        then close the listening sockets, so the port refuses connections."""
        group = self._group
        if self.processes and group is not None:
            if self.running():
                self._signal_group(group, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                try:
                    for process in self.processes:
                        process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._signal_group(group, signal.SIGKILL)
                    for process in self.processes:
                        process.wait(5)
            # Children left behind by a process that died first still carry the group id.
            self._signal_group(group, signal.SIGKILL)
        self.processes, self._restarts, self._group = [], [], None
        self._close_sockets()

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _who(self, n: int) -> str:
        return self.name if len(self.processes) == 1 else f"{self.name} (worker {n + 1})"

    def _failed(self, n: int, code: int) -> ComponentFailed:
        return ComponentFailed(
            f"{self._who(n)} exited with status {code}; last lines of {self.log_path}:\n"
            f"{tail(self.log_path)}"
        )

    def check_alive(self) -> None:
        """Raise :class:`ComponentFailed` when the child (or any of its workers) has exited."""
        for n, process in enumerate(self.processes):
            code = process.poll()
            if code is not None:
                raise self._failed(n, code)

    def revive(self, max_restarts: int = MAX_RESTARTS, window: float = RESTART_WINDOW) -> list[str]:
        """Start again every worker of a service (a child with ``listen``) that has exited,
        as a server's supervisor would, and say which. Raise :class:`ComponentFailed` for
        any other child that exited, and for a worker already started again
        ``max_restarts`` times in the last ``window`` seconds (it would only fail again)."""
        revived: list[str] = []
        now = time.monotonic()
        for n, process in enumerate(self.processes):
            code = process.poll()
            if code is None:
                continue
            recent = [t for t in self._restarts[n] if now - t < window]
            if not self._sockets or len(recent) >= max_restarts:
                raise self._failed(n, code)
            self.processes[n] = self._spawn(n)
            self._restarts[n] = [*recent, now]
            revived.append(
                f"{self._who(n)} exited with status {code}; started again "
                f"(pid {self.processes[n].pid}; its log: {self.log_path})"
            )
        return revived

    def wait_until(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        interval: float = 0.1,
    ) -> None:
        """Poll ``ready`` until it holds; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(interval)
        self.check_alive()
        raise ComponentFailed(
            f"{self.name} was not {what} after {timeout:.0f} s; last lines of {self.log_path}:\n"
            f"{tail(self.log_path)}"
        )


def http_ok(url: str, *, timeout: float = 2.0, local_address: str | None = None) -> bool:
    """Whether ``GET url`` answers 200.

    With the standard library's client: the launcher stays up for the stack's whole life, and
    an HTTP library's imports would cost it memory for nothing but these polls.
    """
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        timeout=timeout,
        source_address=(local_address, 0) if local_address else None,
    )
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
