"""Password reset and email verification through the gateway, with real mail: the messages
are read back from the stack's local SMTP server's store."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from devstack.stack import Stack
from e2e.api import Client, ClientFactory, assert_envelope, unique_username
from e2e.mail import (
    RESET_SUBJECT,
    VERIFY_SUBJECT,
    link_token,
    messages_to,
    wait_for_message,
)

pytestmark = pytest.mark.needs_stack

NEW_PASSWORD = "N3w!Passw0rd-e2e"
VOLATILE_HEADERS = {"x-request-id", "date", "content-length"}


def reset_token(stack: Stack, address: str, count: int = 1) -> str:
    message = wait_for_message(stack.mail_dir, address, RESET_SUBJECT, count=count)
    return link_token(message, stack.base_url, "/reset-password")


def verify_token(stack: Stack, address: str, count: int = 1) -> str:
    message = wait_for_message(stack.mail_dir, address, VERIFY_SUBJECT, count=count)
    return link_token(message, stack.base_url, "/verify-email")


def test_password_reset_end_to_end(live_stack: Stack, client: Client) -> None:
    user = client.register()
    old = client.login(user["username"])
    response = client.post("/auth/password-reset", json={"email": user["email"]})
    assert response.status_code == 202
    token = reset_token(live_stack, user["email"])

    weak = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "weak"}
    )
    assert_envelope(weak, 422)
    done = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text

    # Single use.
    again = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_envelope(again, 400, "invalid_token")
    unknown = client.post(
        "/auth/password-reset/confirm", json={"token": "A" * 43, "new_password": NEW_PASSWORD}
    )
    assert_envelope(unknown, 400, "invalid_token")
    assert unknown.json()["detail"] == again.json()["detail"]

    # Every session of before the reset is over.
    assert_envelope(client.refresh_response(old.refresh_token), 401)
    assert client.login_response(user["username"]).status_code == 401
    client.login(user["username"], NEW_PASSWORD)


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in VOLATILE_HEADERS}
    return response.status_code, response.content, headers


def test_an_unknown_account_is_indistinguishable(
    live_stack: Stack, client: Client, client_factory: ClientFactory
) -> None:
    user = client.register()
    known_body = {"email": user["email"]}
    unknown_body = {"email": f"{unique_username('nobody')}@example.com"}

    def clients() -> Iterator[Client]:
        while True:  # two requests per client address: the gateway's limit stays out of it
            yield client_factory()

    known_times: list[float] = []
    unknown_times: list[float] = []
    first: dict[str, tuple[int, bytes, dict[str, str]]] = {}
    source = clients()
    for i in range(60):
        c = next(source)
        c.get("/")  # a warm connection: the handshake is timed for neither kind
        order = [("known", known_body), ("unknown", unknown_body)]
        if i % 2:
            order.reverse()
        for kind, body in order:
            started = time.perf_counter()
            response = c.post("/auth/password-reset", json=body)
            elapsed = time.perf_counter() - started
            assert response.status_code == 202
            (known_times if kind == "known" else unknown_times).append(elapsed)
            first.setdefault(kind, _comparable(response))
    assert first["known"] == first["unknown"]
    known, unknown = statistics.median(known_times), statistics.median(unknown_times)
    assert abs(known - unknown) <= 0.10 * max(known, unknown), (known, unknown)
    # The known account got mail (the per-account throttle keeps it to a few messages).
    wait_for_message(live_stack.mail_dir, user["email"], RESET_SUBJECT)
    assert len(messages_to(live_stack.mail_dir, user["email"], RESET_SUBJECT)) <= 3


def test_email_verification(live_stack: Stack, client: Client) -> None:
    user = client.register()
    assert user["email_verified"] is False
    tokens = client.login(user["username"])
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["email_verified"] is False

    token = verify_token(live_stack, user["email"])
    response = client.post("/auth/verify-email", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json()["email_verified"] is True
    assert_envelope(client.post("/auth/verify-email", json={"token": token}), 400, "invalid_token")

    tokens = client.login(user["username"])
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["email_verified"] is True
    me = client.get("/users/me", headers=tokens.headers)
    assert me.json()["email_verified"] is True

    # Verified already: a resend answers 202 and sends nothing.
    resend = client.post("/auth/verify-email/resend", headers=tokens.headers)
    assert resend.status_code == 202


def test_an_email_change_takes_effect_once_confirmed(live_stack: Stack, client: Client) -> None:
    user = client.register()
    tokens = client.login(user["username"])
    new = f"{unique_username('moved')}@example.com"
    response = client.put("/users/me", json={"email": new}, headers=tokens.headers)
    assert response.status_code == 200
    assert response.json()["email"] == user["email"]
    notice = wait_for_message(
        live_stack.mail_dir, user["email"], "Your account's email address is being changed"
    )
    assert new in str(notice)
    token = verify_token(live_stack, new)
    confirmed = client.post("/auth/verify-email", json={"token": token})
    assert confirmed.status_code == 200
    assert confirmed.json()["email"] == new
    assert client.get("/auth/me", headers=tokens.headers).json()["email"] == new


@pytest.fixture
def verified_email_required(live_stack: Stack) -> Iterator[None]:
    live_stack.stop_component("auth-service")
    live_stack.start_component("auth-service", env={"AUTH_REQUIRE_VERIFIED_EMAIL": "true"})
    try:
        yield
    finally:
        live_stack.stop_component("auth-service")
        live_stack.start_component("auth-service")


def test_unverified_logins_are_refused_when_required(
    live_stack: Stack, client: Client, verified_email_required: None
) -> None:
    user = client.register()
    refused = client.login_response(user["username"])
    assert_envelope(refused, 403, "email_not_verified")
    token = verify_token(live_stack, user["email"])
    assert client.post("/auth/verify-email", json={"token": token}).status_code == 200
    client.login(user["username"])


def test_a_reset_during_an_smtp_outage_is_answered_at_once_and_mailed_later(
    live_stack: Stack, client: Client
) -> None:
    user = client.register()
    verify_token(live_stack, user["email"])  # the registration's message is out of the way
    live_stack.stop_component("mail")
    try:
        started = time.perf_counter()
        response = client.post("/auth/password-reset", json={"username": user["username"]})
        elapsed = time.perf_counter() - started
        assert response.status_code == 202
        assert elapsed < 1.0
        time.sleep(2)  # a few delivery attempts fail meanwhile
        assert messages_to(live_stack.mail_dir, user["email"], RESET_SUBJECT) == []
    finally:
        live_stack.start_component("mail")
    token = reset_token(live_stack, user["email"])
    done = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200
    assert len(messages_to(live_stack.mail_dir, user["email"], RESET_SUBJECT)) == 1


@pytest.fixture
def production_auth_service(live_stack: Stack) -> Iterator[None]:
    live_stack.stop_component("auth-service")
    live_stack.start_component(
        "auth-service",
        env={
            "AUTH_ENVIRONMENT": "production",
            "AUTH_KEY_PASSPHRASE": "an-e2e-only-passphrase-1234",
            "AUTH_LOG_LEVEL": "DEBUG",
        },
    )
    try:
        yield
    finally:
        live_stack.stop_component("auth-service")
        live_stack.start_component("auth-service")


def test_no_token_or_link_is_logged_in_production_mode(
    live_stack: Stack, client: Client, production_auth_service: None
) -> None:
    logs = ("auth-service", "gateway", "mail")
    before = {name: len(live_stack.read_log(name)) for name in logs}
    user = client.register()
    client.post("/auth/password-reset", json={"email": user["email"]})
    secrets = [verify_token(live_stack, user["email"]), reset_token(live_stack, user["email"])]
    done = client.post(
        "/auth/password-reset/confirm", json={"token": secrets[1], "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200
    client.post("/auth/verify-email", json={"token": secrets[0]})
    time.sleep(0.5)
    for name in logs:
        written = live_stack.read_log(name)[before[name] :]
        assert written, f"{name} logged nothing"
        for secret in secrets:
            assert secret not in written, f"{name} logged a token"
        assert "token=" not in written
    assert user["email"] in live_stack.read_log("mail")[before["mail"] :]


def test_reset_requests_are_rate_limited_per_client_address(client: Client) -> None:
    answers = [
        client.post(
            "/auth/password-reset", json={"email": f"{unique_username('x')}@example.com"}
        ).status_code
        for _ in range(30)
    ]
    # The default budget: a burst of 20 per client address (refilled at 30 per minute).
    assert answers[:20] == [202] * 20
    assert 429 in answers[20:]


def test_resend_requires_a_bearer_token(client: Client) -> None:
    assert_envelope(client.post("/auth/verify-email/resend"), 401)
