"""Server helpers: database creation, URLs, the embedded PostgreSQL and Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from sqlalchemy.engine import make_url

from svckit.db import libpq_url
from svckit.testing.servers import (
    DependencyUnavailable,
    EmbeddedRedis,
    create_database,
    database_name,
    drop_database,
    env_url,
    free_port,
    port_open,
    with_database,
)


def test_libpq_url_drops_the_driver() -> None:
    assert libpq_url("postgresql+asyncpg://u:p%40ss@h:5/db") == "postgresql://u:p%40ss@h:5/db"
    url = make_url(libpq_url("postgresql+asyncpg://u@/db?host=/run/pg"))
    assert (url.drivername, url.database, url.query["host"]) == ("postgresql", "db", "/run/pg")


def test_with_database_keeps_everything_else() -> None:
    url = make_url(with_database("postgresql://u:secret@/postgres?host=/run/pg/sock", "other"))
    assert (url.username, url.password, url.database) == ("u", "secret", "other")
    assert url.query["host"] == "/run/pg/sock"


def test_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_url("A", "B", environ={"A": " ", "B": " b "}) == "b"
    assert env_url("A", environ={}) is None
    monkeypatch.setenv("SVCKIT_ENV_URL_TEST", "x")
    assert env_url("SVCKIT_ENV_URL_TEST") == "x"


def test_free_port_and_port_open() -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_open("127.0.0.1", port)


async def database_exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(libpq_url(admin_url))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_create_and_drop_database(postgres_admin_url: str) -> None:
    name = f"svckit_tmp_{uuid.uuid4().hex[:8]}"
    url = await create_database(postgres_admin_url, name)
    try:
        assert await database_exists(postgres_admin_url, name)
        conn = await asyncpg.connect(libpq_url(url))
        await conn.execute("CREATE TABLE kept (id int)")
        await conn.close()
        # again: kept as it is
        assert await create_database(postgres_admin_url, name) == url
        conn = await asyncpg.connect(libpq_url(url))
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'kept'") == 1
        await conn.close()
        # drop_existing: a fresh one, even with a connection still open
        holder = await asyncpg.connect(libpq_url(url))
        await create_database(postgres_admin_url, name, drop_existing=True)
        assert holder.is_closed() or not await _alive(holder)
        conn = await asyncpg.connect(libpq_url(url))
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'kept'") == 0
        await conn.close()
    finally:
        await drop_database(postgres_admin_url, name)
    assert not await database_exists(postgres_admin_url, name)
    await drop_database(postgres_admin_url, name)  # dropping twice is fine


async def _alive(conn: Any) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
        return False
    finally:
        conn.terminate()
    return True


@pytest.mark.parametrize("name", ['x"; DROP DATABASE postgres; --', "a b", "a-b", ""])
async def test_unsafe_database_names_are_refused(postgres_admin_url: str, name: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        await create_database(postgres_admin_url, name)


def test_embedded_postgres_stops_once_and_leaves_nothing_for_exit(tmp_path: Path) -> None:
    # In a child: pgserver's exit handler would run again at exit and log to a stream closed
    # by then (as pytest closes its capture), printing "--- Logging error ---".
    script = textwrap.dedent(
        f"""
        import asyncio, io, logging, sys
        import asyncpg
        from pathlib import Path
        from svckit.testing.servers import EmbeddedPostgres

        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.INFO, force=True)
        server = EmbeddedPostgres(Path({str(tmp_path / "pg")!r}))
        url = server.start()

        async def ask() -> int:
            conn = await asyncpg.connect(url)
            try:
                return int(await conn.fetchval("SELECT 1"))
            finally:
                await conn.close()

        assert asyncio.run(ask()) == 1
        server.stop()
        stream.close()
        try:
            asyncio.run(ask())
        except (OSError, asyncpg.PostgresError):
            print("stopped")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped"
    assert "Logging error" not in result.stderr


def test_embedded_redis_start_and_stop() -> None:
    server = EmbeddedRedis()
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()
    assert not port_open(server.host, server.port)
    server.stop()  # idempotent


def test_embedded_redis_with_datadir_persists_across_restarts(tmp_path: Path) -> None:
    server = EmbeddedRedis(datadir=tmp_path / "redis")
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        client.set("persisted", "yes")
        client.close()
    finally:
        server.stop()
    again = EmbeddedRedis(port=server.port, datadir=tmp_path / "redis")
    url = again.start()
    try:
        client = redis.Redis.from_url(url)
        assert client.get("persisted") == b"yes"
        client.close()
    finally:
        again.stop()


def test_embedded_redis_reports_a_taken_port() -> None:
    """An open port is not enough: it must be *our* redis-server that answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = EmbeddedRedis(port=sock.getsockname()[1])
        try:
            with pytest.raises(DependencyUnavailable, match="already in use"):
                server.start(timeout=5)
        finally:
            server.stop()
    assert server.process is None


def test_embedded_redis_on_a_port_of_another_redis(redis_url: str) -> None:
    taken = make_url(redis_url).port
    assert taken is not None
    server = EmbeddedRedis(port=taken)
    try:
        with pytest.raises(DependencyUnavailable, match="already in use"):
            server.start(timeout=5)
    finally:
        server.stop()


def test_docker_probe_answers_false_without_an_engine_and_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import warnings

    from svckit.testing.servers import docker_available

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert docker_available(timeout=0.2) is False
    monkeypatch.setenv("DOCKER_HOST", "ssh://somewhere")
    assert docker_available(timeout=0.2) is False


def test_docker_probe_recognises_an_engine_answering_ping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket
    import threading

    from svckit.testing.servers import docker_available

    path = str(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        assert docker_available(timeout=2) is True
    finally:
        thread.join(2)
        server.close()


def test_with_database_renames_only_the_database() -> None:
    # The embedded server's URL carries its socket directory unencoded in the query: the new
    # URL must still end in the database's name (tests take it as the last path segment).
    embedded = "postgresql://postgres@/postgres?host=/tmp/data dir/postgres"
    renamed = with_database(embedded, "items_1")
    assert renamed == "postgresql://postgres@/items_1?host=%2Ftmp%2Fdata+dir%2Fpostgres"
    assert renamed.rsplit("/", 1)[1].split("?")[0] == "items_1"
    assert database_name(renamed) == "items_1"
    tcp = "postgresql+asyncpg://user:p%40ss@127.0.0.1:5432/postgres?sslmode=require"
    assert with_database(tcp, "auth") == (
        "postgresql+asyncpg://user:p%40ss@127.0.0.1:5432/auth?sslmode=require"
    )
