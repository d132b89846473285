"""ManagedProcess: a service's workers as processes of one group, on sockets it binds."""

from __future__ import annotations

import collections
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from devstack.errors import ComponentFailed, PortInUse
from devstack.process import ManagedProcess
from svckit.testing.servers import free_port

# A worker: serves the listening socket handed to it (``--fd N``, as uvicorn takes it),
# answering each connection with its pid and keeping it open, as a server keeps the
# gateway's keep-alive connections.
WORKER = """
import os, socket, sys
sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
print("worker", os.getpid(), "on", sock.getsockname(), flush=True)
kept = []
while True:
    conn, _ = sock.accept()
    conn.sendall(str(os.getpid()).encode())
    kept.append(conn)
"""


def _answer(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return int(conn.recv(64))


def _workers(tmp_path: Path, port: int, workers: int = 2) -> ManagedProcess:
    return ManagedProcess(
        "svc",
        [sys.executable, "-c", WORKER],
        tmp_path / "svc.log",
        env=dict(os.environ),
        listen=("127.0.0.1", port),
        workers=workers,
    )


def _wait_answers(port: int, wanted: set[int], attempts: int = 50) -> set[int]:
    seen: set[int] = set()
    for _ in range(attempts):
        try:
            seen.add(_answer(port))
        except OSError:
            time.sleep(0.1)
        if wanted <= seen:
            break
    return seen


def test_workers_share_one_socket_in_one_group_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    process = _workers(tmp_path, port)
    process.start()
    try:
        pids = {p.pid for p in process.processes}
        assert len(pids) == 2
        assert process.pid is not None
        # One group, led by the first: stopping or signalling the component reaches both.
        assert {os.getpgid(pid) for pid in pids} == {process.pid}
        assert _wait_answers(port, pids) == pids, "not every worker serves the port"
        log = (tmp_path / "svc.log").read_text()
        assert log.count(f"on ('127.0.0.1', {port})") == 2, log
        # Connections opened in a burst are spread over the workers (SO_REUSEPORT), not
        # taken by whichever was in accept() first.
        burst = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(60)]
        try:
            served = collections.Counter(int(conn.recv(64)) for conn in burst)
        finally:
            for conn in burst:
                conn.close()
        assert set(served) == pids
        assert min(served.values()) >= 15, served
    finally:
        process.stop()
    assert not process.running()
    assert process.processes == []
    # The launcher kept no copy of the socket: with the workers gone, the port refuses.
    with pytest.raises(ConnectionRefusedError):
        _answer(port)


def test_a_worker_that_exits_is_reported_by_number(tmp_path: Path) -> None:
    process = _workers(tmp_path, free_port())
    process.start()
    try:
        process.check_alive()
        second = process.processes[1]
        os.kill(second.pid, signal.SIGKILL)
        second.wait(5)
        assert process.running()  # the other still serves
        with pytest.raises(ComponentFailed, match=r"svc \(worker 2\) exited with status -9"):
            process.check_alive()
    finally:
        process.stop()


def test_a_taken_port_fails_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = _workers(tmp_path, port)
        with pytest.raises(PortInUse, match=f"svc cannot listen on 127.0.0.1:{port}"):
            process.start()
    assert process.processes == []


def test_several_workers_need_a_socket_to_share(tmp_path: Path) -> None:
    process = ManagedProcess("svc", [sys.executable, "-c", "pass"], tmp_path / "l", workers=2)
    with pytest.raises(ValueError, match="several workers need a socket"):
        process.start()
