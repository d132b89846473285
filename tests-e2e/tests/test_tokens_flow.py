"""Refresh rotation, logout and reuse detection through the gateway."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from e2e.api import Client, assert_envelope


def test_refresh_rotates_and_reuse_revokes_the_family(client: Client) -> None:
    user = client.register()
    first = client.login(user["username"])

    rotated = client.refresh_response(first.refresh_token)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    second = rotated.json()
    assert second["refresh_token"] != first.refresh_token
    assert (
        client.get(
            "/auth/me", headers={"Authorization": f"Bearer {second['access_token']}"}
        ).status_code
        == 200
    )

    # Reusing the used token is theft: 401, and the whole family dies with it.
    assert_envelope(client.refresh_response(first.refresh_token), 401)
    assert_envelope(client.refresh_response(second["refresh_token"]), 401)


def test_concurrent_refreshes_exactly_one_wins(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    with ThreadPoolExecutor(4) as pool:
        statuses = list(
            pool.map(lambda _: client.refresh_response(tokens.refresh_token).status_code, range(4))
        )
    assert sorted(statuses) == [200, 401, 401, 401]


def test_logout_revokes_the_family(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    response = client.post(
        "/auth/logout", json={"refresh_token": tokens.refresh_token}, headers=tokens.headers
    )
    assert response.status_code == 200
    assert_envelope(client.refresh_response(tokens.refresh_token), 401)


def test_password_change_requires_current_password_and_revokes_refresh(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    new_password = "N3w!Passw0rd-x"
    refused = client.put("/users/me", json={"password": new_password}, headers=tokens.headers)
    assert refused.status_code in (400, 422), refused.text
    changed = client.put(
        "/users/me",
        json={"password": new_password, "current_password": "Str0ng!Passw0rd"},
        headers=tokens.headers,
    )
    assert changed.status_code == 200, changed.text
    assert_envelope(client.refresh_response(tokens.refresh_token), 401)
    assert client.login(user["username"], new_password).access_token
