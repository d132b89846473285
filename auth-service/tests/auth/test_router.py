import time
from typing import Any

import bcrypt
import httpx
import jwt
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.models import User
from auth_service.runtime import Runtime

from ..conftest import PASSWORD, AppContext, unique
from ..helpers import bearer, login, register, user_with_token

# ------------------------------------------------------------------ register


async def test_register_returns_the_user_without_password_fields(client: httpx.AsyncClient) -> None:
    username = unique("Alice")
    response = await client.post(
        "/auth/register",
        json={
            "username": username,
            "email": f"{username}@Example.COM",
            "password": PASSWORD,
            "full_name": "Alice Example",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "username",
        "email",
        "email_verified",
        "full_name",
        "is_active",
        "is_admin",
        "created_at",
    }
    assert body["username"] == username  # case kept
    assert body["email"] == f"{username.lower()}@example.com"  # lower-cased
    assert body["is_active"] is True
    assert body["email_verified"] is False
    assert body["is_admin"] is False


async def test_usernames_are_unique_ignoring_case(client: httpx.AsyncClient) -> None:
    username = unique("Bob")
    await register(client, username=username)
    response = await client.post(
        "/auth/register",
        json={
            "username": username.upper(),
            "email": f"{unique()}@example.com",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 400
    assert response.json()["code"] == "username_taken"


async def test_emails_are_unique_ignoring_case(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/register",
        json={"username": unique(), "email": user["email"].upper(), "password": PASSWORD},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 33, "has space", "dash-ed", "dot.ted", "émile", "", "x\x00y", "a@b"],
)
async def test_invalid_usernames_are_422(client: httpx.AsyncClient, username: str) -> None:
    response = await client.post(
        "/auth/register",
        json={"username": username, "email": f"{unique()}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "username"]


@pytest.mark.parametrize("email", ["plain", "a@", "@b.com", "a b@c.com", "x" * 250 + "@e.com"])
async def test_invalid_emails_are_422(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(
        "/auth/register", json={"username": unique(), "email": email, "password": PASSWORD}
    )
    assert response.status_code == 422


async def test_registration_cannot_grant_itself_admin(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={
            "username": unique(),
            "email": f"{unique()}@example.com",
            "password": PASSWORD,
            "is_admin": True,
        },
    )
    assert response.status_code == 422


async def test_the_422_lists_every_failed_password_rule(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"username": unique(), "email": f"{unique()}@example.com", "password": "zzz"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    messages = [e["msg"] for e in body["errors"]]
    assert len(messages) == 4
    assert all(e["loc"] == ["body", "password"] for e in body["errors"])
    assert "zzz" not in str(body)  # the password is never echoed (not hex: no request id clash)


async def test_a_password_containing_the_username_is_refused(client: httpx.AsyncClient) -> None:
    username = unique("carol")
    response = await client.post(
        "/auth/register",
        json={
            "username": username,
            "email": f"{unique()}@example.com",
            "password": f"X-{username.upper()}-9",
        },
    )
    assert response.status_code == 422
    assert "Password must not contain the username" in [e["msg"] for e in response.json()["errors"]]


async def test_an_oversized_password_is_refused_before_hashing(app_context: AppContext) -> None:
    async with app_context(bcrypt_rounds=13) as (app, client):
        started = time.perf_counter()
        await app.state.runtime.hasher.hash("Aa1!" * 300)
        one_hash = time.perf_counter() - started

        started = time.perf_counter()
        response = await client.post(
            "/auth/register",
            json={
                "username": unique(),
                "email": f"{unique()}@example.com",
                "password": "Aa1!" * 300,
            },
        )
        refused = time.perf_counter() - started
    assert response.status_code == 422
    # Measured on the same (possibly loaded) machine: far quicker than a single hash.
    assert refused < one_hash / 3, (refused, one_hash)


async def test_passwords_of_128_characters_work(client: httpx.AsyncClient) -> None:
    password = ("Aa1!" * 40)[:128]
    user = await register(client, password=password)
    await login(client, user["username"], password)


async def test_passwords_sharing_72_bytes_are_different_passwords(
    client: httpx.AsyncClient,
) -> None:
    prefix = "Aa1!" * 18  # 72 bytes
    user = await register(client, password=prefix + "tail-one")
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": prefix + "tail-two"}
    )
    assert response.status_code == 401
    await login(client, user["username"], prefix + "tail-one")


async def test_unicode_normalisation_forms_log_in_alike(client: httpx.AsyncClient) -> None:
    user = await register(client, password="Cafe\u0301-P4ssword")
    await login(client, user["username"], "Caf\u00e9-P4ssword")


async def test_sixty_four_emoji_password(client: httpx.AsyncClient) -> None:
    password = "\U0001f600" * 64
    app_policy_free = await client.post(
        "/auth/register",
        json={"username": unique(), "email": f"{unique()}@example.com", "password": password},
    )
    # The default policy wants upper/lower/digit: the emoji-only password is refused for those
    # rules, never because of its byte length.
    assert app_policy_free.status_code == 422
    assert not any(
        "long" in e["msg"] and "most" in e["msg"] for e in app_policy_free.json()["errors"]
    )
    user = await register(client, password="Aa1!" + password)
    await login(client, user["username"], "Aa1!" + password)


# ------------------------------------------------------------------ token


async def test_login_with_username_or_email_ignoring_case(client: httpx.AsyncClient) -> None:
    user = await register(client, username=unique("Dora"))
    for identifier in (user["username"], user["username"].upper(), user["email"].upper()):
        body = await login(client, identifier)
        assert body["token_type"] == "bearer"


async def test_token_response_shape_and_no_store(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == runtime.settings.access_token_ttl_seconds
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url


def _comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body = response.json()
    body.pop("request_id")
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, body, headers


async def test_unknown_user_and_wrong_password_answer_identically(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    wrong = await client.post(
        "/auth/token", data={"username": user["username"], "password": "Wrong-Passw0rd!"}
    )
    unknown = await client.post(
        "/auth/token", data={"username": unique(), "password": "Wrong-Passw0rd!"}
    )
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert _comparable(wrong) == _comparable(unknown)


async def test_an_inactive_user_gets_403_only_with_the_right_password(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user = await register(client)
    await connection.execute(update(User).where(User.id == user["id"]).values(is_active=False))
    wrong = await client.post(
        "/auth/token", data={"username": user["username"], "password": "Wrong-Passw0rd!"}
    )
    assert wrong.status_code == 401
    right = await client.post(
        "/auth/token", data={"username": user["username"], "password": PASSWORD}
    )
    assert right.status_code == 403
    assert right.json()["code"] == "inactive_user"


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"username": "someone"},
        {"password": "x"},
        {"username": "", "password": "x"},
        {"username": "someone", "password": ""},
        {"username": "x" * 321, "password": "x"},
        {"username": "someone", "password": "x" * 1025},
    ],
)
async def test_malformed_login_forms_are_422(
    client: httpx.AsyncClient, form: dict[str, str]
) -> None:
    response = await client.post("/auth/token", data=form)
    assert response.status_code == 422


async def test_a_json_login_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", json={"username": "a", "password": "b"})
    assert response.status_code == 422


async def test_a_login_name_with_nul_is_just_unknown(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data={"username": "a\x00b", "password": "x"})
    assert response.status_code == 401


async def test_a_legacy_hash_is_upgraded_on_login(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user = await register(client)
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    await connection.execute(
        update(User).where(User.id == user["id"]).values(hashed_password=legacy)
    )
    await login(client, user["username"])
    stored = await connection.scalar(select(User.hashed_password).where(User.id == user["id"]))
    assert stored is not None
    assert stored.startswith("$bcrypt-sha256$")
    await login(client, user["username"])


# ------------------------------------------------------------------ me


async def test_me_returns_the_caller(client: httpx.AsyncClient) -> None:
    user, tokens = await user_with_token(client)
    response = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == user


async def test_me_without_a_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "x" * 10_000,
        "Ünïcödé.token.here",
    ],
)
async def test_me_with_a_bad_token_is_401_invalid_token(
    client: httpx.AsyncClient, token: str
) -> None:
    # Raw bytes: a hostile client is not limited to ASCII.
    response = await client.get("/auth/me", headers={b"Authorization": f"Bearer {token}".encode()})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def _signed(runtime: Runtime, **claims: Any) -> str:
    kid, key = await runtime.keyring.signing_key()
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": runtime.settings.issuer,
        "aud": "api",
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": "x",
        "roles": [],
    }
    base.update(claims)
    return jwt.encode(base, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "9999999999999999999"},  # beyond bigint
        {"sub": "0"},
        {"aud": "other"},
        {"iss": "https://evil.example.com"},
        {"exp": int(time.time()) - 3600},
    ],
)
async def test_me_rejects_well_signed_but_unacceptable_tokens(
    client: httpx.AsyncClient, runtime: Runtime, claims: dict[str, Any]
) -> None:
    token = await _signed(runtime, **claims)
    response = await client.get("/auth/me", headers=bearer(token))
    assert response.status_code == 401


async def test_a_token_of_a_deleted_user_is_401(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    headers = bearer(tokens["access_token"])
    assert (await client.delete("/users/me", headers=headers)).status_code == 200
    response = await client.get("/auth/me", headers=headers)
    assert response.status_code == 401


async def test_a_token_of_a_deactivated_user_is_403(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user, tokens = await user_with_token(client)
    await connection.execute(update(User).where(User.id == user["id"]).values(is_active=False))
    response = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 403


# ------------------------------------------------------------------ logout


async def test_logout_revokes_the_family(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    response = await client.post(
        "/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200
    assert response.json() == {"message": "Logged out"}
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


async def test_logout_needs_a_bearer_token(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    response = await client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401
    # Nothing was revoked.
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200


async def test_logout_cannot_revoke_another_users_family(client: httpx.AsyncClient) -> None:
    _, mine = await user_with_token(client)
    _, theirs = await user_with_token(client)
    response = await client.post(
        "/auth/logout",
        json={"refresh_token": theirs["refresh_token"]},
        headers=bearer(mine["access_token"]),
    )
    assert response.status_code == 200
    refreshed = await client.post("/auth/refresh", json={"refresh_token": theirs["refresh_token"]})
    assert refreshed.status_code == 200


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": "x" * 513}, []])
async def test_malformed_logout_bodies_are_422(client: httpx.AsyncClient, body: Any) -> None:
    _, tokens = await user_with_token(client)
    response = await client.post("/auth/logout", json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == 422
