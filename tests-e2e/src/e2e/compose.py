"""The docker compose stack as the end-to-end suite drives it (``make compose-test``).

:class:`ComposeStack` runs ``docker compose`` (Compose v2) or ``docker-compose`` (v1) on the
repository's unchanged docker-compose.yml under a project name of its own, with an env file
of its own, and waits -- always within a bound, with the containers' logs in the error -- for
every container to be healthy.

Clients reach the gateway container directly on the compose network's bridge, each from a
source address of its own (:meth:`ComposeStack.add_source_addresses` puts a block of them on
the host's side of the bridge): through Docker's published port every client would arrive
from one address and share one login budget.

``python -m e2e.compose`` is the command line ``containers/compose-test.sh`` uses.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Long-running services (healthchecked); the others run once and exit 0.
LONG_RUNNING = ("auth-db", "items-db", "redis", "auth-service", "items-service", "gateway")
ONE_SHOT = ("auth-migrate", "items-migrate")
GATEWAY_PORT = 8080  # the web entry point inside the container
SERVICE_PORT = 8000


class ComposeError(RuntimeError):
    """docker compose failed or the stack did not become healthy in time."""


@dataclass(frozen=True)
class Container:
    name: str
    id: str
    service: str
    ip: str
    state: str
    health: str | None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{SERVICE_PORT}"


def compose_command() -> list[str]:
    """``COMPOSE`` if set, else ``docker compose`` when Compose v2 answers, else docker-compose."""
    configured = os.environ.get("COMPOSE", "").split()
    if configured:
        return configured
    v2 = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise ComposeError("neither `docker compose` nor `docker-compose` is installed")


def write_env_file(path: Path, root: Path, overrides: Mapping[str, str] | None = None) -> Path:
    """An env file for a throwaway stack: every variable docker-compose.yml requires
    (``${NAME:?…}``) gets .env.example's value, or a fresh random one where that is empty
    (the secrets)."""
    example = {}
    for line in (root / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            example[name.strip()] = value.strip()
    required = re.findall(r"\$\{([A-Z0-9_]+):?\?", (root / "docker-compose.yml").read_text())
    values = {name: example.get(name) or secrets.token_hex(16) for name in dict.fromkeys(required)}
    values.update(overrides or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


class ComposeStack:
    def __init__(self, root: Path, project: str, env_file: Path) -> None:
        self.root = root
        self.project = project
        self.env_file = env_file
        self._compose = compose_command()
        self._hosts: list[str] = []
        self._used = 0

    # ------------------------------------------------------------------ commands

    def compose(
        self,
        *args: str,
        timeout: float = 300,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [
            *self._compose,
            "--project-directory",
            str(self.root),
            "-f",
            str(self.root / "docker-compose.yml"),
            "--env-file",
            str(self.env_file),
            "-p",
            self.project,
            *args,
        ]
        result = subprocess.run(
            command,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise ComposeError(
                f"{' '.join(command[len(self._compose) :])} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def up(self, scale: Mapping[str, int] | None = None, timeout: float = 300) -> None:
        """``up -d`` without building (the images are built first), then wait for health."""
        args = ["up", "-d", "--no-build"]
        for service, count in (scale or {}).items():
            args += ["--scale", f"{service}={count}"]
        try:
            self.compose(*args, timeout=timeout)
        except (ComposeError, subprocess.TimeoutExpired) as exc:
            raise ComposeError(f"{exc}\n{self.logs()}") from exc
        self.wait_healthy(scale, timeout=timeout)

    def down(self, volumes: bool = False) -> None:
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []), timeout=180)

    def stop(self, *services: str) -> None:
        self.compose("stop", *services, timeout=120)

    def start(self, *services: str) -> None:
        self.compose("start", *services, timeout=120)

    def logs(self, tail: int = 60) -> str:
        try:
            result = self.compose("logs", "--no-color", f"--tail={tail}", timeout=60, check=False)
        except subprocess.TimeoutExpired:
            return "(docker compose logs timed out)"
        header = f"--- docker compose logs (last {tail} lines each) ---"
        return f"{header}\n{result.stdout}{result.stderr}"

    def create_superuser(self, username: str, password: str) -> None:
        self.compose(
            "run",
            "--rm",
            "--no-deps",
            "-e",
            "AUTH_SUPERUSER_PASSWORD",
            "auth-migrate",
            "auth-service",
            "create-superuser",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            timeout=120,
            env={"AUTH_SUPERUSER_PASSWORD": password},
        )

    # ------------------------------------------------------------------ state

    def containers(self, service: str | None = None) -> list[Container]:
        label = f"label=com.docker.compose.project={self.project}"
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=True
        ).stdout.split()
        if not ids:
            return []
        raw = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
        found = []
        for item in json.loads(raw):
            name = item["Config"]["Labels"].get("com.docker.compose.service", "")
            if service is not None and name != service:
                continue
            networks = item["NetworkSettings"]["Networks"] or {}
            ip = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
            state = item["State"]
            found.append(
                Container(
                    name=item["Name"].lstrip("/"),
                    id=item["Id"],
                    service=name,
                    ip=ip,
                    state=state["Status"],
                    health=(state.get("Health") or {}).get("Status"),
                )
            )
        return sorted(found, key=lambda c: c.name)

    def _unready(self, scale: Mapping[str, int] | None) -> list[str]:
        problems = []
        for service in LONG_RUNNING:
            running = [c for c in self.containers(service) if c.state == "running"]
            wanted = (scale or {}).get(service, 1)
            healthy = [c for c in running if c.health == "healthy"]
            if len(healthy) < wanted:
                problems.append(f"{service}: {len(healthy)}/{wanted} healthy")
        for service in ONE_SHOT:
            for c in self.containers(service):
                if c.state != "exited":
                    problems.append(f"{c.name}: {c.state}")
        return problems

    def wait_healthy(self, scale: Mapping[str, int] | None = None, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            problems = self._unready(scale)
            if not problems:
                return
            for c in self.containers():
                if c.service in ONE_SHOT and c.state == "exited":
                    code = subprocess.run(
                        ["docker", "inspect", "-f", "{{.State.ExitCode}}", c.id],
                        capture_output=True,
                        text=True,
                        check=False,
                    ).stdout.strip()
                    if code != "0":
                        raise ComposeError(f"{c.name} exited {code}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise ComposeError(f"not healthy within {timeout:.0f} s: {problems}\n{self.logs()}")
            time.sleep(1)

    def gateway_url(self) -> str:
        gateways = [c for c in self.containers("gateway") if c.state == "running"]
        if not gateways:
            raise ComposeError("no running gateway container")
        return f"http://{gateways[0].ip}:{GATEWAY_PORT}"

    # ------------------------------------------------------------------ client addresses

    def network(self) -> tuple[str, ipaddress.IPv4Network]:
        """The compose network's bridge interface on this host and its subnet."""
        raw = subprocess.run(
            ["docker", "network", "inspect", f"{self.project}_default"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        info = json.loads(raw)[0]
        subnet = ipaddress.IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
        bridge = info.get("Options", {}).get("com.docker.network.bridge.name") or (
            "br-" + info["Id"][:12]
        )
        return bridge, subnet

    def add_source_addresses(self, count: int = 2000) -> ipaddress.IPv4Network:
        """Put a block of at least ``count`` addresses from the top of the compose subnet on
        the host's bridge (those not there yet), and return it.

        Docker hands out container addresses from the bottom of the subnet, so the top block
        stays free. The addresses go away with the network (``down``).
        """
        bridge, subnet = self.network()
        prefix = 32 - max(1, (count + 2 - 1).bit_length())
        if prefix <= subnet.prefixlen:
            raise ComposeError(f"{subnet} is too small for {count} client addresses")
        block = list(subnet.subnets(new_prefix=prefix))[-1]
        present = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", bridge],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        have = {field.split("/")[0] for field in present.split() if "/" in field}
        hosts = [str(ip) for ip in block.hosts()]
        commands = "".join(f"address add {ip}/32 dev {bridge}\n" for ip in hosts if ip not in have)
        if commands:
            result = subprocess.run(
                ["ip", "-batch", "-"], input=commands, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise ComposeError(f"adding client addresses on {bridge}: {result.stderr[-500:]}")
        self._hosts = hosts
        return block

    def next_source_address(self) -> str:
        """An address of the block not used by this object yet, from the top down.

        The suite's clients (:func:`e2e.api.next_source_address`) take the block from the
        bottom up, so the two never share a login budget.
        """
        assert self._hosts, "add_source_addresses() first"
        self._used += 1
        return self._hosts[-self._used]


def replica_request_counts(containers: Sequence[Container], route: str) -> dict[str, float]:
    """``http_requests_total`` for ``route`` per replica, read from each one's ``/metrics``."""
    counts: dict[str, float] = {}
    for c in containers:
        response = httpx.get(f"{c.url}/metrics", timeout=5, trust_env=False)
        response.raise_for_status()
        total = 0.0
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                    total += sample.value
        counts[c.name] = total
    return counts


# ---------------------------------------------------------------------- command line


def _stack(args: argparse.Namespace) -> ComposeStack:
    return ComposeStack(Path(args.root).resolve(), args.project, Path(args.env_file).resolve())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.compose")
    parser.add_argument("--root", default=".")
    parser.add_argument("--project", required=True)
    parser.add_argument("--env-file", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("write-env", help="a fresh env file with random secrets")
    env.add_argument("settings", nargs="*", help="extra NAME=VALUE lines")
    up = commands.add_parser("up", help="up -d, wait healthy, print the shell exports")
    up.add_argument("--scale", action="append", default=[], metavar="SERVICE=N")
    up.add_argument("--timeout", type=float, default=300)
    up.add_argument("--admin", nargs=2, metavar=("USERNAME", "PASSWORD"))
    down = commands.add_parser("down")
    down.add_argument("--volumes", action="store_true")
    commands.add_parser("logs")
    args = parser.parse_args(argv)

    if args.command == "write-env":
        overrides = dict(s.split("=", 1) for s in args.settings)
        write_env_file(Path(args.env_file), Path(args.root).resolve(), overrides)
        return 0
    stack = _stack(args)
    try:
        if args.command == "up":
            scale = {k: int(v) for k, v in (s.split("=", 1) for s in args.scale)}
            stack.up(scale, timeout=args.timeout)
            if args.admin:
                stack.create_superuser(*args.admin)
            block = stack.add_source_addresses()
            print(f"export E2E_BASE_URL={stack.gateway_url()}")
            print(f"export E2E_SOURCE_ADDRESSES={block}")
        elif args.command == "down":
            stack.down(volumes=args.volumes)
        else:
            print(stack.logs(tail=200))
    except (ComposeError, subprocess.TimeoutExpired) as exc:
        print(f"compose: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
