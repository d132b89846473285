"""OAuth2 through the gateway with a standard client library (Authlib), configured only from
the RFC 8414 metadata: password, standard refresh, client credentials, revocation,
introspection and an ``insufficient_scope`` refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from e2e.api import STRONG_PASSWORD, Client, ClientFactory, Tokens, next_source_address

PUBLIC_CLIENT = "first-party"


def oauth_client(base_url: str, **kwargs: Any) -> OAuth2Client:
    """An Authlib client (on httpx2, its HTTP client) with a loopback source address of its
    own (the gateway's login limit is per address)."""
    transport = httpx2.HTTPTransport(local_address=next_source_address(), retries=0)
    return OAuth2Client(base_url=base_url, transport=transport, timeout=15.0, **kwargs)


def registered_oauth_client(
    base_url: str, registered: dict[str, Any], **kwargs: Any
) -> OAuth2Client:
    """:func:`oauth_client` authenticating as the registered client ``registered``."""
    return oauth_client(
        base_url,
        client_id=registered["client_id"],
        client_secret=registered["client_secret"],
        **kwargs,
    )


@pytest.fixture(scope="module")
def published_metadata(base_url: str) -> dict[str, Any]:
    """The RFC 8414 document as served."""
    response = httpx.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def metadata(base_url: str, published_metadata: dict[str, Any]) -> dict[str, Any]:
    """The document with its endpoints as this test process reaches them.

    The endpoints start with the issuer, the public URL. The suite may reach the same
    gateway at another address (``make compose-test`` talks to the gateway container on the
    compose network, so that every client keeps its own source address, while the issuer is
    the published URL): the issuer's origin is then replaced by ``base_url``'s, like a client
    behind split-horizon DNS. Locally the two are the same and nothing changes."""
    issuer = published_metadata["issuer"].rstrip("/")
    reachable = dict(published_metadata)
    for name, value in published_metadata.items():
        if name.endswith(("_endpoint", "_uri")) and isinstance(value, str):
            assert value.startswith(issuer), (name, value)
            reachable[name] = base_url.rstrip("/") + value.removeprefix(issuer)
    return reachable


@pytest.fixture
def user(client: Client) -> dict[str, Any]:
    return client.register()


@pytest.fixture
def service_client(
    client_factory: ClientFactory, admin_credentials: tuple[str, str]
) -> Iterator[dict[str, Any]]:
    """A registered client for a moderation bot, made by an administrator over HTTP."""
    admin = client_factory()
    tokens = admin.login(*admin_credentials)
    response = admin.post(
        "/clients",
        json={
            "name": "moderation bot",
            "grant_types": ["client_credentials"],
            "scopes": ["items:read", "items:moderate"],
        },
        headers=tokens.headers,
    )
    assert response.status_code == 200, response.text
    registered: dict[str, Any] = response.json()
    yield registered
    admin.delete(f"/clients/{registered['client_id']}", headers=tokens.headers)


# No authorization endpoint is served (no grant uses one), so RFC 8414 allows both to be
# absent/empty; Authlib's validators assume every server has them.
_NOT_APPLICABLE = {"validate_authorization_endpoint", "validate_response_types_supported"}


def test_the_metadata_validates_and_lists_what_is_served(
    published_metadata: dict[str, Any],
) -> None:
    checked = AuthorizationServerMetadata(published_metadata)
    validators = [
        name for name in dir(checked) if name.startswith("validate_") and name != "validate"
    ]
    assert len(validators) > 10
    for name in validators:
        if name not in _NOT_APPLICABLE:
            getattr(checked, name)()
    assert published_metadata["response_types_supported"] == []
    assert "authorization_endpoint" not in published_metadata
    assert set(published_metadata["grant_types_supported"]) == {
        "password",
        "refresh_token",
        "client_credentials",
        "urn:auth-service:params:oauth:grant-type:mfa-otp",
    }
    assert {"items:read", "items:write", "items:moderate", "users:admin"} == set(
        published_metadata["scopes_supported"]
    )
    for name in ("token_endpoint", "revocation_endpoint", "introspection_endpoint", "jwks_uri"):
        assert published_metadata[name].startswith(published_metadata["issuer"])


def test_password_grant_and_standard_refresh(
    base_url: str, metadata: dict[str, Any], user: dict[str, Any]
) -> None:
    token_endpoint = metadata["token_endpoint"]
    with oauth_client(base_url, client_id=PUBLIC_CLIENT, scope="items:read items:write") as oauth:
        token = oauth.fetch_token(
            token_endpoint, username=user["username"], password=STRONG_PASSWORD
        )
        assert token["token_type"] == "bearer"
        assert token["scope"] == "items:read items:write"
        first_refresh = token["refresh_token"]
        # the library attaches the token to requests
        created = oauth.post("/items/", json={"title": "from authlib"})
        assert created.status_code == 200, created.text

        refreshed = oauth.refresh_token(token_endpoint)
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] != first_refresh
        mine = oauth.get("/items/my-items")
        assert mine.status_code == 200
        assert [i["title"] for i in mine.json()] == ["from authlib"]

        # the used refresh token is refused in RFC 6749 §5.2 form, and the family revoked
        with pytest.raises(OAuthError) as reused:
            oauth.refresh_token(token_endpoint, refresh_token=first_refresh)
        assert reused.value.error == "invalid_grant"
        with pytest.raises(OAuthError):
            oauth.refresh_token(token_endpoint, refresh_token=refreshed["refresh_token"])


def test_a_bad_password_is_an_oauth_error(
    base_url: str, metadata: dict[str, Any], user: dict[str, Any]
) -> None:
    with oauth_client(base_url, client_id=PUBLIC_CLIENT) as oauth, pytest.raises(OAuthError) as bad:
        oauth.fetch_token(
            metadata["token_endpoint"], username=user["username"], password="Wr0ng!Passw0rd"
        )
    assert bad.value.error == "invalid_grant"


def test_insufficient_scope_is_refused_with_the_rfc_6750_challenge(
    base_url: str, metadata: dict[str, Any], user: dict[str, Any]
) -> None:
    with oauth_client(base_url, client_id=PUBLIC_CLIENT, scope="items:read") as oauth:
        token = oauth.fetch_token(
            metadata["token_endpoint"], username=user["username"], password=STRONG_PASSWORD
        )
        assert token["scope"] == "items:read"
        assert oauth.get("/items/my-items").status_code == 200
        refused = oauth.post("/items/", json={"title": "nope"})
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="items:write"'
    )
    assert refused.json()["error"] == "insufficient_scope"


def test_client_credentials_moderate_items_and_never_pass_for_a_user(
    base_url: str,
    metadata: dict[str, Any],
    service_client: dict[str, Any],
    client: Client,
    user: dict[str, Any],
) -> None:
    owner_tokens = client.login(user["username"])
    item = client.create_item(owner_tokens, title="spam")
    with registered_oauth_client(base_url, service_client, scope="items:moderate") as bot:
        token = bot.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert token["scope"] == "items:moderate"
        assert "refresh_token" not in token
        moderated = bot.patch(f"/items/{item['id']}", json={"title": "[removed]"})
        assert moderated.status_code == 200, moderated.text
        assert moderated.json()["owner_id"] == user["id"]
        assert bot.get("/auth/me").status_code == 403
        assert bot.get("/items/my-items").status_code == 403
        assert bot.post("/items/", json={"title": "mine?"}).status_code == 403
        assert bot.delete(f"/items/{item['id']}").status_code == 200


def test_a_wrong_client_secret_and_an_unknown_client_answer_alike(
    base_url: str, metadata: dict[str, Any], service_client: dict[str, Any]
) -> None:
    answers = []
    for client_id, secret in (
        (service_client["client_id"], "not-the-secret"),
        ("svc_ffffffffffffffff", "not-the-secret"),
    ):
        with oauth_client(base_url, client_id=client_id, client_secret=secret) as bot:
            with pytest.raises(OAuthError) as refused:
                bot.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
            assert refused.value.error == "invalid_client"
            raw = bot.post(
                metadata["token_endpoint"],
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )
        body = raw.json()
        body.pop("request_id")
        answers.append((raw.status_code, body, raw.headers.get("www-authenticate")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_revoked_access_token_is_refused_by_items_service_within_2_s(
    base_url: str, metadata: dict[str, Any], user: dict[str, Any]
) -> None:
    with oauth_client(base_url, client_id=PUBLIC_CLIENT) as oauth:
        token = oauth.fetch_token(
            metadata["token_endpoint"], username=user["username"], password=STRONG_PASSWORD
        )
        assert oauth.get("/items/my-items").status_code == 200
        revoked = oauth.revoke_token(
            metadata["revocation_endpoint"],
            token=token["access_token"],
            token_type_hint="access_token",
        )
        assert revoked.status_code == 200
        started = time.monotonic()
        status = 200
        while time.monotonic() - started < 2.0:
            status = oauth.get("/items/my-items").status_code
            if status == 401:
                break
            time.sleep(0.05)
        assert status == 401, "items-service still accepts the revoked token after 2 s"
        # revoking the refresh token revokes its family
        assert (
            oauth.revoke_token(
                metadata["revocation_endpoint"],
                token=token["refresh_token"],
                token_type_hint="refresh_token",
            ).status_code
            == 200
        )
        with pytest.raises(OAuthError):
            oauth.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])


def test_introspection_by_a_registered_client(
    base_url: str,
    metadata: dict[str, Any],
    service_client: dict[str, Any],
    client: Client,
    user: dict[str, Any],
) -> None:
    tokens: Tokens = client.login(user["username"])
    with registered_oauth_client(base_url, service_client) as resource_server:
        endpoint = metadata["introspection_endpoint"]
        active = resource_server.introspect_token(endpoint, token=tokens.access_token)
        assert active.status_code == 200
        body = active.json()
        assert body["active"] is True
        assert body["sub"] == str(user["id"])
        assert body["client_id"] == PUBLIC_CLIENT
        assert body["username"] == user["username"]
        client.post("/auth/revoke", data={"token": tokens.access_token})
        assert resource_server.introspect_token(endpoint, token=tokens.access_token).json() == {
            "active": False
        }
    # without client authentication there is no introspection
    anonymous = client.post(endpoint, data={"token": tokens.access_token})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"


def test_a_client_made_without_a_client_id_logs_in_and_refreshes(
    base_url: str, metadata: dict[str, Any], user: dict[str, Any]
) -> None:
    with oauth_client(base_url) as oauth:
        token = oauth.fetch_token(
            metadata["token_endpoint"], username=user["username"], password=STRONG_PASSWORD
        )
        assert token["scope"] == "items:read items:write"
        refreshed = oauth.refresh_token(metadata["token_endpoint"])
        assert refreshed["access_token"] != token["access_token"]
