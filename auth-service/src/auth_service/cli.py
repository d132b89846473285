"""The ``auth-service`` command line.

    auth-service migrate                       upgrade the database to the latest schema
    auth-service create-superuser --username U --email E [--full-name N] [--password-stdin]
    auth-service rotate-keys                   publish a new signing key (signs after the delay)
    auth-service list-keys                     show the signing keys and their schedule
    auth-service reencrypt-keys                re-encrypt private keys and TOTP secrets with
                                               AUTH_KEY_PASSPHRASE
    auth-service relay-outbox [--once]         publish pending user events to Redis
    auth-service seed --base-url URL           create sample users and items through the API
    auth-service clients list                  registered OAuth2 clients
    auth-service clients create --name N --grant-type G [--grant-type G] [--scope S ...]
    auth-service clients show ID | delete ID | rotate-secret ID

Passwords never come from the command line (it is visible to other users of the machine):
``create-superuser`` reads stdin with ``--password-stdin`` or when stdin is not a terminal,
else ``AUTH_SUPERUSER_PASSWORD``, else prompts on a terminal. A client's secret is printed once,
by ``clients create`` and ``clients rotate-secret``; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from auth_service import outbox
from auth_service.clients import service as clients
from auth_service.clients.errors import ClientNotFound
from auth_service.clients.schemas import GRANT_TYPES, ClientCreate
from auth_service.clock import system_clock
from auth_service.db import Database
from auth_service.keys import schedule, store
from auth_service.keys.material import KeyMaterialError
from auth_service.mfa import service as mfa
from auth_service.mfa.sealing import SecretBox
from auth_service.migrations import LOCATION as MIGRATIONS
from auth_service.models import OAuthClient
from auth_service.password_policy import PasswordPolicy
from auth_service.passwords import PasswordHasher
from auth_service.runtime import create_redis
from auth_service.settings import Settings
from auth_service.users import service as users
from auth_service.users.errors import EmailTaken, UsernameTaken
from auth_service.users.schemas import UserCreate
from svckit import migrations
from svckit.orm import is_connection_error
from svckit.redis import close_redis
from svckit.scopes import SCOPES

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report in one line, without a traceback."""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise CommandError(f"invalid configuration: {exc}") from None


# --------------------------------------------------------------------------- migrate


async def migrate(settings: Settings, revision: str) -> str | None:
    database = Database.from_settings(settings)
    try:
        await migrations.upgrade(MIGRATIONS, database.engine, revision)
        return await migrations.current_revision(database.engine)
    finally:
        await database.close()


# --------------------------------------------------------------------------- superuser


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_password(*, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get("AUTH_SUPERUSER_PASSWORD"):
        password = os.environ["AUTH_SUPERUSER_PASSWORD"]
    elif _stdin_is_a_terminal():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CommandError("the passwords do not match")
    else:
        # Piped: the first line of stdin (``echo ... | auth-service create-superuser ...``).
        try:
            password = sys.stdin.readline().rstrip("\r\n")
        except (OSError, ValueError):
            password = ""
        if not password:
            raise CommandError(
                "no password: pipe it on stdin, set AUTH_SUPERUSER_PASSWORD, or run on a terminal"
            )
    if not password:
        raise CommandError("the password is empty")
    return password


async def create_superuser(
    settings: Settings,
    *,
    username: str,
    email: str,
    password: str,
    full_name: str | None,
    exists_ok: bool,
) -> str:
    try:
        data = UserCreate(username=username, email=email, password=password, full_name=full_name)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CommandError(f"invalid input: {problems}") from None
    hasher = PasswordHasher(rounds=settings.bcrypt_rounds, concurrency=1, queue_timeout=600)
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as session:
            user = await users.register_user(
                session,
                hasher,
                PasswordPolicy.from_settings(settings),
                username=data.username,
                email=data.email,
                password=data.password,
                full_name=data.full_name,
                is_admin=True,
                # Created by an operator, who vouches for the address.
                email_verified=True,
                now=system_clock(),
            )
        return f"superuser {user.username!r} created (id {user.id})"
    except RequestValidationError as exc:
        # The policy's messages only: the password itself is never echoed.
        raise CommandError(
            "password rejected: " + "; ".join(str(e["msg"]) for e in exc.errors())
        ) from None
    except (UsernameTaken, EmailTaken) as exc:
        if isinstance(exc, UsernameTaken):
            taken = f"a user named {data.username!r}"
        else:
            taken = f"a user with the email {data.email!r}"
        if exists_ok:
            return f"{taken} already exists; nothing changed"
        raise CommandError(f"{taken} exists") from None
    finally:
        hasher.close()
        await database.close()


# --------------------------------------------------------------------------- keys


async def rotate_keys(settings: Settings) -> str:
    database = Database.from_settings(settings)
    now = system_clock()
    try:
        async with database.transaction() as session:
            key, retired = await store.rotate(
                session,
                bits=settings.key_size,
                passphrase=settings.passphrase_bytes(),
                now=now,
                activation_delay=timedelta(seconds=settings.activation_delay_seconds),
                retention=timedelta(seconds=settings.key_retention_seconds),
            )
        lines = [
            f"new key {key.kid} published now, signs from {key.activates_at.isoformat()}",
        ]
        if retired:
            lines.append("retired: " + ", ".join(retired))
        lines.append(await list_keys(settings, database=database))
        return "\n".join(lines)
    finally:
        await database.close()


async def list_keys(settings: Settings, *, database: Database | None = None) -> str:
    own = database is None
    db = database or Database.from_settings(settings)
    now = system_clock()
    retention = timedelta(seconds=settings.key_retention_seconds)
    try:
        async with db.transaction() as session:
            keys = await store.live_keys(session)
    finally:
        if own:
            await db.close()
    rows = [
        "kid                     state       activates_at                      unpublished_after"
    ]
    for key in keys:
        state = schedule.state(key, keys, now, retention)
        ended = schedule.superseded_at(key, keys, now)
        until = (ended + retention).isoformat() if ended else "-"
        rows.append(f"{key.kid:<23} {state:<11} {key.activates_at.isoformat():<33} {until}")
    return "\n".join(rows)


async def reencrypt_keys(settings: Settings, old_passphrase: bytes | None) -> str:
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as session:
            changed = await store.reencrypt(
                session,
                old_passphrase=old_passphrase,
                new_passphrase=settings.passphrase_bytes(),
            )
            # The TOTP secrets are sealed with the same passphrase (auth_service.mfa.sealing).
            resealed = await mfa.reseal(
                session,
                old=await SecretBox.from_passphrase(old_passphrase),
                new=await SecretBox.from_passphrase(settings.passphrase_bytes()),
            )
    except KeyMaterialError as exc:
        raise CommandError(f"{exc}; nothing was changed (set AUTH_OLD_KEY_PASSPHRASE)") from None
    finally:
        await database.close()
    state = "encrypted with AUTH_KEY_PASSPHRASE" if settings.key_passphrase else "stored in clear"
    secrets = f"; {resealed} TOTP secret(s) re-sealed" if resealed else ""
    if not changed:
        return f"every key is already {state}{secrets}"
    return f"{len(changed)} key(s) now {state}: {', '.join(changed)}{secrets}"


# --------------------------------------------------------------------------- outbox


async def relay_outbox(settings: Settings, *, once: bool) -> int:
    database = Database.from_settings(settings)
    redis = create_redis(settings)
    try:
        if once:
            return await outbox.relay_all(
                database,
                redis,
                stream=settings.events_stream,
                batch_size=settings.outbox_batch_size,
                clock=system_clock,
            )
        relay = outbox.OutboxRelay(
            database,
            redis,
            stream=settings.events_stream,
            batch_size=settings.outbox_batch_size,
            interval=settings.outbox_relay_interval_seconds,
            clock=system_clock,
        )
        relay.start()
        try:
            await asyncio.Event().wait()
        finally:
            await relay.stop()
        return 0
    finally:
        await close_redis(redis)
        await database.close()


# --------------------------------------------------------------------------- clients


def _describe(client: OAuthClient) -> str:
    return (
        f"{client.client_id}  {client.name!r}  grants: {' '.join(client.grant_types)}  "
        f"scopes: {' '.join(client.scopes) or '-'}  created {client.created_at.isoformat()}"
    )


async def clients_command(settings: Settings, args: argparse.Namespace) -> str:
    database = Database.from_settings(settings)
    hasher = PasswordHasher(rounds=settings.bcrypt_rounds, concurrency=1, queue_timeout=600)
    now = system_clock()
    try:
        async with database.transaction() as session:
            action = args.action
            if action == "list":
                found, total = await clients.list_clients(session, skip=0, limit=10_000)
                return "\n".join([*(_describe(c) for c in found), f"{total} client(s)"])
            if action == "create":
                try:
                    data = ClientCreate(
                        name=args.name, grant_types=args.grant_type, scopes=args.scope or []
                    )
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                    )
                    raise CommandError(f"invalid input: {problems}") from None
                client, secret = await clients.create_client(session, hasher, data, now=now)
                return (
                    f"{_describe(client)}\nclient_id:     {client.client_id}\n"
                    f"client_secret: {secret}\n(the secret is shown only now; store it safely)"
                )
            try:
                if action == "show":
                    return _describe(await clients.get_client(session, args.client_id))
                if action == "delete":
                    await clients.delete_client(session, args.client_id)
                    return f"client {args.client_id} deleted"
                client, secret = await clients.rotate_secret(
                    session, hasher, args.client_id, now=now
                )
            except ClientNotFound:
                raise CommandError(f"no client {args.client_id!r}") from None
            return (
                f"client_id:     {client.client_id}\nclient_secret: {secret}\n"
                "(the old secret no longer works; the new one is shown only now)"
            )
    finally:
        hasher.close()
        await database.close()


def _add_clients_parser(commands: Any) -> None:
    p = commands.add_parser("clients", help="manage registered OAuth2 clients")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="list registered clients")
    create = actions.add_parser("create", help="register a confidential client")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--grant-type", action="append", required=True, choices=GRANT_TYPES, help="repeatable"
    )
    create.add_argument("--scope", action="append", choices=sorted(SCOPES), help="repeatable")
    for name, text in (
        ("show", "show a client"),
        ("delete", "delete a client and its refresh tokens"),
        ("rotate-secret", "give a client a new secret (the old one stops working)"),
    ):
        actions.add_parser(name, help=text).add_argument("client_id")


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("migrate", help="upgrade the database schema")
    p.add_argument("--revision", default="head", help="target revision (default: head)")

    p = commands.add_parser("create-superuser", help="create an administrator")
    p.add_argument("--username", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--full-name", default=None)
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first stdin line"
    )
    p.add_argument(
        "--exists-ok", action="store_true", help="succeed without changes if the user exists"
    )

    commands.add_parser("rotate-keys", help="publish a new signing key; retire expired ones")
    commands.add_parser("list-keys", help="show the signing keys and their schedule")
    commands.add_parser(
        "reencrypt-keys",
        help="re-encrypt private keys with AUTH_KEY_PASSPHRASE (old one: AUTH_OLD_KEY_PASSPHRASE)",
    )

    p = commands.add_parser("relay-outbox", help="publish pending user events to Redis")
    p.add_argument("--once", action="store_true", help="publish what is pending, then exit")

    _add_clients_parser(commands)

    p = commands.add_parser("seed", help="create sample users and items through the gateway")
    p.add_argument("--base-url", default="http://127.0.0.1:8080")
    p.add_argument("--users", type=int, default=3, help="number of sample users (1-20)")
    p.add_argument("--items-per-user", type=int, default=3, help="items per user (0-50)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the sample users' password from stdin (else AUTH_SEED_PASSWORD, else random)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "seed":
            from auth_service import seed

            return seed.main(args)
        settings = _settings()
        if args.command == "migrate":
            revision = asyncio.run(migrate(settings, args.revision))
            print(f"database at revision {revision}")
        elif args.command == "create-superuser":
            password = read_password(from_stdin=args.password_stdin)
            print(
                asyncio.run(
                    create_superuser(
                        settings,
                        username=args.username,
                        email=args.email,
                        password=password,
                        full_name=args.full_name,
                        exists_ok=args.exists_ok,
                    )
                )
            )
        elif args.command == "rotate-keys":
            print(asyncio.run(rotate_keys(settings)))
        elif args.command == "list-keys":
            print(asyncio.run(list_keys(settings)))
        elif args.command == "reencrypt-keys":
            old = os.environ.get("AUTH_OLD_KEY_PASSPHRASE") or None
            print(asyncio.run(reencrypt_keys(settings, old.encode() if old else None)))
        elif args.command == "clients":
            print(asyncio.run(clients_command(settings, args)))
        elif args.command == "relay-outbox":
            count = asyncio.run(relay_outbox(settings, once=args.once))
            print(f"published {count} event(s)")
    except CommandError as exc:
        print(f"auth-service {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if not (
            is_connection_error(exc) or isinstance(exc, RedisConnectionError | RedisTimeoutError)
        ):
            raise
        print(
            f"auth-service {args.command}: a dependency is unreachable ({type(exc).__name__}: "
            f"{exc})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    return EXIT_OK


def main() -> None:
    sys.exit(run())
