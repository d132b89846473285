import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import create_async_engine

from auth_service import cli
from auth_service.models import OAuthClient, SigningKey, User
from svckit.settings import asyncpg_url
from svckit.testing.servers import free_port

from .conftest import unique

PASSWORD = "Sup3r-Secret-Admin!"


def run_cli(*argv: str) -> int:
    """Run the CLI in a worker thread (it calls asyncio.run itself)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(cli.run, list(argv)).result()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, fresh_database_url: str, redis_url: str) -> str:
    for name in list(os.environ):
        if name.startswith("AUTH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AUTH_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AUTH_ENVIRONMENT", "test")
    monkeypatch.setenv("AUTH_BCRYPT_ROUNDS", "4")
    return fresh_database_url


async def fetch(url: str, query: Executable) -> Sequence[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(query)).all()
    finally:
        await engine.dispose()


async def test_migrate_builds_an_empty_database(
    monkeypatch: pytest.MonkeyPatch,
    database_factory: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = asyncpg_url(database_factory("authcli"))
    monkeypatch.setenv("AUTH_DATABASE_URL", url)
    assert await asyncio.to_thread(run_cli, "migrate") == 0
    assert "revision 0004" in capsys.readouterr().out
    assert await fetch(url, select(User.id)) == []
    assert await asyncio.to_thread(run_cli, "migrate") == 0  # idempotent


async def test_create_superuser_from_the_environment(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    username = unique("root")
    monkeypatch.setenv("AUTH_SUPERUSER_PASSWORD", PASSWORD)
    code = await asyncio.to_thread(
        run_cli, "create-superuser", "--username", username, "--email", f"{username}@Example.com"
    )
    assert code == 0, capsys.readouterr().err
    assert "created" in capsys.readouterr().out
    rows = await fetch(cli_env, select(User.is_admin, User.email).where(User.username == username))
    assert rows == [(True, f"{username.lower()}@example.com")]

    again = await asyncio.to_thread(
        run_cli, "create-superuser", "--username", username, "--email", "x@example.com"
    )
    assert again == 1
    assert "exists" in capsys.readouterr().err
    ok = await asyncio.to_thread(
        run_cli,
        "create-superuser",
        "--username",
        username,
        "--email",
        "x@example.com",
        "--exists-ok",
    )
    assert ok == 0


async def test_create_superuser_applies_the_password_policy(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_SUPERUSER_PASSWORD", "weak")
    code = await asyncio.to_thread(
        run_cli, "create-superuser", "--username", unique(), "--email", f"{unique()}@e.com"
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "password rejected" in err
    assert "uppercase" in err
    assert "digit" in err
    assert "weak" not in err.replace("password rejected", "")  # never echoed


async def test_create_superuser_reads_stdin(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    username = unique("stdin")
    code = await asyncio.to_thread(
        run_cli,
        "create-superuser",
        "--username",
        username,
        "--email",
        f"{username}@e.com",
        "--password-stdin",
    )
    assert code == 0, capsys.readouterr().err


async def test_create_superuser_without_a_password_source_fails(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = await asyncio.to_thread(
        run_cli, "create-superuser", "--username", unique(), "--email", f"{unique()}@e.com"
    )
    assert code == 1
    assert "AUTH_SUPERUSER_PASSWORD" in capsys.readouterr().err


def test_a_password_argument_is_not_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.run(["create-superuser", "--username", "a", "--email", "a@b.c", "--password", "x"])
    assert caught.value.code == 2


async def test_rotate_and_list_keys(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = await fetch(cli_env, select(SigningKey.kid))
    assert await asyncio.to_thread(run_cli, "rotate-keys") == 0
    out = capsys.readouterr().out
    after = await fetch(cli_env, select(SigningKey.kid))
    assert len(after) == len(before) + 1
    new_kid = ({k for (k,) in after} - {k for (k,) in before}).pop()
    assert f"new key {new_kid} published now" in out
    assert await asyncio.to_thread(run_cli, "list-keys") == 0
    listing = capsys.readouterr().out
    assert f"{new_kid}" in listing
    assert "pending" in listing
    assert "signing" in listing


async def test_relay_outbox_once(
    cli_env: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from auth_service import outbox
    from auth_service.db import Database
    from auth_service.settings import Settings

    stream = unique("events")
    monkeypatch.setenv("AUTH_EVENTS_STREAM", stream)
    database = Database.from_settings(Settings(database_url=cli_env))
    try:
        async with database.transaction() as session:
            from datetime import UTC, datetime

            await outbox.add_user_deleted(session, 99, now=datetime.now(UTC))
    finally:
        await database.close()
    assert await asyncio.to_thread(run_cli, "relay-outbox", "--once") == 0
    assert "published 1 event(s)" in capsys.readouterr().out
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert [f["user_id"] for _, f in await redis.xrange(stream)] == ["99"]
    finally:
        await redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5


async def test_an_unreachable_database_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert await asyncio.to_thread(run_cli, "list-keys") == 1
    err = capsys.readouterr().err
    assert "unreachable" in err
    assert "Traceback" not in err


def test_the_console_script_runs() -> None:
    script = Path(sys.executable).parent / "auth-service"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for command in ("migrate", "create-superuser", "rotate-keys", "relay-outbox", "seed"):
        assert command in result.stdout


async def test_reencrypt_keys(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_KEY_PASSPHRASE", "first-long-passphrase-1")
    assert await asyncio.to_thread(run_cli, "reencrypt-keys") == 0
    assert "now encrypted" in capsys.readouterr().out  # the template's plain key
    monkeypatch.setenv("AUTH_OLD_KEY_PASSPHRASE", "first-long-passphrase-1")
    monkeypatch.setenv("AUTH_KEY_PASSPHRASE", "second-long-passphrase-2")
    assert await asyncio.to_thread(run_cli, "reencrypt-keys") == 0
    assert await asyncio.to_thread(run_cli, "reencrypt-keys") == 0
    assert "already encrypted" in capsys.readouterr().out
    monkeypatch.setenv("AUTH_OLD_KEY_PASSPHRASE", "wrong")
    monkeypatch.setenv("AUTH_KEY_PASSPHRASE", "third-long-passphrase-3")
    assert await asyncio.to_thread(run_cli, "reencrypt-keys") == 1
    assert "nothing was changed" in capsys.readouterr().err


async def test_create_superuser_reads_a_piped_password_without_the_flag(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    username = unique("piped")
    code = await asyncio.to_thread(
        run_cli, "create-superuser", "--username", username, "--email", f"{username}@e.com"
    )
    assert code == 0, capsys.readouterr().err
    rows = await fetch(cli_env, select(User.is_admin).where(User.username == username))
    assert rows == [(True,)]


async def test_clients_create_list_rotate_delete(
    cli_env: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code = await asyncio.to_thread(
        run_cli,
        "clients",
        "create",
        "--name",
        "nightly job",
        "--grant-type",
        "client_credentials",
        "--scope",
        "items:read",
        "--scope",
        "items:moderate",
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines() if line.startswith("client_"))
    client_id, secret = lines["client_id"].strip(), lines["client_secret"].strip()
    assert client_id.startswith("svc_")
    stored = await fetch(
        cli_env, select(OAuthClient.secret_hash).where(OAuthClient.client_id == client_id)
    )
    assert secret not in stored[0][0]
    assert secret not in caplog.text

    assert await asyncio.to_thread(run_cli, "clients", "list") == 0
    assert client_id in capsys.readouterr().out
    assert await asyncio.to_thread(run_cli, "clients", "rotate-secret", client_id) == 0
    assert secret not in capsys.readouterr().out
    assert await asyncio.to_thread(run_cli, "clients", "delete", client_id) == 0
    assert await asyncio.to_thread(run_cli, "clients", "show", client_id) == 1
    assert "no client" in capsys.readouterr().err


async def test_clients_create_refuses_unknown_scopes(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        await asyncio.to_thread(
            run_cli,
            "clients",
            "create",
            "--name",
            "x",
            "--grant-type",
            "client_credentials",
            "--scope",
            "everything",
        )


async def test_reencrypt_keys_reseals_totp_secrets(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from auth_service.mfa.sealing import SecretBox
    from auth_service.models import TotpFactor

    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    first = await SecretBox.from_passphrase(b"first-long-passphrase-1")
    engine = create_async_engine(cli_env)
    try:
        async with engine.begin() as conn:
            user_id = await conn.scalar(
                insert(User)
                .values(
                    username=unique("sealed"),
                    email=f"{unique('sealed')}@example.com",
                    hashed_password="x",
                )
                .returning(User.id)
            )
            assert user_id is not None
            sealed, _ = first.seal(secret, user_id=user_id)
            await conn.execute(
                insert(TotpFactor).values(
                    user_id=user_id, secret=sealed, encrypted=True, created_at=datetime.now(UTC)
                )
            )
    finally:
        await engine.dispose()
    monkeypatch.setenv("AUTH_OLD_KEY_PASSPHRASE", "first-long-passphrase-1")
    monkeypatch.setenv("AUTH_KEY_PASSPHRASE", "second-long-passphrase-2")
    assert await asyncio.to_thread(run_cli, "reencrypt-keys") == 0
    assert "1 TOTP secret(s) re-sealed" in capsys.readouterr().out
    assert await asyncio.to_thread(run_cli, "reencrypt-keys") == 0
    assert "TOTP" not in capsys.readouterr().out  # already under the new passphrase
    rows = await fetch(cli_env, select(TotpFactor.secret).where(TotpFactor.user_id == user_id))
    second = await SecretBox.from_passphrase(b"second-long-passphrase-2")
    assert second.open(rows[0][0], encrypted=True, user_id=user_id) == secret
