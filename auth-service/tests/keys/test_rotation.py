"""The rotation sequence end to end, driven by a controllable clock:
publish -> sign with the new key -> the old key still verifies -> the old key is retired."""

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import select

from auth_service import maintenance
from auth_service.db import Database
from auth_service.keys import store
from auth_service.models import SigningKey
from svckit.jwks import parse_jwks

from ..conftest import AppContext, FakeClock
from ..helpers import bearer, login, register

TTL = 600
DELAY = 60
RELOAD = 1


@pytest.fixture
def clock() -> FakeClock:
    # Early enough that tokens issued after the activation delay are not "from the future"
    # for PyJWT's real-time iat check, late enough that the first token is still unexpired.
    return FakeClock(datetime.now(UTC) - timedelta(seconds=200))


async def jwks_kids(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return set(parse_jwks(response.json()))


async def test_rotation_sequence(
    app_context: AppContext, clock: FakeClock, database: Database
) -> None:
    async with app_context(
        access_token_ttl_seconds=TTL,
        jwks_max_age_seconds=DELAY,
        key_activation_delay_seconds=DELAY,
        key_reload_seconds=RELOAD,
    ) as (app, client):
        runtime = app.state.runtime
        user = await register(client)
        old_token = (await login(client, user["username"]))["access_token"]
        old_kid = jwt.get_unverified_header(old_token)["kid"]

        # 1. Rotate: the new key is published at once but does not sign yet.
        async with database.transaction() as session:
            new_key, _ = await store.rotate(
                session,
                bits=2048,
                passphrase=None,
                now=clock(),
                activation_delay=timedelta(seconds=DELAY),
                retention=runtime.keyring.retention,
            )
        await runtime.keyring.reload()
        assert await jwks_kids(client) == {old_kid, new_key.kid}
        token = (await login(client, user["username"]))["access_token"]
        assert jwt.get_unverified_header(token)["kid"] == old_kid

        # 2. After the activation delay the new key signs; the old key still verifies.
        clock.advance(DELAY + 1)
        new_token = (await login(client, user["username"]))["access_token"]
        assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid
        assert await jwks_kids(client) == {old_kid, new_key.kid}
        assert (await client.get("/auth/me", headers=bearer(old_token))).status_code == 200
        assert (await client.get("/auth/me", headers=bearer(new_token))).status_code == 200

        # 3. Just before every old token has expired (plus reload and leeway) it is kept...
        retention = runtime.settings.key_retention_seconds
        assert retention == TTL + RELOAD + 60
        clock.advance(retention - 2)
        assert await jwks_kids(client) == {old_kid, new_key.kid}

        # 4. ...then retired: gone from the JWKS, and no longer accepted.
        clock.advance(2)
        assert await jwks_kids(client) == {new_key.kid}
        response = await client.get("/auth/me", headers=bearer(old_token))
        assert response.status_code == 401
        assert (await client.get("/auth/me", headers=bearer(new_token))).status_code == 200

        # Maintenance marks it retired in the database and erases its private half.
        await maintenance.run_once(database, retention=runtime.keyring.retention, clock=clock)
        async with database.transaction() as session:
            row = await session.scalar(select(SigningKey).where(SigningKey.kid == old_kid))
        assert row is not None
        assert row.retired_at is not None
        assert row.private_key_pem is None
