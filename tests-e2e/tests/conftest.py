"""The end-to-end suite's stack: started once per session, or an already running one.

With ``E2E_BASE_URL`` set (e.g. after ``docker compose up``) the suite drives that gateway and
only the tests that need no control over the stack's processes run (the others are
deselected with the ``needs_stack`` marker). Otherwise the real stack is started with the
same launcher as ``make run`` (embedded PostgreSQL/Redis unless ``AUTH_DATABASE_URL``,
``ITEMS_DATABASE_URL``, ``REDIS_URL`` are set), on free ports, in a temporary data folder
(kept, logs included, when ``E2E_KEEP_DATA`` is set). A failed test's report shows the error
lines the services logged while it ran.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from devstack.config import StackConfig, repo_root
from devstack.stack import SERVICES, Stack
from e2e.api import Client, ClientFactory, Tokens, unique_username

ADMIN_PASSWORD = "Adm1n!E2E-password"

# Short key lifetimes so rotation is observable within a test; the login limit stays at
# the contract's default (5 per minute per client address).
STACK_ENV = {
    "AUTH_JWKS_MAX_AGE_SECONDS": "2",
    "AUTH_KEY_ACTIVATION_DELAY_SECONDS": "2",
    "ITEMS_JWKS_REFRESH_COOLDOWN_SECONDS": "1",
    "GATEWAY_LOGIN_RATE_LIMIT": "5",
    "GATEWAY_LOGIN_RATE_PERIOD": "1m",
    # Mail retried quickly, so an SMTP outage's message arrives within a test.
    "AUTH_MAIL_RETRY_BASE_SECONDS": "0.5",
    "AUTH_MAIL_RETRY_MAX_SECONDS": "1",
    # Every request in the gateway's access log (make run keeps failures only): the tests
    # check that no token or secret ever reaches it.
    "GATEWAY_ACCESS_LOG": "all",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_stack: controls the stack's processes")
    config.addinivalue_line(
        "markers", "needs_embedded_redis: stops and starts Redis, so only an embedded one"
    )
    config.addinivalue_line(
        "markers", "needs_compose: drives the docker compose stack of E2E_COMPOSE_PROJECT"
    )
    config.addinivalue_line(
        "markers", "needs_embedded_postgres: stops and starts PostgreSQL, so only an embedded one"
    )


def _unrunnable(item: pytest.Item) -> bool:
    # Only `make compose-test` names a compose project (containers/compose-test.sh).
    if item.get_closest_marker("needs_compose") and not os.environ.get("E2E_COMPOSE_PROJECT"):
        return True
    if os.environ.get("E2E_BASE_URL"):
        return item.get_closest_marker("needs_stack") is not None
    # Never stop a Redis or a PostgreSQL this suite did not start.
    if os.environ.get("REDIS_URL") and item.get_closest_marker("needs_embedded_redis"):
        return True
    external_postgres = os.environ.get("AUTH_DATABASE_URL") or os.environ.get("ITEMS_DATABASE_URL")
    return (
        bool(external_postgres) and item.get_closest_marker("needs_embedded_postgres") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [i for i in items if not _unrunnable(i)]
    dropped = [i for i in items if _unrunnable(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack | None]:
    if os.environ.get("E2E_BASE_URL"):
        yield None
        return
    # Inside the checkout, not the system temp dir: embedded PostgreSQL runs as its own
    # user and must be able to reach its data folder.
    data_dir = repo_root() / ".data" / "e2e" / uuid.uuid4().hex[:8]
    config = StackConfig.ephemeral(
        data_dir,
        auth_database_url=os.environ.get("AUTH_DATABASE_URL") or None,
        items_database_url=os.environ.get("ITEMS_DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        env=STACK_ENV,
        # One items-service worker whatever the machine's sizing (one per core):
        # some tests count what the service did through its /metrics, and each worker keeps
        # its own registry and JWKS cache, which several workers behind one socket would split.
        items_workers=1,
    )
    try:
        with Stack(config) as running:
            yield running
    finally:
        if not os.environ.get("E2E_KEEP_DATA"):
            shutil.rmtree(data_dir, ignore_errors=True)


_LOG_OFFSETS = pytest.StashKey[dict[Path, int]]()


@pytest.fixture(autouse=True)
def _remember_log_offsets(request: pytest.FixtureRequest, stack: Stack | None) -> None:
    """Where the services' logs stood when the test began (see the report hook below)."""
    if stack is not None:
        paths = [stack.log_path(name) for name in SERVICES]
        request.node.stash[_LOG_OFFSETS] = {
            path: path.stat().st_size if path.exists() else 0 for path in paths
        }


def _error_lines(offsets: dict[Path, int], limit: int = 10) -> str:
    found: list[str] = []
    for path, offset in offsets.items():
        with path.open("rb") as log:
            log.seek(offset)
            for line in log:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("level") in ("error", "critical"):
                    trace = str(record.get("exc", ""))[-1500:]
                    found.append(f"{path.stem}: {record.get('msg')} {trace}".rstrip())
    return "\n".join(found[-limit:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report carries the services' error lines logged while it ran.

    The stack's logs are deleted with it, so in CI this is the only trace of a server-side
    failure (an unhandled exception behind a 500, say).
    """
    report: pytest.TestReport = yield
    offsets = item.stash.get(_LOG_OFFSETS, None)
    if report.when == "call" and report.failed and offsets:
        lines = _error_lines(offsets)
        if lines:
            report.sections.append(("services' error log lines", lines))
    return report


@pytest.fixture(scope="session")
def base_url(stack: Stack | None) -> str:
    return os.environ.get("E2E_BASE_URL") or (stack.base_url if stack else "")


@pytest.fixture
def live_stack(stack: Stack | None) -> Stack:
    """The stack, for tests that stop and start its parts (marked ``needs_stack``)."""
    assert stack is not None, "this test needs the local stack (unset E2E_BASE_URL)"
    return stack


@pytest.fixture
def client(base_url: str) -> Iterator[Client]:
    """A client of the gateway with a source address of its own."""
    with Client(base_url) as c:
        yield c


@pytest.fixture
def client_factory(base_url: str) -> Iterator[ClientFactory]:
    made: list[Client] = []

    class Factory(Client):
        def __init__(self, source_address: str | None = None) -> None:
            super().__init__(base_url, source_address)
            made.append(self)

    yield Factory
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def admin_credentials(stack: Stack | None) -> tuple[str, str]:
    if stack is None:
        username = os.environ.get("E2E_ADMIN_USERNAME", "")
        password = os.environ.get("E2E_ADMIN_PASSWORD", "")
        if not (username and password):
            pytest.fail("set E2E_ADMIN_USERNAME and E2E_ADMIN_PASSWORD with E2E_BASE_URL")
        return username, password
    username = unique_username("admin")
    result = stack.run_cli(
        "auth-service",
        "create-superuser",
        "--username",
        username,
        "--email",
        f"{username}@example.com",
        env={"AUTH_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
    )
    assert result.returncode == 0
    return username, ADMIN_PASSWORD


@pytest.fixture
def admin_tokens(client: Client, admin_credentials: tuple[str, str]) -> Tokens:
    username, password = admin_credentials
    return client.login(username, password)
