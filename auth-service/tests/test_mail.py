"""SMTP settings, message rendering and the relay's bookkeeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy import select

from auth_service import maintenance
from auth_service.db import Database
from auth_service.mail import outbox
from auth_service.mail.messages import render
from auth_service.mail.smtp import SmtpConfig
from auth_service.models import MailMessage
from auth_service.runtime import Runtime
from auth_service.settings import Settings

from .conftest import FakeClock
from .smtp_server import SmtpServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:1025", ("127.0.0.1", 1025, False, None, None, None)),
        ("smtp://mail.example", ("mail.example", 587, False, None, None, None)),
        (
            "smtp+starttls://u%40x:p%3Aw@mail.example:2587",
            ("mail.example", 2587, False, True, "u@x", "p:w"),
        ),
        ("smtps://me:pw@mail.example", ("mail.example", 465, True, False, "me", "pw")),
    ],
)
def test_smtp_url(url: str, expected: tuple[object, ...]) -> None:
    config = SmtpConfig.from_url(url, timeout=3)
    got = (
        config.hostname,
        config.port,
        config.use_tls,
        config.start_tls,
        config.username,
        config.password,
    )
    assert got == expected
    assert config.timeout == 3


@pytest.mark.parametrize("url", ["http://x", "smtp://", "smtp://host:99999", "mail.example"])
def test_bad_smtp_urls_are_refused_by_the_settings(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(smtp_url=url)
    assert "secret" not in str(info.value)


def test_the_password_never_shows_in_a_settings_error() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(smtp_url="ftp://user:hunter2-secret@host")
    assert "hunter2-secret" not in str(info.value)


def test_public_url_defaults_to_the_issuer_and_must_be_http() -> None:
    assert Settings(issuer="https://id.example/").link_base == "https://id.example"
    assert Settings(public_url="https://app.example/base").link_base == "https://app.example/base"
    with pytest.raises(ValidationError):
        Settings(public_url="javascript:alert(1)")


def test_messages_have_text_and_escaped_html() -> None:
    message = render(
        "email_change_notice",
        {"username": "<b>eve</b>", "new_email": "a@example.com"},
        sender="Auth <no-reply@auth.example>",
        recipient="alice@example.com",
        message_id="abc123",
    )
    assert message["Message-ID"] == "<abc123@auth.example>"
    assert message["To"] == "alice@example.com"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "<b>eve</b>" in text.get_content()
    assert "&lt;b&gt;eve&lt;/b&gt;" in html.get_content()


async def test_maintenance_prunes_finished_mail_but_keeps_dead_and_pending(
    database: Database,
) -> None:
    old = datetime.now(UTC) - timedelta(days=8)
    async with database.transaction() as session:
        rows = {}
        for status in (outbox.SENT, outbox.SKIPPED, outbox.DEAD, outbox.PENDING):
            row = await outbox.enqueue(
                session, template="verify_email", recipient="a@example.com", context={}, now=old
            )
            row.status = status
            rows[status] = row.id
    await maintenance.run_once(database, retention=timedelta(days=1), clock=FakeClock())
    async with database.transaction() as session:
        left = set(
            (
                await session.execute(
                    select(MailMessage.status).where(MailMessage.id.in_(rows.values()))
                )
            ).scalars()
        )
    assert left == {outbox.DEAD, outbox.PENDING}


async def test_two_relays_never_send_one_message_twice(
    make_settings: Callable[..., Settings], fresh_database_url: str
) -> None:
    smtp = SmtpServer()
    await smtp.start()
    settings = make_settings(database_url=fresh_database_url, smtp_url=smtp.url, mail_batch_size=7)
    registries = [CollectorRegistry(), CollectorRegistry()]
    runtimes = [
        await Runtime.start(settings, clock=FakeClock(), registry=registry)
        for registry in registries
    ]
    try:
        database = Database.from_settings(settings)
        try:
            async with database.transaction() as session:
                for n in range(40):
                    await outbox.enqueue(
                        session,
                        template="email_change_notice",
                        recipient=f"user{n}@example.com",
                        context={"username": f"user{n}", "new_email": "new@example.com"},
                        now=datetime.now(UTC) - timedelta(seconds=1),
                    )
        finally:
            await database.close()
        await asyncio.gather(*(runtime.mail.run_once() for runtime in runtimes))
    finally:
        for runtime in runtimes:
            await runtime.close()
        await smtp.stop()
    recipients = [m["To"] for m in smtp.messages]
    assert sorted(recipients) == sorted(f"user{n}@example.com" for n in range(40))
    assert len({m["Message-ID"] for m in smtp.messages}) == 40
    sent = [
        registry.get_sample_value("auth_mail_sent_total", {"template": "email_change_notice"}) or 0
        for registry in registries
    ]
    assert sum(sent) == 40
