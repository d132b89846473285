"""The ``items-service`` command: ``items-service migrate [REVISION]``, ``downgrade REVISION``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alembic import command
from alembic.config import Config

from items_service.settings import Settings
from svckit.logs import configure_logging


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the migrations shipped inside the package (works from a wheel)."""
    config = Config()
    config.set_main_option("script_location", "items_service:migrations")
    # ConfigParser interpolation: a literal "%" (e.g. in a password) must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


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
        upgrade(settings.database_url, args.revision)
    else:
        downgrade(settings.database_url, args.revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
