"""ManagedProcess: a service's workers as processes of one group, on one socket it binds."""

from __future__ import annotations

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
# answering each connection with its pid, then pausing so that the next goes to another.
WORKER = """
import os, socket, sys, time
sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
print("worker", os.getpid(), "on", sock.getsockname(), flush=True)
while True:
    conn, _ = sock.accept()
    conn.sendall(str(os.getpid()).encode())
    conn.close()
    time.sleep(0.2)
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
        assert _wait_answers(port, pids) == pids, "not every worker serves the socket"
        log = (tmp_path / "svc.log").read_text()
        assert log.count(f"on ('127.0.0.1', {port})") == 2, log
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
