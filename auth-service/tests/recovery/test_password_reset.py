"""Password reset: the request, the mailed token, its confirmation and everything it voids."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
from sqlalchemy import select

from auth_service.mail.outbox import PENDING, SKIPPED
from auth_service.models import MailMessage

from ..conftest import PASSWORD, FakeClock, unique
from ..helpers import bearer, login, register
from ..smtp_server import SmtpServer, html_of, text_of, token_in

NEW_PASSWORD = "N3w-Passw0rd!x"
VOLATILE = {"x-request-id", "date"}


def stable_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in VOLATILE}


async def test_reset_flow_end_to_end(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        old = await login(m.client, user["username"])
        response = await m.client.post("/auth/password-reset", json={"email": user["email"]})
        assert response.status_code == 202
        await m.deliver()

        [message] = [x for x in smtp.to(user["email"]) if x["Subject"] == "Reset your password"]
        token = token_in(message)
        assert len(token) >= 43  # 256 bits, URL-safe base64
        assert f"https://public.example/reset-password?token={token}" in text_of(message)
        assert f'href="https://public.example/reset-password?token={token}"' in html_of(message)
        assert message["Message-ID"].endswith("@localhost>")

        weak = await m.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
        )
        assert weak.status_code == 422
        assert weak.json()["errors"]

        done = await m.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert done.status_code == 200, done.text

        again = await m.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert again.status_code == 400
        assert again.json()["code"] == "invalid_token"

        refused = await m.client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
        assert refused.status_code == 401
        bad = await m.client.post(
            "/auth/token", data={"username": user["username"], "password": PASSWORD}
        )
        assert bad.status_code == 401
        fresh = await login(m.client, user["username"], NEW_PASSWORD)
        claims = jwt.decode(fresh["access_token"], options={"verify_signature": False})
        # The link reached the address, so it is confirmed too.
        assert claims["email_verified"] is True


async def test_reset_by_username_too(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        response = await m.client.post(
            "/auth/password-reset", json={"username": user["username"].upper()}
        )
        assert response.status_code == 202
        await m.deliver()
        assert any(x["Subject"] == "Reset your password" for x in smtp.to(user["email"]))


async def test_unknown_account_gets_the_same_answer_and_no_mail(
    mail_app: Any, smtp: SmtpServer
) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        await m.deliver()
        before = len(smtp.messages)
        known = await m.client.post("/auth/password-reset", json={"email": user["email"]})
        unknown = await m.client.post(
            "/auth/password-reset", json={"email": f"{unique()}@example.com"}
        )
        assert known.status_code == unknown.status_code == 202
        assert known.content == unknown.content
        assert stable_headers(known) == stable_headers(unknown)
        await m.deliver()
        assert len(smtp.messages) == before + 1
        async with m.runtime.database.transaction() as session:
            statuses = (
                await session.execute(
                    select(MailMessage.status).where(MailMessage.status == SKIPPED)
                )
            ).scalars()
            assert SKIPPED in set(statuses)


async def test_request_body_needs_email_or_username(mail_app: Any) -> None:
    async with mail_app() as m:
        response = await m.client.post("/auth/password-reset", json={})
        assert response.status_code == 422
        response = await m.client.post("/auth/password-reset", json={"email": "a", "x": 1})
        assert response.status_code == 422


async def test_expired_superseded_and_unknown_tokens_are_alike(
    mail_app: Any, smtp: SmtpServer, clock: FakeClock
) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        for _ in range(2):
            await m.client.post("/auth/password-reset", json={"email": user["email"]})
            await m.deliver()
        first, second = [
            token_in(x) for x in smtp.to(user["email"]) if x["Subject"] == "Reset your password"
        ]
        answers = []
        for token in (first, "x" * 43):
            answers.append(
                await m.client.post(
                    "/auth/password-reset/confirm",
                    json={"token": token, "new_password": NEW_PASSWORD},
                )
            )
        clock.advance(m.runtime.settings.reset_token_ttl_seconds + 1)
        answers.append(
            await m.client.post(
                "/auth/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD}
            )
        )
        assert {a.status_code for a in answers} == {400}
        assert {a.json()["code"] for a in answers} == {"invalid_token"}
        assert len({a.json()["detail"] for a in answers}) == 1


async def test_a_password_change_voids_the_reset_link(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        tokens = await login(m.client, user["username"])
        await m.client.post("/auth/password-reset", json={"email": user["email"]})
        await m.deliver()
        [token] = [
            token_in(x) for x in smtp.to(user["email"]) if x["Subject"] == "Reset your password"
        ]
        changed = await m.client.put(
            "/users/me",
            json={"password": NEW_PASSWORD, "current_password": PASSWORD},
            headers=bearer(tokens["access_token"]),
        )
        assert changed.status_code == 200
        response = await m.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": "An0ther-Pass!"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_token"


async def test_reset_requests_are_throttled_per_account(mail_app: Any, smtp: SmtpServer) -> None:
    async with mail_app(reset_throttle_max=2) as m:
        user = await register(m.client)
        for identifier in ({"email": user["email"]}, {"username": user["username"]}) * 2:
            response = await m.client.post("/auth/password-reset", json=identifier)
            assert response.status_code == 202
        await m.deliver()
        resets = [x for x in smtp.to(user["email"]) if x["Subject"] == "Reset your password"]
        assert len(resets) == 2


async def test_smtp_outage_loses_nothing(mail_app: Any, smtp: SmtpServer, clock: FakeClock) -> None:
    async with mail_app() as m:
        user = await register(m.client)
        await m.deliver()
        await smtp.stop()
        response = await m.client.post("/auth/password-reset", json={"email": user["email"]})
        assert response.status_code == 202
        await m.deliver()
        async with m.runtime.database.transaction() as session:
            row = (
                await session.execute(
                    select(MailMessage).where(MailMessage.template == "password_reset")
                )
            ).scalar_one()
            assert row.status == PENDING
            assert row.attempts == 1
        failures = m.app.state.metrics.registry.get_sample_value(
            "auth_mail_failures_total", {"template": "password_reset"}
        )
        assert failures == 1

        await smtp.start()
        await m.deliver()  # not due yet: backoff
        assert not [x for x in smtp.to(user["email"]) if x["Subject"] == "Reset your password"]
        clock.advance(2)
        await m.deliver()
        resets = [x for x in smtp.to(user["email"]) if x["Subject"] == "Reset your password"]
        assert len(resets) == 1
        await m.deliver()
        assert len([x for x in smtp.to(user["email"]) if x["Subject"] == resets[0]["Subject"]]) == 1


async def test_undeliverable_mail_is_dead_lettered_after_the_last_attempt(
    mail_app: Any, smtp: SmtpServer, clock: FakeClock
) -> None:
    async with mail_app(mail_max_attempts=3, mail_retry_max_seconds=1) as m:
        await smtp.stop()
        user = await register(m.client)
        for _ in range(4):
            await m.deliver()
            clock.advance(2)
        registry = m.app.state.metrics.registry
        assert (
            registry.get_sample_value("auth_mail_dead_letter_total", {"template": "verify_email"})
            == 1
        )
        assert registry.get_sample_value("auth_mail_pending") == 0
        async with m.runtime.database.transaction() as session:
            row = (
                await session.execute(
                    select(MailMessage).where(MailMessage.recipient == user["email"])
                )
            ).scalar_one()
        assert (row.status, row.attempts, row.context) == ("dead", 3, {})
