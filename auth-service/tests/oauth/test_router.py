"""The token endpoint's grants and errors, revocation and introspection."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.db import Database
from auth_service.maintenance import run_once
from auth_service.models import OAuthClient, OutboxEvent, RevokedAccessToken
from auth_service.runtime import Runtime

from ..conftest import PASSWORD, AppContext
from ..helpers import admin_with_token, bearer, register, user_with_token


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def new_client(
    client: httpx.AsyncClient,
    connection: Any,
    *,
    grant_types: list[str] | None = None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    _, tokens = await admin_with_token(client, connection)
    response = await client.post(
        "/clients",
        json={
            "name": "moderation bot",
            "grant_types": grant_types or ["client_credentials"],
            "scopes": scopes if scopes is not None else ["items:read", "items:moderate"],
        },
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def oauth_error(response: httpx.Response) -> str:
    body = response.json()
    # RFC 6749 §5.2 members beside the envelope's
    assert {"detail", "code", "status_code", "path", "request_id"} <= set(body)
    assert body["error_description"]
    assert body["code"] == body["error"] or response.status_code == 401
    error: str = body["error"]
    return error


# ------------------------------------------------------------------ password grant


async def test_the_standard_password_grant_answers_with_scope(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user["username"], "password": PASSWORD},
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["scope"] == "items:read items:write"
    claims = claims_of(body["access_token"])
    assert claims["client_id"] == runtime.settings.public_client_id
    assert claims["scope"] == "items:read items:write"
    assert claims["sub"] == str(user["id"])


async def test_a_requested_scope_is_intersected_with_what_the_user_may_have(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={
            "username": user["username"],
            "password": PASSWORD,
            "scope": "items:read users:admin",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "items:read"
    assert claims_of(response.json()["access_token"])["scope"] == "items:read"


async def test_an_admin_gets_the_administrator_scopes_by_default(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, tokens = await admin_with_token(client, connection)
    scopes = set(claims_of(tokens["access_token"])["scope"].split())
    assert scopes == {"items:read", "items:write", "items:moderate", "users:admin"}


@pytest.mark.parametrize("scope", ["nonsense:scope", "items:read \x7f", 'items"read'])
async def test_unknown_or_malformed_scopes_are_invalid_scope(
    client: httpx.AsyncClient, scope: str
) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={"username": user["username"], "password": PASSWORD, "scope": scope},
    )
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_scope"


async def test_nothing_grantable_is_invalid_scope(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={"username": user["username"], "password": PASSWORD, "scope": "users:admin"},
    )
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_scope"


async def test_a_bad_password_stays_401_with_invalid_grant(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user["username"], "password": "Wr0ng-pass!"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_grant"


async def test_an_unsupported_grant_type(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/token", data={"grant_type": "urn:example:nope", "username": "a", "password": "b"}
    )
    assert response.status_code == 400
    assert oauth_error(response) == "unsupported_grant_type"


async def test_missing_password_fields_are_422_with_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/auth/token", data={"grant_type": "password", "username": "a"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["errors"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/auth/token", {"grant_type": "client_credentials", "scope": "a" * 5000}),
        ("/auth/token", {"username": "a" * 5000, "password": "x"}),
        ("/auth/revoke", {"token": "a" * 10000}),
        ("/auth/introspect", {"token": "a" * 10000}),
    ],
)
async def test_an_oversized_field_is_422_with_invalid_request(
    client: httpx.AsyncClient, path: str, data: dict[str, str]
) -> None:
    # An OAuth2 client library only recognises an error answer by its "error" member.
    response = await client.post(path, data=data)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"]
    assert body["code"] == "invalid_request"
    assert body["errors"][0]["type"] == "string_too_long"
    # The value is not echoed. (A short probe such as "aaaa" can occur in the random
    # hexadecimal request id, so the probe is longer than any id.)
    assert "a" * 64 not in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/token", "grant_type=client_credentials&grant_type=password&username=a&password=b"),
        ("/auth/token", "username=a&password=b&password=c"),
        ("/auth/token", "grant_type=refresh_token&refresh_token=x&refresh_token=x"),
        ("/auth/revoke", "token=a&token=b"),
        ("/auth/introspect", "token=a&token=b"),
        ("/auth/token", "username=\u00e9&password=\u00e9&password=%FF"),
    ],
)
async def test_a_repeated_parameter_is_invalid_request(
    client: httpx.AsyncClient, path: str, body: str
) -> None:
    # RFC 6749 §3.1/§3.2: parameters MUST NOT be included more than once.
    response = await client.post(
        path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_request"
    assert "more than once" in response.json()["error_description"]


async def test_naming_an_unknown_client_without_credentials_is_invalid_client(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={"username": user["username"], "password": PASSWORD, "client_id": "svc_nobody"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_the_public_client_may_be_named(client: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={
            "username": user["username"],
            "password": PASSWORD,
            "client_id": runtime.settings.public_client_id,
        },
    )
    assert response.status_code == 200


# ------------------------------------------------------------------ refresh grant


async def test_refresh_grant_rotates_like_auth_refresh(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    first = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert first.status_code == 200
    body = first.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["scope"] == "items:read items:write"
    # reuse of the used token revokes the family, so the successor is dead too
    reuse = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    # RFC 6749 §5.2: invalid_grant is a 400 at the token endpoint (/auth/refresh keeps 401)
    assert reuse.status_code == 400
    assert oauth_error(reuse) == "invalid_grant"
    successor = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert successor.status_code == 401
    successor = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert successor.status_code == 400
    assert oauth_error(successor) == "invalid_grant"


@pytest.mark.parametrize("token", ["garbage", "x" * 600])
async def test_an_unknown_refresh_token_is_400_invalid_grant(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_grant"


async def test_refresh_keeps_the_login_scope_and_may_only_narrow_it(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    login = await client.post(
        "/auth/token",
        data={"username": user["username"], "password": PASSWORD, "scope": "items:read"},
    )
    refresh_token = login.json()["refresh_token"]
    wider = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": "items:read items:write",
        },
    )
    assert wider.status_code == 400
    assert oauth_error(wider) == "invalid_scope"
    # the refused refresh did not use the token up
    same = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )
    assert same.status_code == 200
    assert claims_of(same.json()["access_token"])["scope"] == "items:read"


async def test_refresh_without_a_token_is_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data={"grant_type": "refresh_token"})
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_request"


async def test_another_clients_refresh_token_is_refused_and_not_used_up(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(
        client, connection, grant_types=["password", "refresh_token"], scopes=["items:read"]
    )
    user = await register(client)
    login = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user["username"], "password": PASSWORD},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert login.status_code == 200
    assert claims_of(login.json()["access_token"])["client_id"] == registered["client_id"]
    assert login.json()["scope"] == "items:read"
    token = login.json()["refresh_token"]
    # the first-party client (no credentials) may not use it, on either endpoint
    public = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    assert public.status_code == 400
    assert oauth_error(public) == "invalid_grant"
    assert (await client.post("/auth/refresh", json={"refresh_token": token})).status_code == 401
    own = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert own.status_code == 200


# ------------------------------------------------------------------ client credentials


async def test_client_credentials_with_basic_and_post(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection)
    for kwargs in (
        {"headers": basic(registered["client_id"], registered["client_secret"])},
        {
            "data_extra": {
                "client_id": registered["client_id"],
                "client_secret": registered["client_secret"],
            }
        },
    ):
        data = {"grant_type": "client_credentials", **kwargs.get("data_extra", {})}
        response = await client.post("/auth/token", data=data, headers=kwargs.get("headers"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert "refresh_token" not in body  # RFC 6749 §4.4.3
        assert body["scope"] == "items:moderate items:read"
        claims = claims_of(body["access_token"])
        assert claims["sub"] == claims["client_id"] == registered["client_id"]
        assert "roles" not in claims
        assert "preferred_username" not in claims


async def test_client_credentials_scope_is_narrowed_on_request(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "items:read items:write"},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "items:read"


async def test_a_wrong_secret_and_an_unknown_client_answer_alike(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection)
    wrong = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(registered["client_id"], "not-the-secret"),
    )
    unknown = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("svc_0000000000000000", "not-the-secret"),
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert wrong.headers["www-authenticate"].startswith("Basic")

    def comparable(response: httpx.Response) -> tuple[Any, ...]:
        body = response.json()
        body.pop("request_id")
        headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
        return response.status_code, body, headers

    assert comparable(wrong) == comparable(unknown)
    assert wrong.json()["error"] == "invalid_client"


async def test_an_unknown_client_is_verified_against_a_dummy_hash(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []
    original = runtime.hasher.verify

    async def spy(password: str, hashed: str | None) -> Any:
        calls.append(hashed)
        return await original(password, hashed)

    monkeypatch.setattr(runtime.hasher, "verify", spy)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("svc_0000000000000000", "whatever"),
    )
    assert response.status_code == 401
    assert calls == [None]  # the hasher then spends a dummy verification


async def test_failed_client_authentications_are_throttled(
    app_context: AppContext, connection: AsyncConnection
) -> None:
    async with app_context(login_throttle_max_failures=2) as (_, client):
        registered = await new_client(client, connection)
        statuses = []
        for _ in range(3):
            response = await client.post(
                "/auth/token",
                data={"grant_type": "client_credentials"},
                headers=basic(registered["client_id"], "wrong"),
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 429]
        right = await client.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(registered["client_id"], registered["client_secret"]),
        )
        assert right.status_code == 429
        assert "retry-after" in right.headers


async def test_client_credentials_need_a_client(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_grant_the_client_was_not_registered_for_is_unauthorized_client(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection, grant_types=["client_credentials"])
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user["username"], "password": PASSWORD},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert response.status_code == 400
    assert oauth_error(response) == "unauthorized_client"


async def test_two_client_authentication_methods_at_once_are_refused(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_secret": registered["client_secret"]},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_request"


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
async def test_a_malformed_basic_header_is_invalid_client(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_machine_token_never_passes_for_a_user(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection)
    token = (
        await client.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(registered["client_id"], registered["client_secret"]),
        )
    ).json()["access_token"]
    for method, path in (("GET", "/auth/me"), ("GET", "/users/me"), ("GET", "/users/")):
        response = await client.request(method, path, headers=bearer(token))
        assert response.status_code == 403, path
        assert response.json()["code"] == "user_token_required"


async def test_a_user_token_without_users_admin_cannot_administer(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    admin, _ = await admin_with_token(client, connection)
    narrow = await client.post(
        "/auth/token",
        data={"username": admin["username"], "password": PASSWORD, "scope": "items:read"},
    )
    response = await client.get("/users/", headers=bearer(narrow.json()["access_token"]))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="users:admin"'
    )


# ------------------------------------------------------------------ secrets


async def test_a_client_secret_is_never_stored_or_logged_in_clear(
    client: httpx.AsyncClient, connection: AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registered = await new_client(client, connection)
    secret = registered["client_secret"]
    assert len(secret) >= 43
    rotated = await client.post(
        f"/clients/{registered['client_id']}/secret",
        headers=bearer((await admin_with_token(client, connection))[1]["access_token"]),
    )
    new_secret = rotated.json()["client_secret"]
    for value in (secret, new_secret):
        await client.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(registered["client_id"], value),
        )
    stored = await connection.scalar(
        select(OAuthClient.secret_hash).where(OAuthClient.client_id == registered["client_id"])
    )
    assert stored is not None
    assert stored.startswith("$bcrypt-sha256$")
    dump = await connection.scalar(text("SELECT string_agg(t::text, ' ') FROM oauth_clients AS t"))
    for value in (secret, new_secret):
        assert value not in dump
        assert value not in caplog.text


# ------------------------------------------------------------------ revocation


async def test_revoking_a_refresh_token_revokes_its_family(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    rotated = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    successor = rotated.json()["refresh_token"]
    response = await client.post(
        "/auth/revoke", data={"token": successor, "token_type_hint": "refresh_token"}
    )
    assert response.status_code == 200
    assert (
        await client.post("/auth/refresh", json={"refresh_token": successor})
    ).status_code == 401


async def test_revoking_an_access_token_records_its_jti_and_an_event(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    _, tokens = await user_with_token(client)
    token = tokens["access_token"]
    response = await client.post("/auth/revoke", data={"token": token})
    assert response.status_code == 200
    jti = claims_of(token)["jti"]
    assert await connection.scalar(
        select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti)
    )
    payloads = (
        await connection.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == "token.revoked")
        )
    ).all()
    assert [p["jti"] for p in payloads] == [jti]
    # auth-service refuses it too
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
    # revoking twice is fine and writes no second event
    assert (await client.post("/auth/revoke", data={"token": token})).status_code == 200
    count = await connection.scalar(
        text("SELECT count(*) FROM outbox_events WHERE type = 'token.revoked'")
    )
    assert count == 1


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 600])
async def test_revoking_an_unknown_token_is_200(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post("/auth/revoke", data={"token": token})
    assert response.status_code == 200


async def test_revoke_without_a_token_is_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/revoke", data={})
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_request"


async def test_a_clients_token_can_only_be_revoked_by_that_client(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(client, connection)
    token = (
        await client.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(registered["client_id"], registered["client_secret"]),
        )
    ).json()["access_token"]
    anonymous = await client.post("/auth/revoke", data={"token": token})
    assert anonymous.status_code == 400
    assert oauth_error(anonymous) == "unauthorized_client"
    own = await client.post(
        "/auth/revoke",
        data={"token": token},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert own.status_code == 200


# ------------------------------------------------------------------ introspection


async def test_introspection_needs_client_authentication(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    response = await client.post("/auth/introspect", data={"token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_introspection_of_access_and_refresh_tokens(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    registered = await new_client(
        client,
        connection,
        grant_types=["client_credentials", "password", "refresh_token"],
        scopes=["items:read"],
    )
    auth = basic(registered["client_id"], registered["client_secret"])
    user, tokens = await user_with_token(client)
    active = await client.post(
        "/auth/introspect", data={"token": tokens["access_token"]}, headers=auth
    )
    assert active.status_code == 200
    assert active.headers["cache-control"] == "no-store"
    body = active.json()
    assert body["active"] is True
    assert body["sub"] == str(user["id"])
    assert body["username"] == user["username"]
    assert body["scope"] == "items:read items:write"
    assert body["token_type"] == "Bearer"
    assert body["exp"] == claims_of(tokens["access_token"])["exp"]

    # a first-party refresh token is not this client's business
    other = await client.post(
        "/auth/introspect", data={"token": tokens["refresh_token"]}, headers=auth
    )
    assert other.json() == {"active": False}
    own_login = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user["username"], "password": PASSWORD},
        headers=auth,
    )
    own = await client.post(
        "/auth/introspect", data={"token": own_login.json()["refresh_token"]}, headers=auth
    )
    assert own.json()["active"] is True
    assert own.json()["client_id"] == registered["client_id"]

    await client.post("/auth/revoke", data={"token": tokens["access_token"]})
    revoked = await client.post(
        "/auth/introspect", data={"token": tokens["access_token"]}, headers=auth
    )
    assert revoked.json() == {"active": False}
    garbage = await client.post("/auth/introspect", data={"token": "nope"}, headers=auth)
    assert garbage.json() == {"active": False}


async def test_a_client_that_names_none_the_way_authlib_does_is_the_public_client(
    client: httpx.AsyncClient,
) -> None:
    # Authlib's OAuth2Client without a client_id sends the literal "None"
    user = await register(client)
    response = await client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": user["username"],
            "password": PASSWORD,
            "client_id": "None",
        },
    )
    assert response.status_code == 200


async def test_long_expired_revocations_are_pruned(
    connection: AsyncConnection, database: Database
) -> None:
    now = datetime.now(UTC)
    for jti, expires in (("old", now - timedelta(days=2)), ("live", now + timedelta(hours=1))):
        await connection.execute(
            text(
                "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) "
                "VALUES (:jti, :expires, :now)"
            ),
            {"jti": jti, "expires": expires, "now": now},
        )
    await run_once(database, retention=timedelta(hours=1), clock=lambda: now)
    left = set(await connection.scalars(select(RevokedAccessToken.jti)))
    assert "old" not in left
    assert "live" in left
