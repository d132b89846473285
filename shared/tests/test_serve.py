"""svckit.serve: a worker on a listening socket its parent bound (make run's launcher)."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from svckit import serve

# The app factory the worker serves: importable from the test's own folder.
APP_MODULE = "svckit_serve_app"
APP_SOURCE = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import httpx  # as the services do (svckit.jwks)


async def hello(request):
    return JSONResponse({"pid": __import__("os").getpid(), "client": request.client.host})


async def modules(request):
    loaded = __import__("sys").modules
    names = ("httpx", "httpx._main", "rich", "pygments")
    return JSONResponse(sorted(m for m in names if loaded.get(m) is not None))


def create_app():
    return Starlette(routes=[Route("/", hello), Route("/modules", modules)])
"""


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log: Path


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    (tmp_path / f"{APP_MODULE}.py").write_text(APP_SOURCE)
    log = tmp_path / "worker.log"
    with socket.create_server(("127.0.0.1", 0), reuse_port=True) as listener, log.open("wb") as out:
        fd = listener.fileno()
        process = subprocess.Popen(
            [sys.executable, "-m", "svckit.serve", "--fd", str(fd), f"{APP_MODULE}:create_app"],
            pass_fds=(fd,),
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        port = listener.getsockname()[1]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield Worker(process, port, log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)


def test_httpx_does_not_load_its_command_line_tool(worker: Worker) -> None:
    # The development virtualenv make run uses has what httpx's CLI needs (test tools pull
    # it in); httpx imports its CLI whenever it can, 4.4 MiB per worker for nothing.
    assert importlib.util.find_spec("rich") is not None, "the check needs rich installed"
    response = httpx.get(f"http://127.0.0.1:{worker.port}/modules")
    assert response.json() == ["httpx"]


def test_serves_the_app_on_the_inherited_socket_and_stops_on_sigterm(worker: Worker) -> None:
    response = httpx.get(f"http://127.0.0.1:{worker.port}/")
    assert response.status_code == 200
    assert response.json() == {"pid": worker.process.pid, "client": "127.0.0.1"}
    assert "server" not in response.headers  # as uvicorn --no-server-header
    worker.process.send_signal(signal.SIGTERM)
    # A graceful shutdown, then uvicorn ends by the signal it caught, for its parent to see.
    assert worker.process.wait(15) == -signal.SIGTERM
    assert "Finished server process" in worker.log.read_text()


def test_answers_without_waiting_for_delayed_acks(worker: Worker) -> None:
    """Responses leave at once (TCP_NODELAY, as for any TCP server of the event loop). On a
    socket taken for a Unix-domain one (uvicorn's --fd), Nagle's algorithm held each
    response's last segment for the client's delayed ACK: 40 ms or more a request."""
    with httpx.Client(base_url=f"http://127.0.0.1:{worker.port}") as client:
        client.get("/")  # the connection is open and kept alive
        started = time.perf_counter()
        for _ in range(20):
            assert client.get("/").status_code == 200
        elapsed = time.perf_counter() - started
    # A few ms here; 20 delayed ACKs would be 0.8 s at the least.
    assert elapsed < 0.5, f"20 requests on one connection took {elapsed:.2f} s"


def test_the_inherited_socket_keeps_its_own_family() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sock = serve.listening_socket(os.dup(listener.fileno()))
        with sock:
            assert sock.family == socket.AF_INET
            assert sock.type == socket.SOCK_STREAM


def test_refuses_a_descriptor_that_is_not_a_tcp_socket() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right, pytest.raises(SystemExit, match="is not a TCP socket"):
        serve.listening_socket(left.fileno())
    read, write = os.pipe()
    os.close(write)
    with pytest.raises(OSError, match="Socket operation on non-socket"):
        serve.listening_socket(read)
    os.close(read)


def test_options() -> None:
    args = serve.parse_args(["--fd", "3", "pkg.app:create_app"])
    config = serve.config(args)
    assert (config.app, config.factory, config.workers) == ("pkg.app:create_app", True, 1)
    assert (config.server_header, config.access_log) == (False, False)
    assert config.timeout_graceful_shutdown == 5
    with pytest.raises(SystemExit):
        serve.parse_args(["pkg.app:create_app"])  # --fd is required
