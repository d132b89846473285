"""Email verification: registration and email changes mail a link; the claim; the login gate."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from ..conftest import PASSWORD, FakeClock, unique
from ..helpers import bearer, login, register
from ..smtp_server import SmtpServer, text_of, token_in

CONFIRM = "Confirm your email address"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Production mode configures the root logger; put the test run's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def claims_of(tokens: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})


async def test_registration_mails_a_link_that_verifies_the_address(
    mail_app: Any, smtp: SmtpServer
) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        assert user["email_verified"] is False
        assert claims_of(await login(m.client, user["username"]))["email_verified"] is False
        await m.deliver()
        [message] = smtp.to(user["email"])
        assert message["Subject"] == CONFIRM
        assert "https://public.example/verify-email?token=" in text_of(message)

        response = await m.client.post("/auth/verify-email", json={"token": token_in(message)})
        assert response.status_code == 200, response.text
        assert response.json()["email_verified"] is True
        assert response.json()["email"] == user["email"]
        assert claims_of(await login(m.client, user["username"]))["email_verified"] is True

        again = await m.client.post("/auth/verify-email", json={"token": token_in(message)})
        assert again.status_code == 400
        assert again.json()["code"] == "invalid_token"


async def test_links_ignore_the_host_header(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app() as m:
        username = unique()
        response = await m.client.post(
            "/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        )
        assert response.status_code == 200
        await m.deliver()
        [message] = smtp.to(f"{username}@example.com")
        assert "evil.example" not in message.as_string()
        assert "https://public.example/verify-email" in text_of(message)


async def test_unverified_logins_are_refused_when_required(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app(require_verified_email=True) as m:
        user = await register(m.client)
        refused = await m.client.post(
            "/auth/token", data={"username": user["username"], "password": PASSWORD}
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "email_not_verified"
        wrong = await m.client.post(
            "/auth/token", data={"username": user["username"], "password": "Wr0ng!pass"}
        )
        assert wrong.status_code == 401  # the 403 is only for the right password
        await m.deliver()
        token = token_in(smtp.to(user["email"])[0])
        assert (await m.client.post("/auth/verify-email", json={"token": token})).status_code == 200
        assert claims_of(await login(m.client, user["username"]))["email_verified"] is True


async def test_unverified_logins_are_allowed_by_default(mail_app: Any) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        await login(m.client, user["username"])


async def test_an_email_change_is_used_only_once_confirmed(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        tokens = await login(m.client, user["username"])
        new = f"{unique()}@example.com"
        response = await m.client.put(
            "/users/me", json={"email": new.upper()}, headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 200
        assert response.json()["email"] == user["email"]
        await m.deliver()
        [notice] = [x for x in smtp.to(user["email"]) if x["Subject"] != CONFIRM]
        assert new in text_of(notice)
        [link] = smtp.to(new)
        assert link["Subject"] == CONFIRM

        # Until confirmed, mail keeps going to the old address.
        await m.client.post("/auth/password-reset", json={"email": new})
        await m.deliver()
        assert len(smtp.to(new)) == 1

        verified = await m.client.post("/auth/verify-email", json={"token": token_in(link)})
        assert verified.status_code == 200
        assert verified.json()["email"] == new
        assert verified.json()["email_verified"] is True
        me = await m.client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert me.json()["email"] == new


async def test_an_admin_email_change_needs_confirmation_too(
    mail_app: Any, smtp: SmtpServer, connection: AsyncConnection
) -> None:
    from ..helpers import admin_with_token

    async with mail_app() as m:
        user = await register(m.client)
        _, admin = await admin_with_token(m.client, connection)
        new = f"{unique()}@example.com"
        response = await m.client.patch(
            f"/users/{user['id']}", json={"email": new}, headers=bearer(admin["access_token"])
        )
        assert response.status_code == 200
        assert response.json()["email"] == user["email"]
        await m.deliver()
        assert [x["Subject"] for x in smtp.to(new)] == [CONFIRM]


async def test_a_change_to_a_taken_address_is_refused_and_mails_nothing(
    mail_app: Any, smtp: SmtpServer
) -> None:
    async with mail_app() as m:
        other = await register(m.client)
        user = await register(m.client)
        tokens = await login(m.client, user["username"])
        await m.deliver()
        before = len(smtp.messages)
        response = await m.client.put(
            "/users/me", json={"email": other["email"]}, headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 400
        assert response.json()["code"] == "email_taken"
        await m.deliver()
        assert len(smtp.messages) == before


async def test_resend_is_202_and_limited_per_account(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app(verify_resend_max=3) as m:
        user = await register(m.client)  # the first message counts
        tokens = await login(m.client, user["username"])
        headers = bearer(tokens["access_token"])
        for _ in range(2):
            response = await m.client.post("/auth/verify-email/resend", headers=headers)
            assert response.status_code == 202
        limited = await m.client.post("/auth/verify-email/resend", headers=headers)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
        await m.deliver()
        links = smtp.to(user["email"])
        assert len(links) == 3
        # Only the newest link works.
        first = await m.client.post("/auth/verify-email", json={"token": token_in(links[0])})
        assert first.status_code == 400
        last = await m.client.post("/auth/verify-email", json={"token": token_in(links[-1])})
        assert last.status_code == 200
        assert (await m.client.post("/auth/verify-email/resend")).status_code == 401


async def test_no_token_or_link_is_logged_in_production_mode(
    mail_app: Any,
    smtp: SmtpServer,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    async with mail_app(
        environment="production",
        key_passphrase="a-long-enough-passphrase",
        log_json=True,
        log_level="DEBUG",
        access_log=True,
    ) as m:
        user = await register(m.client)
        await m.client.post("/auth/password-reset", json={"email": user["email"]})
        await smtp.stop()
        await m.deliver()  # a failed attempt is logged too
        await smtp.start()
        clock.advance(60)
        await m.deliver()
    secrets = [token_in(x) for x in smtp.to(user["email"])]
    assert secrets
    # The service's own records (this test's SMTP server logs as "mail.log").
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    logged = "\n".join(json.dumps(r) for r in records if r["logger"] != "mail.log")
    assert '"msg": "mail sent"' in logged
    assert '"msg": "mail delivery failed; retrying"' in logged
    for secret in secrets:
        assert secret not in logged
    assert "/verify-email?" not in logged
    assert "/reset-password?" not in logged
