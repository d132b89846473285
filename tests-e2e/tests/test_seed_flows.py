"""The seed document's own flows, through the gateway."""

from __future__ import annotations

import jwt

from e2e.api import STRONG_PASSWORD, Client, Tokens, assert_envelope, unique_username


def test_register_login_and_me(client: Client) -> None:
    user = client.register()
    assert "password" not in user
    assert "hashed_password" not in user
    assert {"id", "username", "email", "full_name", "is_active", "is_admin", "created_at"} <= set(
        user
    )
    assert user["is_active"] is True
    assert user["is_admin"] is False

    response = client.login_response(user["username"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] > 0
    assert body["refresh_token"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}

    me = client.get("/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["username"] == user["username"]
    assert me.headers.get("x-request-id")


def test_login_by_email_case_insensitive(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["email"].upper())
    assert client.get("/auth/me", headers=tokens.headers).json()["id"] == user["id"]


def test_duplicate_username_and_email(client: Client) -> None:
    user = client.register()
    again = client.post(
        "/auth/register",
        json={
            "username": user["username"].upper(),
            "email": f"other_{user['email']}",
            "password": STRONG_PASSWORD,
        },
    )
    assert_envelope(again, 400, "username_taken")
    again = client.post(
        "/auth/register",
        json={"username": unique_username(), "email": user["email"], "password": STRONG_PASSWORD},
    )
    assert_envelope(again, 400, "email_taken")


def test_invalid_login_is_401(client: Client) -> None:
    user = client.register()
    wrong = client.login_response(user["username"], "Wr0ng!Password")
    assert_envelope(wrong, 401)
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    unknown = client.login_response(unique_username(), "Wr0ng!Password")
    assert_envelope(unknown, 401)
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_weak_password_lists_every_failed_rule(client: Client) -> None:
    response = client.post(
        "/auth/register",
        json={"username": unique_username(), "email": "weak@example.com", "password": "short"},
    )
    assert_envelope(response, 422)
    text = response.text.lower()
    for rule in ("8", "upper", "digit", "special"):
        assert rule in text, rule


def test_item_crud(client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    item = client.create_item(tokens, "first", description="desc")
    assert item["owner_id"] == user["id"]
    assert {"id", "title", "description", "owner_id", "created_at", "updated_at"} <= set(item)

    got = client.get(f"/items/{item['id']}")
    assert got.status_code == 200
    assert got.json()["title"] == "first"
    assert got.headers.get("etag")

    mine = client.get("/items/my-items", headers=tokens.headers)
    assert mine.status_code == 200
    assert [i["id"] for i in mine.json()] == [item["id"]]

    listed = client.get("/items/", params={"limit": 100})
    assert listed.status_code == 200
    assert int(listed.headers["x-total-count"]) >= 1

    updated = client.put(f"/items/{item['id']}", json={"title": "renamed"}, headers=tokens.headers)
    assert updated.status_code == 200
    assert updated.json()["title"] == "renamed"
    assert updated.json()["description"] == "desc"  # partial update keeps unset fields

    patched = client.patch(
        f"/items/{item['id']}", json={"description": "new"}, headers=tokens.headers
    )
    assert patched.status_code == 200
    assert patched.json() | {"updated_at": None} == updated.json() | {
        "description": "new",
        "updated_at": None,
    }

    deleted = client.delete(f"/items/{item['id']}", headers=tokens.headers)
    assert deleted.status_code == 200
    assert "message" in deleted.json()
    assert_envelope(client.get(f"/items/{item['id']}"), 404, "not_found")


def test_unauthorized_requests_are_401(client: Client) -> None:
    for method, path in [
        ("GET", "/auth/me"),
        ("GET", "/users/me"),
        ("GET", "/items/my-items"),
        ("POST", "/items/"),
        ("PUT", "/items/1"),
        ("DELETE", "/items/1"),
        ("GET", "/users/"),
    ]:
        response = client.request(method, path, json={"title": "x"})
        assert_envelope(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), path
        bad = client.request(
            method, path, json={"title": "x"}, headers={"Authorization": "Bearer not.a.jwt"}
        )
        assert_envelope(bad, 401)
        assert 'error="invalid_token"' in bad.headers["www-authenticate"], path


def test_ownership_rules(client: Client, admin_tokens: Tokens) -> None:
    owner = client.register()
    other = client.register()
    owner_tokens = client.login(owner["username"])
    other_tokens = client.login(other["username"])
    item = client.create_item(owner_tokens, "mine")

    path = f"/items/{item['id']}"
    assert_envelope(client.put(path, json={"title": "x"}, headers=other_tokens.headers), 403)
    assert_envelope(client.delete(path, headers=other_tokens.headers), 403)
    assert client.get(path).json()["title"] == "mine"

    by_admin = client.patch(path, json={"title": "moderated"}, headers=admin_tokens.headers)
    assert by_admin.status_code == 200
    assert by_admin.json()["owner_id"] == owner["id"]
    assert client.delete(path, headers=admin_tokens.headers).status_code == 200


def test_admin_only_user_management(client: Client, admin_tokens: Tokens) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    assert_envelope(client.get("/users/", headers=tokens.headers), 403)
    listed = client.get("/users/", params={"limit": 5}, headers=admin_tokens.headers)
    assert listed.status_code == 200
    assert len(listed.json()) <= 5

    path = f"/users/{user['id']}"
    assert client.get(path, headers=admin_tokens.headers).json()["username"] == user["username"]
    deactivated = client.patch(path, json={"is_active": False}, headers=admin_tokens.headers)
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False
    assert_envelope(client.login_response(user["username"]), 403)


def test_not_found_and_validation_envelopes(client: Client) -> None:
    assert_envelope(client.get("/items/999999999"), 404, "not_found")
    assert_envelope(client.get("/items/", params={"limit": 0}), 422, "validation_error")
    assert_envelope(client.get("/items/", params={"limit": 101}), 422, "validation_error")
    assert_envelope(client.get("/items/", params={"skip": -1}), 422, "validation_error")
    assert_envelope(client.get("/items/not-a-number"), 422, "validation_error")


def test_public_documents(client: Client) -> None:
    for path in ("/docs/auth", "/docs/items"):
        response = client.get(path)
        assert response.status_code == 200
        assert "html" in response.headers["content-type"]
    for path in ("/openapi/auth.json", "/openapi/items.json"):
        assert client.get(path).json()["openapi"].startswith("3.")
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"]
    assert "max-age" in jwks.headers["cache-control"]
    meta = client.get("/.well-known/oauth-authorization-server").json()
    assert {"password", "refresh_token"} <= set(meta["grant_types_supported"])
    user = client.register()
    tokens = client.login(user["username"])
    assert (
        jwt.decode(tokens.access_token, options={"verify_signature": False})["iss"]
        == meta["issuer"]
    )
    assert client.get("/").status_code == 200
