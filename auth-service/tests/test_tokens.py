import httpx
import jwt
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.runtime import Runtime

from .conftest import AppContext
from .helpers import admin_with_token, login, register


async def test_header_is_rs256_at_jwt_with_kid(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await register(client)
    token = (await login(client, user["username"]))["access_token"]
    header = jwt.get_unverified_header(token)
    kid, _ = await runtime.keyring.signing_key()
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": kid}


async def test_claims(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await register(client)
    body = await login(client, user["username"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "preferred_username",
        "email_verified",
        "roles",
        "client_id",
        "scope",
        "amr",
    }
    assert claims["amr"] == ["pwd"]
    assert claims["iss"] == runtime.settings.issuer
    assert claims["sub"] == str(user["id"])
    assert claims["aud"] == "api"
    assert claims["exp"] - claims["iat"] == runtime.settings.access_token_ttl_seconds
    assert claims["nbf"] == claims["iat"]
    assert claims["preferred_username"] == user["username"]
    assert claims["roles"] == []
    assert claims["client_id"] == runtime.settings.public_client_id
    assert claims["scope"] == "items:read items:write"
    assert claims["email_verified"] is False
    assert body["expires_in"] == runtime.settings.access_token_ttl_seconds


async def test_every_token_has_its_own_jti(client: httpx.AsyncClient) -> None:
    user = await register(client)
    jtis = {
        jwt.decode(
            (await login(client, user["username"]))["access_token"],
            options={"verify_signature": False},
        )["jti"]
        for _ in range(3)
    }
    assert len(jtis) == 3


async def test_admins_get_the_admin_role(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, tokens = await admin_with_token(client, connection)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["admin"]


async def test_lifetime_is_configurable(app_context: AppContext) -> None:
    async with app_context(access_token_ttl_seconds=120) as (_, client):
        user = await register(client)
        body = await login(client, user["username"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120 == body["expires_in"]
