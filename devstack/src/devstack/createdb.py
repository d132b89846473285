"""``python -m devstack.createdb ADMIN_URL NAME``: create database NAME unless it exists.

The launcher runs this as a child process: the database driver is needed for that one step,
and the launcher stays up for the stack's whole life, so it never imports it itself.
Exit status: 0 created or present, 3 the server could not be reached, 1 any other failure
(the reason on stderr, never the URL: it may hold a password).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from svckit.testing.servers import create_database

UNREACHABLE = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 2:
        print("usage: python -m devstack.createdb ADMIN_URL NAME", file=sys.stderr)
        return 2
    admin_url, name = args
    try:
        asyncio.run(create_database(admin_url, name))
    except (OSError, TimeoutError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return UNREACHABLE
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
