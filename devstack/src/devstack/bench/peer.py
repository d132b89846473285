"""The peer: fastapi/full-stack-fastapi-template's backend, built, started, seeded and stopped
by the peer harness's ``run.sh`` (``setup|start|seed|stop``), called from where it lies.

Nothing of the harness or the template is copied into this repository: ``run.sh`` builds the
template from a git dir (``TEMPLATE_GIT``) into its ``WORK`` folder, here under the bench
data folder, on free ports. Its processes are found through the files it writes: the
``fastapi run`` supervisor's pid (``server.pid``; its workers are its children) and the
PostgreSQL postmaster's (``pgdata/postmaster.pid``; the backends are its children).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.bench import probes
from devstack.bench.errors import BenchError

Reporter = Callable[[str], None]

STEP_TIMEOUT_S = {"setup": 900.0, "start": 120.0, "seed": 300.0, "stop": 120.0}


def harness_credentials(run_sh: str) -> tuple[str, str]:
    """The bench user ``run.sh seed`` signs up: its ``BENCH_USER=`` and ``BENCH_PASS=`` lines
    (read the way side-by-side.sh reads them)."""
    user = re.search(r"^BENCH_USER=(\S+)\s*$", run_sh, re.MULTILINE)
    password = re.search(r"^BENCH_PASS=(\S+)\s*$", run_sh, re.MULTILINE)
    if user is None or password is None:
        raise BenchError("the peer harness's run.sh names no BENCH_USER/BENCH_PASS")
    return user.group(1), password.group(1)


def _pid_file(path: Path) -> int | None:
    try:
        first = path.read_text().split()
    except OSError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


@dataclass
class Peer:
    """One peer instance: ``run.sh`` with its environment (WORK, PORT, PGPORT, ...)."""

    run_sh: Path
    template_git: Path
    work: Path
    port: int
    pgport: int
    workers: int
    items: int
    report: Reporter
    touched: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs_dir(self) -> Path:
        return self.work.parent / "peer-logs"

    def credentials(self) -> tuple[str, str]:
        return harness_credentials(self.run_sh.read_text())

    def step(self, command: str) -> None:
        """``run.sh <command>``; its output goes to ``peer-logs/<command>.log``."""
        if not self.run_sh.is_file():
            raise BenchError(
                f"the peer harness {self.run_sh} does not exist (--peer-harness or PEER_HARNESS)"
            )
        self.touched = True
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.logs_dir / f"{command}.log"
        env = {
            **os.environ,
            "WORK": str(self.work),
            "PORT": str(self.port),
            "PGPORT": str(self.pgport),
            "WORKERS": str(self.workers),
            "N_ITEMS": str(self.items),
            "TEMPLATE_GIT": str(self.template_git),
        }
        self.report(f"peer: run.sh {command} (log: {log})")
        with log.open("a") as out:
            try:
                result = subprocess.run(
                    ["bash", str(self.run_sh), command],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=STEP_TIMEOUT_S[command],
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise BenchError(f"peer: run.sh {command} took too long (log: {log})") from None
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise BenchError(
                f"peer: run.sh {command} exited {result.returncode} (log: {log}):\n{tail}"
            )

    def stop(self) -> None:
        """``run.sh stop``, if anything was started; never raises (it runs in ``finally``)."""
        if not self.touched:
            return
        try:
            self.step("stop")
        except BenchError as exc:
            self.report(f"WARNING: {exc}")
        self.touched = False

    # ------------------------------------------------------------------ its processes

    def server_pid(self) -> int | None:
        return _pid_file(self.work / "server.pid")

    def postmaster_pid(self) -> int | None:
        return _pid_file(self.work / "pgdata" / "postmaster.pid")

    def components(self) -> dict[str, list[int]]:
        """``fastapi`` (supervisor + workers) and ``postgres`` (postmaster + backends)."""
        out: dict[str, list[int]] = {}
        for name, pid in (("fastapi", self.server_pid()), ("postgres", self.postmaster_pid())):
            if pid is not None and probes.alive(pid):
                out[name] = probes.descendants(pid)
        return out

    # ------------------------------------------------------------------ its API

    def token(self) -> str:
        user, password = self.credentials()
        response = httpx.post(
            f"{self.base_url}/api/v1/login/access-token",
            data={"username": user, "password": password},
            timeout=30,
        )
        if response.status_code != 200:
            raise BenchError(f"peer: login for the bench token answered {response.status_code}")
        return str(response.json()["access_token"])

    def first_item(self, token: str) -> str:
        response = httpx.get(
            f"{self.base_url}/api/v1/items/",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        data = response.json().get("data") if response.status_code == 200 else None
        if not data:
            raise BenchError(f"peer: no item to read for (c) (HTTP {response.status_code})")
        return str(data[0]["id"])

    def healthy(self) -> bool:
        try:
            url = f"{self.base_url}/api/v1/utils/health-check/"
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False
