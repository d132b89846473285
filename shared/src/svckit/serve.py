"""One worker of a service on a listening socket its parent bound.

``python -m svckit.serve --fd N [--timeout-graceful-shutdown S] module:factory`` serves the
ASGI app that ``factory()`` returns on the TCP socket inherited as descriptor ``N``.
``make run``'s launcher binds a socket per worker on the service's port (``SO_REUSEPORT``)
and starts one of these on each: no supervisor process, and the kernel spreads connections
over the workers.

Not uvicorn's own ``--fd``: it wraps any descriptor as a Unix-domain socket, so the event
loop takes the TCP connections for Unix ones and never sets ``TCP_NODELAY``. With Nagle's
algorithm on, a response's last segment waits for the client's delayed ACK: about 40 ms a
request, 23 requests/s on one keep-alive connection. Here the socket's family is read from
the descriptor itself. Like ``uvicorn --no-server-header --no-access-log``: the gateway
writes the access log and the services name no server.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

import uvicorn


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m svckit.serve",
        description="Serve a service's ASGI app on an inherited listening TCP socket.",
    )
    parser.add_argument("app", help="module:factory, a callable returning the ASGI app")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket's descriptor")
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=int,
        default=5,
        metavar="SECONDS",
        help="how long open requests may finish after SIGTERM (default: %(default)s)",
    )
    return parser.parse_args(argv)


def listening_socket(fd: int) -> socket.socket:
    """The inherited socket, its family and type read from the descriptor."""
    sock = socket.socket(fileno=fd)
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise SystemExit(f"descriptor {fd} is not a TCP socket")
    return sock


def config(args: argparse.Namespace) -> uvicorn.Config:
    return uvicorn.Config(
        args.app,
        factory=True,
        workers=1,
        server_header=False,
        access_log=False,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
    )


def skip_httpx_cli() -> None:
    """Keep httpx from importing its command-line tool.

    httpx's package imports ``httpx._main`` (click, rich, pygments) whenever those are
    installed, as they are in the development virtualenv ``make run`` uses: 4.4 MiB and
    0.3 s per worker for a tool no worker runs. A ``None`` entry in ``sys.modules`` makes that
    import fail (the import system's documented way to block one), and httpx falls back to
    its stub ``main``."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    skip_httpx_cli()
    sock = listening_socket(args.fd)
    uvicorn.Server(config(args)).run(sockets=[sock])


if __name__ == "__main__":
    main()
