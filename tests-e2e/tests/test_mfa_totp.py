"""Two-factor sign-in (TOTP, RFC 6238) through the gateway, codes computed here with pyotp.

Enrol, confirm, sign in with the MFA grant, a replayed code refused, a recovery code good
once, wrong codes throttled per account, ``amr`` in the tokens and kept by refresh, disable;
deactivation, deletion and an administrator's reset void outstanding ``mfa_token``s.

``/auth/token`` is rate-limited per source address by the gateway, so every token request
goes out from a fresh address (``Addresses``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pyotp
import pytest

from e2e.api import STRONG_PASSWORD, Client, Tokens, assert_envelope

MFA_GRANT = "urn:auth-service:params:oauth:grant-type:mfa-otp"
ClientFactory = Callable[[], Client]


class Addresses:
    """A new client (source address) for every few token requests."""

    def __init__(self, make: ClientFactory, per_address: int = 4) -> None:
        self._make = make
        self._per_address = per_address
        self._used = per_address
        self._client: Client | None = None

    def token(self, **form: str) -> httpx.Response:
        if self._client is None or self._used >= self._per_address:
            self._client = self._make()
            self._used = 0
        self._used += 1
        return self._client.post("/auth/token", data=form)


@pytest.fixture
def addresses(client_factory: ClientFactory) -> Addresses:
    return Addresses(client_factory)


def code(secret: str, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time(), counter_offset=offset)


def start_of_a_step(budget: float = 12.0) -> None:
    """Wait, if need be, until at least ``budget`` seconds of the current step remain, so a
    test's codes for the previous, current and next step stay within the server's drift."""
    left = 30 - time.time() % 30
    if left < budget:
        time.sleep(left + 0.2)


def amr(tokens: dict[str, Any]) -> list[str]:
    value: list[str] = jwt.decode(tokens["access_token"], options={"verify_signature": False})[
        "amr"
    ]
    return value


def password_login(addresses: Addresses, username: str) -> httpx.Response:
    return addresses.token(username=username, password=STRONG_PASSWORD)


def mfa_token(addresses: Addresses, username: str) -> str:
    response = password_login(addresses, username)
    assert_envelope(response, 401, "mfa_required")
    body = response.json()
    assert body["error"] == "mfa_required"
    assert "access_token" not in body
    token: str = body["mfa_token"]
    return token


def mfa_grant(addresses: Addresses, token: str, otp: str) -> httpx.Response:
    return addresses.token(grant_type=MFA_GRANT, mfa_token=token, otp=otp)


def enable(client: Client, tokens: Tokens) -> tuple[str, list[str]]:
    """Enrol and confirm (with the previous step's code); the secret and recovery codes."""
    enrolled = client.post(
        "/users/me/mfa/totp", json={"password": STRONG_PASSWORD}, headers=tokens.headers
    )
    assert enrolled.status_code == 200, enrolled.text
    secret: str = enrolled.json()["secret"]
    confirmed = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(secret, -1)}, headers=tokens.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recovery_codes"]
    return secret, codes


def test_metadata_lists_the_mfa_grant(client: Client) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json()
    assert MFA_GRANT in meta["grant_types_supported"]


def test_enrol_sign_in_replay_recovery_refresh_and_disable(
    client: Client, addresses: Addresses
) -> None:
    start_of_a_step()
    user = client.register()
    username = user["username"]
    first = password_login(addresses, username)
    assert first.status_code == 200
    assert amr(first.json()) == ["pwd"]
    tokens = Tokens(first.json()["access_token"], first.json()["refresh_token"])

    enrolled = client.post(
        "/users/me/mfa/totp", json={"password": STRONG_PASSWORD}, headers=tokens.headers
    )
    assert enrolled.status_code == 200
    body = enrolled.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert body["qr_code"].startswith("data:image/svg+xml")
    secret = body["secret"]
    # Not active before confirmation.
    assert password_login(addresses, username).status_code == 200
    wrong = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(secret, 10)}, headers=tokens.headers
    )
    assert_envelope(wrong, 400, "invalid_otp")
    confirmed = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(secret, -1)}, headers=tokens.headers
    )
    assert confirmed.status_code == 200
    recovery = confirmed.json()["recovery_codes"]
    assert len(set(recovery)) == 10

    token = mfa_token(addresses, username)
    # An mfa_token is no access token, at either service.
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    created = client.post(
        "/items/", json={"title": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 401

    now = code(secret)
    signed_in = mfa_grant(addresses, token, now)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.headers["cache-control"] == "no-store"
    assert amr(signed_in.json()) == ["pwd", "otp", "mfa"]
    assert client.get("/users/me", headers=Tokens(**_pair(signed_in)).headers).status_code == 200

    replayed = mfa_grant(addresses, mfa_token(addresses, username), now)
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"
    assert mfa_grant(addresses, mfa_token(addresses, username), code(secret, 1)).status_code == 200

    refreshed = addresses.token(
        grant_type="refresh_token", refresh_token=signed_in.json()["refresh_token"]
    )
    assert refreshed.status_code == 200
    assert amr(refreshed.json()) == ["pwd", "otp", "mfa"]

    by_recovery = mfa_grant(addresses, mfa_token(addresses, username), recovery[0])
    assert by_recovery.status_code == 200
    assert amr(by_recovery.json()) == ["pwd", "otp", "mfa"]
    again = mfa_grant(addresses, mfa_token(addresses, username), recovery[0])
    assert again.status_code == 400

    headers = Tokens(**_pair(by_recovery)).headers
    no_code = client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"password": STRONG_PASSWORD, "otp": "000000"},
        headers=headers,
    )
    assert_envelope(no_code, 400, "invalid_otp")
    disabled = client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"password": STRONG_PASSWORD, "otp": recovery[1]},
        headers=headers,
    )
    assert disabled.status_code == 200
    after = password_login(addresses, username)
    assert after.status_code == 200
    assert amr(after.json()) == ["pwd"]


def _pair(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    return {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}


def test_wrong_codes_are_throttled_per_account(client: Client, addresses: Addresses) -> None:
    start_of_a_step()
    user = client.register()
    secret, _ = enable(client, client.login(user["username"]))
    token = mfa_token(addresses, user["username"])
    statuses = [
        mfa_grant(addresses, token, wrong).status_code
        for wrong in ("000000", "111111", "222222", "333333", "444444", "555555")
    ]
    # The stack's account throttle: 5 failures (AUTH_LOGIN_THROTTLE_MAX_FAILURES).
    assert statuses == [400, 400, 400, 400, 400, 429]
    right = mfa_grant(addresses, token, code(secret))
    assert_envelope(right, 429, "too_many_attempts")
    assert "retry-after" in right.headers
    assert password_login(addresses, user["username"]).status_code == 429


def test_deactivation_deletion_and_reset_void_mfa_tokens(
    client: Client, addresses: Addresses, admin_tokens: Tokens
) -> None:
    start_of_a_step(20)
    admin = admin_tokens.headers
    for action in ("deactivate", "delete", "delete_me", "reset"):
        user = client.register()
        tokens = client.login(user["username"])
        secret, _ = enable(client, tokens)
        token = mfa_token(addresses, user["username"])
        path = f"/users/{user['id']}"
        if action == "deactivate":
            response = client.patch(path, json={"is_active": False}, headers=admin)
        elif action == "delete":
            response = client.delete(path, headers=admin)
        elif action == "delete_me":
            response = client.delete("/users/me", headers=tokens.headers)
        else:
            response = client.delete(f"{path}/mfa/totp", headers=admin)
        assert response.status_code == 200, (action, response.text)
        voided = mfa_grant(addresses, token, code(secret))
        assert voided.status_code == 400, action
        assert voided.json()["error"] == "invalid_grant"
        if action == "reset":
            plain = password_login(addresses, user["username"])
            assert plain.status_code == 200
            assert amr(plain.json()) == ["pwd"]
