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
    # stop() closed the launcher's copies of the sockets too: the port refuses.
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


def _kill(process: ManagedProcess, n: int) -> int:
    victim = process.processes[n]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(5)
    return victim.pid


def test_a_worker_that_exits_is_started_again_on_its_socket_in_its_group(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = _workers(tmp_path, port)
    process.start()
    try:
        group = process.pid
        assert _wait_answers(port, {p.pid for p in process.processes})
        assert process.revive() == []  # nothing exited: nothing to do
        dead = _kill(process, 1)
        # The kernel still queues connections on the dead worker's socket (the launcher
        # holds it), where a closed socket would reset them: they wait for its successor.
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
        try:
            [line] = process.revive()
            assert line.startswith("svc (worker 2) exited with status -9; started again"), line
            successor = process.processes[1].pid
            assert successor != dead
            assert f"pid {successor}" in line
            served = {int(conn.recv(64)) for conn in waiting}
        finally:
            for conn in waiting:
                conn.close()
        assert served == {process.processes[0].pid, successor}, "a queued connection was lost"
        assert os.getpgid(successor) == group
        # The group's leader exits: its successor joins the group the other still holds,
        # and the component keeps its pid (the group's id) for stop() and signals.
        _kill(process, 0)
        process.revive()
        pids = [p.pid for p in process.processes]
        assert {os.getpgid(pid) for pid in pids} == {group}
        assert process.pid == group
    finally:
        process.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_that_keeps_failing_stops_the_stack(tmp_path: Path) -> None:
    process = _workers(tmp_path, free_port())
    process.start()
    try:
        for _ in range(2):
            _kill(process, 1)
            assert len(process.revive(max_restarts=2)) == 1
        _kill(process, 1)  # a third exit after two restarts within the window
        with pytest.raises(ComponentFailed, match=r"svc \(worker 2\) exited with status -9"):
            process.revive(max_restarts=2)
        # Restarts count per worker, and only within the window: past it, both start again.
        _kill(process, 0)
        lines = process.revive(max_restarts=2, window=0)
        assert [line.split(" exited")[0] for line in lines] == ["svc (worker 1)", "svc (worker 2)"]
        assert all(p.poll() is None for p in process.processes)
    finally:
        process.stop()


def test_a_child_without_a_socket_is_not_started_again(tmp_path: Path) -> None:
    process = ManagedProcess(
        "once", [sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "once.log"
    )
    process.start()
    process.processes[0].wait(5)
    with pytest.raises(ComponentFailed, match="once exited with status 3"):
        process.revive()
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
