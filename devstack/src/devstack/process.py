"""Child processes of the stack: one process group each, output in a log file.

Every child is started in a process group of its own (in the launcher's session, so that a
service's workers can join it), so stopping it signals the whole group by the group id we
recorded, never by name. A service with several workers is several processes in one group,
each serving a listening socket on the service's port that the launcher binds and hands to
it (``--fd``, see ``svckit.serve``): no supervisor process beside them.
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


@dataclass
class ManagedProcess:
    """One long-running child: started with :meth:`start`, stopped with :meth:`stop`.

    With ``listen`` (host, port), :meth:`start` starts ``workers`` copies of the command,
    each with ``--fd <n>`` added: a socket listening on that address that the launcher bound
    for it (SO_REUSEPORT), inherited. The launcher closes its own copies at once, so the port
    refuses connections as soon as every worker has exited, as it does for a process that
    binds it itself."""

    name: str
    args: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    listen: tuple[str, int] | None = None
    workers: int = 1
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        """The first process's, which is the group's."""
        return self.processes[0].pid if self.processes else None

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)

    def start(self) -> None:
        if self.running():
            return
        if self.workers > 1 and self.listen is None:
            raise ValueError(f"{self.name}: several workers need a socket to share (listen)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self.processes = []
            for _ in range(self.workers):
                with contextlib.ExitStack() as sockets:
                    args: list[str] = list(self.args)
                    pass_fds: tuple[int, ...] = ()
                    if self.listen is not None:
                        sock = sockets.enter_context(self._bind(*self.listen))
                        args += ["--fd", str(sock.fileno())]
                        pass_fds = (sock.fileno(),)
                    # The first leads a new process group (0: its own pid); the others join.
                    group = self.processes[0].pid if self.processes else 0
                    self.processes.append(
                        subprocess.Popen(
                            args,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            env=dict(self.env),
                            cwd=self.cwd,
                            pass_fds=pass_fds,
                            process_group=group,
                        )
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

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it does not exit in time."""
        if not self.processes:
            return
        group = self.processes[0].pid
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
        self.processes = []

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def check_alive(self) -> None:
        """Raise :class:`ComponentFailed` when the child (or any of its workers) has exited."""
        for n, process in enumerate(self.processes):
            code = process.poll()
            if code is not None:
                who = self.name if len(self.processes) == 1 else f"{self.name} (worker {n + 1})"
                raise ComponentFailed(
                    f"{who} exited with status {code}; last lines of {self.log_path}:\n"
                    f"{tail(self.log_path)}"
                )

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
