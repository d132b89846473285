"""``devstack run``: the whole stack in the foreground until Ctrl-C or SIGTERM.

``devstack cli SERVICE ARGS...``: a service's command line (``auth-service create-superuser
...``) against the stack ``devstack run`` started on the same data folder, with its settings.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack.bench.command import add_parser as add_bench_parser
from devstack.config import StackConfig
from devstack.errors import StackError
from devstack.stack import SERVICES, Stack, running_stack_env


class _Terminated(Exception):
    """SIGTERM arrived: shut down like on Ctrl-C."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def _say(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run PostgreSQL, Redis, both services and Traefik until Ctrl-C",
        description="Start the whole stack locally and print the gateway URL once it serves.",
    )
    run.add_argument(
        "--workers",
        type=int,
        help="uvicorn workers of each service (default: sized to the machine, see the README)",
    )
    run.add_argument("--gateway-port", type=int, help="gateway port (default GATEWAY_PORT or 8080)")
    run.add_argument(
        "--data-dir", type=Path, help="data folder (default DEVSTACK_DATA_DIR or .data/stack)"
    )
    cli = commands.add_parser(
        "cli",
        help="run a service's command line against the running stack",
        description="Run `SERVICE ARGS...` (e.g. `auth-service create-superuser ...`) with the "
        "settings of the stack `devstack run` started on the same data folder. stdin, stdout "
        "and stderr are the command's own.",
    )
    cli.add_argument(
        "--data-dir", type=Path, help="data folder (default DEVSTACK_DATA_DIR or .data/stack)"
    )
    cli.add_argument("service", choices=SERVICES)
    cli.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
    add_bench_parser(commands)
    return parser


def service_cli(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.resolve()
    config = StackConfig.from_env(None, **overrides)
    env = {**os.environ, **running_stack_env(config.data_dir)}
    binary = config.bin_dir / args.service
    if not binary.exists():
        _say(f"error: {binary} is missing; run `make install`")
        return 1
    return subprocess.run([str(binary), *args.args], env=env, check=False).returncode


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.workers is not None:
        overrides.update(auth_workers=args.workers, items_workers=args.workers)
    if args.gateway_port is not None:
        overrides["gateway_port"] = args.gateway_port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.resolve()
    config = StackConfig.from_env(None, **overrides)
    stack = Stack(config, report=_say)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C stops the stack even when SIGINT was inherited as ignored (a script's background
    # job starts that way), where Python would not install its own handler.
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _say(f"data folder {config.data_dir}, logs in {stack.logs_dir}")
        _say(f"sized for {stack.sizing.describe()}")
        stack.start()
        print(
            f"\nStack ready: {stack.base_url}\n"
            f"  API docs: {stack.base_url}/docs/auth  {stack.base_url}/docs/items\n"
            f"  JWKS:     {stack.base_url}/.well-known/jwks.json\n"
            f"  metrics:  {stack.metrics_url}/metrics (gateway, internal)\n"
            f"  mail:     {_mail_line(stack)}\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while True:
            for line in stack.revive():
                _say(line)
            time.sleep(1)
    except (KeyboardInterrupt, _Terminated):
        _say("stopping")
        return 0
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_sigint)
            _say("stopped")


def _mail_line(stack: Stack) -> str:
    if stack.local_mail:
        return f"every message is a file in {stack.mail_dir} (log: {stack.log_path('mail')})"
    return "sent to AUTH_SMTP_URL"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return run(args)
        if args.command == "cli":
            return service_cli(args)
        if args.command == "bench":
            from devstack.bench.command import run as bench

            return bench(args)
    except (StackError, ValueError) as exc:
        _say(f"error: {exc}")
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
