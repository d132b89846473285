"""``/users/me/mfa/totp``, the ``mfa_required`` answer and the MFA grant on ``/auth/token``."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pyotp
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_service.mfa.grant import MFA_OTP_GRANT
from auth_service.models import MfaChallenge, RecoveryCode, TotpFactor, User

from ..conftest import PASSWORD, AppContext, FakeClock
from ..helpers import admin_with_token, bearer, login, register, user_with_token


async def enrol(client: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await client.post(
        "/users/me/mfa/totp", json={"password": PASSWORD}, headers=bearer(access_token)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def code_at(secret: str, clock: FakeClock, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now, counter_offset=offset)


async def enabled_user(
    client: httpx.AsyncClient, clock: FakeClock
) -> tuple[dict[str, Any], str, list[str]]:
    """A user with an active factor: (user, secret, recovery codes). Confirmed with the
    previous step's code (within the drift), so the current step's is still unused."""
    user, tokens = await user_with_token(client)
    secret = (await enrol(client, tokens["access_token"]))["secret"]
    response = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": code_at(secret, clock, -1)},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200, response.text
    return user, secret, response.json()["recovery_codes"]


async def mfa_token(client: httpx.AsyncClient, username: str, **form: str) -> str:
    response = await client.post(
        "/auth/token", data={"username": username, "password": PASSWORD, **form}
    )
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "mfa_required"
    assert body["code"] == "mfa_required"
    assert body["grant_type"] == MFA_OTP_GRANT
    assert response.headers["cache-control"] == "no-store"
    assert "refresh_token" not in body
    assert "access_token" not in body
    token: str = body["mfa_token"]
    return token


async def mfa_grant(client: httpx.AsyncClient, token: str, otp: str) -> httpx.Response:
    return await client.post(
        "/auth/token", data={"grant_type": MFA_OTP_GRANT, "mfa_token": token, "otp": otp}
    )


def amr(access_token: str) -> list[str]:
    claims = jwt.decode(access_token, options={"verify_signature": False})
    value: list[str] = claims["amr"]
    return value


async def test_enrolment_needs_the_password_and_answers_secret_uri_and_qr(
    client: httpx.AsyncClient,
) -> None:
    user, tokens = await user_with_token(client)
    wrong = await client.post(
        "/users/me/mfa/totp", json={"password": "nope"}, headers=bearer(tokens["access_token"])
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "incorrect_password"
    unauthenticated = await client.post("/users/me/mfa/totp", json={"password": PASSWORD})
    assert unauthenticated.status_code == 401

    body = await enrol(client, tokens["access_token"])
    assert len(base64.b32decode(body["secret"])) == 20
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert user["username"] in uri.path
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["auth-service"]
    assert body["qr_code"].startswith("data:image/svg+xml")
    assert (body["digits"], body["period"], body["algorithm"]) == (6, 30, "SHA1")


async def test_factor_is_active_only_after_confirmation(
    client: httpx.AsyncClient, clock: FakeClock, connection: AsyncConnection
) -> None:
    user, tokens = await user_with_token(client)
    secret = (await enrol(client, tokens["access_token"]))["secret"]
    # Pending: the password alone still signs in.
    assert (await login(client, user["username"]))["access_token"]

    headers = bearer(tokens["access_token"])
    wrong = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code_at(secret, clock, 5)}, headers=headers
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_otp"
    right = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code_at(secret, clock)}, headers=headers
    )
    assert right.status_code == 200
    codes = right.json()["recovery_codes"]
    assert len(codes) == 10 == len(set(codes))

    again = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": code_at(secret, clock, 1)}, headers=headers
    )
    assert again.status_code == 409
    reenrol = await client.post("/users/me/mfa/totp", json={"password": PASSWORD}, headers=headers)
    assert reenrol.status_code == 409
    assert reenrol.json()["code"] == "mfa_already_enabled"
    await mfa_token(client, user["username"])

    # Recovery codes are stored only hashed.
    stored = (
        await connection.execute(
            select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user["id"])
        )
    ).scalars()
    hashes = list(stored)
    assert len(hashes) == 10
    for code in codes:
        assert all(code.replace("-", "").encode() not in h for h in hashes)


async def test_wrong_current_passwords_count_as_failed_logins(app_context: AppContext) -> None:
    async with app_context(login_throttle_max_failures=2) as (_, client):
        user, tokens = await user_with_token(client)
        headers = bearer(tokens["access_token"])
        statuses = []
        for _ in range(3):
            response = await client.post(
                "/users/me/mfa/totp", json={"password": "nope"}, headers=headers
            )
            statuses.append(response.status_code)
        assert statuses == [400, 400, 429]
        locked = await client.post(
            "/auth/token", data={"username": user["username"], "password": PASSWORD}
        )
        assert locked.status_code == 429


async def test_confirm_without_enrolment_is_a_conflict(client: httpx.AsyncClient) -> None:
    _, tokens = await user_with_token(client)
    response = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": "123456"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "mfa_not_enrolled"


async def test_secret_is_encrypted_at_rest_with_the_key_passphrase(
    app_context: AppContext, clock: FakeClock, connection: AsyncConnection
) -> None:
    async with app_context(key_passphrase="a-long-test-passphrase") as (_, client):
        user, tokens = await user_with_token(client)
        secret = (await enrol(client, tokens["access_token"]))["secret"]
        row = (
            await connection.execute(
                select(TotpFactor.secret, TotpFactor.encrypted).where(
                    TotpFactor.user_id == user["id"]
                )
            )
        ).one()
        assert row.encrypted
        assert secret.encode() not in row.secret
        assert base64.b32decode(secret) not in row.secret
        # The sealed secret still works.
        response = await client.post(
            "/users/me/mfa/totp/confirm",
            json={"code": code_at(secret, clock)},
            headers=bearer(tokens["access_token"]),
        )
        assert response.status_code == 200


async def test_sign_in_with_a_code_and_amr_kept_across_refresh(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    user, secret, _ = await enabled_user(client, clock)
    token = await mfa_token(client, user["username"])

    # The mfa_token is no access token.
    me = await client.get("/users/me", headers=bearer(token))
    assert me.status_code == 401

    response = await mfa_grant(client, token, code_at(secret, clock))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert amr(body["access_token"]) == ["pwd", "otp", "mfa"]
    assert "scope" not in body  # as the seed-style password form it continues

    standard = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert standard.status_code == 200
    assert amr(standard.json()["access_token"]) == ["pwd", "otp", "mfa"]
    seed = await client.post(
        "/auth/refresh", json={"refresh_token": standard.json()["refresh_token"]}
    )
    assert seed.status_code == 200
    assert amr(seed.json()["access_token"]) == ["pwd", "otp", "mfa"]

    # The mfa_token was used up.
    again = await mfa_grant(client, token, code_at(secret, clock, 1))
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_password_tokens_say_pwd(client: httpx.AsyncClient) -> None:
    user = await register(client)
    assert amr((await login(client, user["username"]))["access_token"]) == ["pwd"]


async def test_a_code_is_accepted_once_per_step(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    user, secret, _ = await enabled_user(client, clock)
    code = code_at(secret, clock)
    first = await mfa_grant(client, await mfa_token(client, user["username"]), code)
    assert first.status_code == 200
    replay_token = await mfa_token(client, user["username"])
    replay = await mfa_grant(client, replay_token, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # Neither is the previous step's code (within the drift) once a later one was used.
    earlier = await mfa_grant(client, replay_token, code_at(secret, clock, -1))
    assert earlier.status_code == 400
    # The next step's code is fine with the same mfa_token.
    clock.advance(30)
    later = await mfa_grant(client, replay_token, code_at(secret, clock))
    assert later.status_code == 200


async def test_one_step_of_clock_drift(client: httpx.AsyncClient, clock: FakeClock) -> None:
    user, secret, _ = await enabled_user(client, clock)
    # Well past the confirmation's step, so only the drift refuses what follows.
    clock.advance(120)
    token = await mfa_token(client, user["username"])
    too_old = await mfa_grant(client, token, code_at(secret, clock, -2))
    assert too_old.status_code == 400
    too_new = await mfa_grant(client, token, code_at(secret, clock, 2))
    assert too_new.status_code == 400
    behind = await mfa_grant(client, token, code_at(secret, clock, -1))
    assert behind.status_code == 200
    token = await mfa_token(client, user["username"])
    too_old = await mfa_grant(client, token, code_at(secret, clock, -1))
    assert too_old.status_code == 400
    ahead = await mfa_grant(client, token, code_at(secret, clock, 1))
    assert ahead.status_code == 200


async def test_a_recovery_code_works_once(client: httpx.AsyncClient, clock: FakeClock) -> None:
    user, _, codes = await enabled_user(client, clock)
    token = await mfa_token(client, user["username"])
    # Case and separators do not matter.
    response = await mfa_grant(client, token, codes[0].lower().replace("-", " "))
    assert response.status_code == 200
    assert amr(response.json()["access_token"]) == ["pwd", "otp", "mfa"]
    again = await mfa_grant(client, await mfa_token(client, user["username"]), codes[0])
    assert again.status_code == 400
    other = await mfa_grant(client, await mfa_token(client, user["username"]), codes[1])
    assert other.status_code == 200


async def test_wrong_codes_are_throttled_per_account(
    app_context: AppContext, clock: FakeClock
) -> None:
    async with app_context(login_throttle_max_failures=3) as (_, client):
        user, secret, _ = await enabled_user(client, clock)
        token = await mfa_token(client, user["username"])
        statuses = [
            (await mfa_grant(client, token, wrong)).status_code
            for wrong in ("000000", "111111", "222222", "333333")
        ]
        assert statuses == [400, 400, 400, 429]
        right = await mfa_grant(client, token, code_at(secret, clock))
        assert right.status_code == 429
        assert "retry-after" in right.headers
        # A right password gets no fresh mfa_token meanwhile, and does not reset the count.
        login_again = await client.post(
            "/auth/token", data={"username": user["username"], "password": PASSWORD}
        )
        assert login_again.status_code == 429
        clock.advance(301)
        token = await mfa_token(client, user["username"])
        assert (await mfa_grant(client, token, code_at(secret, clock))).status_code == 200


async def test_mfa_token_expires(client: httpx.AsyncClient, clock: FakeClock) -> None:
    user, secret, _ = await enabled_user(client, clock)
    token = await mfa_token(client, user["username"])
    clock.advance(301)
    response = await mfa_grant(client, token, code_at(secret, clock))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_mfa_grant_form_errors(client: httpx.AsyncClient) -> None:
    missing = await client.post("/auth/token", data={"grant_type": MFA_OTP_GRANT, "otp": "1"})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    unknown = await mfa_grant(client, "not-a-token", "123456")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"


async def test_deactivation_deletion_and_admin_reset_void_mfa_tokens(
    client: httpx.AsyncClient,
    clock: FakeClock,
    connection: AsyncConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, admin_tokens = await admin_with_token(client, connection)
    admin_headers = bearer(admin_tokens["access_token"])

    deactivated, secret, _ = await enabled_user(client, clock)
    token = await mfa_token(client, deactivated["username"])
    response = await client.patch(
        f"/users/{deactivated['id']}", json={"is_active": False}, headers=admin_headers
    )
    assert response.status_code == 200
    assert (await mfa_grant(client, token, code_at(secret, clock))).status_code == 400

    deleted, secret, _ = await enabled_user(client, clock)
    token = await mfa_token(client, deleted["username"])
    response = await client.delete(f"/users/{deleted['id']}", headers=admin_headers)
    assert response.status_code == 200
    assert (await mfa_grant(client, token, code_at(secret, clock))).status_code == 400

    reset, secret, _ = await enabled_user(client, clock)
    token = await mfa_token(client, reset["username"])
    with caplog.at_level("INFO", logger="auth_service.mfa"):
        response = await client.delete(f"/users/{reset['id']}/mfa/totp", headers=admin_headers)
    assert response.status_code == 200
    [record] = [r for r in caplog.records if "reset by an administrator" in r.getMessage()]
    assert record.__dict__["user_id"] == reset["id"]
    assert secret not in caplog.text
    assert (await mfa_grant(client, token, code_at(secret, clock))).status_code == 400
    left = await connection.scalar(
        select(MfaChallenge.token_hash).where(MfaChallenge.user_id == reset["id"])
    )
    assert left is None
    # The password alone signs in again.
    tokens = await login(client, reset["username"])
    assert amr(tokens["access_token"]) == ["pwd"]
    again = await client.delete(f"/users/{reset['id']}/mfa/totp", headers=admin_headers)
    assert again.status_code == 409


async def test_admin_reset_needs_an_admin(client: httpx.AsyncClient, clock: FakeClock) -> None:
    user, _, _ = await enabled_user(client, clock)
    _, other = await user_with_token(client)
    response = await client.delete(
        f"/users/{user['id']}/mfa/totp", headers=bearer(other["access_token"])
    )
    assert response.status_code == 403


async def test_a_deactivated_users_token_cannot_finish_even_if_reactivated(
    client: httpx.AsyncClient, clock: FakeClock, connection: AsyncConnection
) -> None:
    user, secret, _ = await enabled_user(client, clock)
    token = await mfa_token(client, user["username"])
    await connection.execute(update(User).where(User.id == user["id"]).values(is_active=False))
    assert (await mfa_grant(client, token, code_at(secret, clock))).status_code == 400


async def test_disable_needs_password_and_a_code(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    user, secret, codes = await enabled_user(client, clock)
    token = await mfa_token(client, user["username"])
    tokens = (await mfa_grant(client, token, code_at(secret, clock))).json()
    headers = bearer(tokens["access_token"])
    clock.advance(30)

    async def disable(body: dict[str, str]) -> httpx.Response:
        return await client.request("DELETE", "/users/me/mfa/totp", json=body, headers=headers)

    wrong_password = await disable({"password": "nope", "otp": code_at(secret, clock)})
    assert wrong_password.status_code == 400
    assert wrong_password.json()["code"] == "incorrect_password"
    wrong_code = await disable({"password": PASSWORD, "otp": "000000"})
    assert wrong_code.status_code == 400
    assert wrong_code.json()["code"] == "invalid_otp"
    missing = await disable({"password": PASSWORD})
    assert missing.status_code == 422
    right = await disable({"password": PASSWORD, "otp": codes[3]})
    assert right.status_code == 200
    assert amr((await login(client, user["username"]))["access_token"]) == ["pwd"]
    again = await disable({"password": PASSWORD, "otp": code_at(secret, clock)})
    assert again.status_code == 409
    assert again.json()["code"] == "mfa_not_enabled"


async def test_a_secret_sealed_under_another_passphrase_is_a_503(
    app_context: AppContext, clock: FakeClock
) -> None:
    async with app_context(key_passphrase="the-first-passphrase") as (_, client):
        user, secret, _ = await enabled_user(client, clock)
    async with app_context(key_passphrase="another-passphrase-2") as (_, client):
        token = await mfa_token(client, user["username"])
        response = await mfa_grant(client, token, code_at(secret, clock))
        assert response.status_code == 503
        assert response.json()["code"] == "mfa_unavailable"
        assert secret not in response.text


async def test_two_replicas_accept_one_code_once(
    app_context: AppContext, clock: FakeClock, fresh_database_url: str
) -> None:
    """Two apps on one database (as replicas are), each given the same code at once."""
    import asyncio

    async with (
        app_context(use_database=False, database_url=fresh_database_url) as (_, one),
        app_context(use_database=False, database_url=fresh_database_url) as (_, two),
    ):
        user, secret, _ = await enabled_user(one, clock)
        tokens = [await mfa_token(c, user["username"]) for c in (one, two)]
        code = code_at(secret, clock)
        for _ in range(3):
            answers = await asyncio.gather(
                mfa_grant(one, tokens[0], code), mfa_grant(two, tokens[1], code)
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 400], [a.text for a in answers]
            # The winner's mfa_token is used up; give that replica a fresh one, next step.
            tokens = [
                tokens[i] if answers[i].status_code == 400 else await mfa_token(c, user["username"])
                for i, c in enumerate((one, two))
            ]
            clock.advance(30)
            code = code_at(secret, clock)


async def test_the_mfa_grant_belongs_to_the_client_of_the_login(
    client: httpx.AsyncClient, clock: FakeClock, connection: AsyncConnection
) -> None:
    from ..oauth.test_router import basic, new_client

    registered = await new_client(
        client, connection, grant_types=["password", "refresh_token"], scopes=["items:read"]
    )
    auth = basic(registered["client_id"], registered["client_secret"])
    user, secret, _ = await enabled_user(client, clock)
    first = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user["username"], "password": PASSWORD},
        headers=auth,
    )
    assert first.status_code == 401
    token = first.json()["mfa_token"]
    # Not from another client (here the first-party one)...
    elsewhere = await mfa_grant(client, token, code_at(secret, clock))
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_grant"
    # ... but from the login's own, with what that login was granted.
    own = await client.post(
        "/auth/token",
        data={"grant_type": MFA_OTP_GRANT, "mfa_token": token, "otp": code_at(secret, clock, 1)},
        headers=auth,
    )
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["scope"] == "items:read"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == registered["client_id"]
    assert claims["amr"] == ["pwd", "otp", "mfa"]


async def test_a_client_without_the_password_grant_may_not_use_the_mfa_grant(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    from ..oauth.test_router import basic, new_client

    registered = await new_client(client, connection)  # client_credentials only
    response = await client.post(
        "/auth/token",
        data={"grant_type": MFA_OTP_GRANT, "mfa_token": "x", "otp": "123456"},
        headers=basic(registered["client_id"], registered["client_secret"]),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
