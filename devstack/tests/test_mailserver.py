"""The local SMTP server: each message a complete file, one log line without the body."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from devstack.mailserver import serve, stored_messages
from svckit.testing.servers import free_port


def message(subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@example.com"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg.set_content(body)
    msg.add_alternative(f"<p>{body}</p>", subtype="html")
    return msg


async def test_every_message_is_kept_as_a_file_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    directory = tmp_path / "mail"
    caplog.set_level(logging.INFO, logger="devstack.mail")
    server = asyncio.create_task(serve("127.0.0.1", port, directory))
    try:
        for _ in range(50):
            try:
                await aiosmtplib.send(
                    message("First", "secret-link-token-1"), hostname="127.0.0.1", port=port
                )
                break
            except aiosmtplib.SMTPConnectError:
                await asyncio.sleep(0.1)
        await aiosmtplib.send(message("Second", "body two"), hostname="127.0.0.1", port=port)
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server

    kept = stored_messages(directory)
    assert [m["Subject"] for m in kept] == ["First", "Second"]
    body = kept[0].get_body(preferencelist=("plain",))
    assert body is not None
    assert "secret-link-token-1" in body.get_content()
    assert not list(directory.glob(".*.tmp"))

    lines = [r.getMessage() for r in caplog.records if r.name == "devstack.mail"]
    per_message = [line for line in lines if line.startswith("mail to ")]
    assert len(per_message) == 2
    assert "alice@example.com" in per_message[0]
    assert "First" in per_message[0]
    assert all("secret-link-token" not in line for line in lines)


def test_no_messages_in_a_missing_folder(tmp_path: Path) -> None:
    assert stored_messages(tmp_path / "absent") == []
