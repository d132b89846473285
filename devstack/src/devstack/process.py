"""Child processes of the stack: one process group each, output in a log file.

Every child is started in a new session (its own process group), so stopping it signals
the whole group — uvicorn's worker processes included — by the group id we recorded,
never by name.
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
    """One long-running child: started with :meth:`start`, stopped with :meth:`stop`."""

    name: str
    args: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                list(self.args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it does not exit in time."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(process.pid, signal.SIGKILL)
                process.wait(5)
        # Workers left behind by a parent that died first still carry its group id.
        self._signal_group(process.pid, signal.SIGKILL)
        self.process = None

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            raise ComponentFailed(
                f"{self.name} exited with status {code}; last lines of {self.log_path}:\n"
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
