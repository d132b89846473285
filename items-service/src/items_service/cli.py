"""The ``items-service`` command: ``items-service migrate [REVISION]``, ``downgrade REVISION``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from items_service.migrations import LOCATION as MIGRATIONS
from items_service.settings import Settings
from svckit import migrations
from svckit.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="items-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser(
        "migrate", help="upgrade the database schema (ITEMS_DATABASE_URL) to REVISION"
    )
    migrate.add_argument("revision", nargs="?", default="head")
    down = commands.add_parser("downgrade", help="downgrade the database schema to REVISION")
    down.add_argument("revision", help='e.g. "-1" or "base"')
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging("items-service", settings.log_level, json_format=settings.log_json)
    if args.command == "migrate":
        asyncio.run(migrations.upgrade(MIGRATIONS, settings.database_url, args.revision))
    else:
        asyncio.run(migrations.downgrade(MIGRATIONS, settings.database_url, args.revision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
