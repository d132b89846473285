"""Reading the messages the stack's local SMTP server kept (one ``.eml`` file each)."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from pathlib import Path

from devstack.mailserver import stored_messages

RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Confirm your email address"


def messages_to(mail_dir: Path, address: str, subject: str | None = None) -> list[EmailMessage]:
    return [
        m
        for m in stored_messages(mail_dir)
        if m["To"] == address and (subject is None or m["Subject"] == subject)
    ]


def wait_for_message(
    mail_dir: Path, address: str, subject: str, *, count: int = 1, timeout: float = 20.0
) -> EmailMessage:
    """The ``count``-th message with ``subject`` to ``address``, once it has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        found = messages_to(mail_dir, address, subject)
        if len(found) >= count:
            return found[count - 1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no message {count} {subject!r} for {address} in {timeout} s")
        time.sleep(0.1)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def link_token(message: EmailMessage, base_url: str, path: str) -> str:
    """The token of the ``base_url + path`` link in the message."""
    match = re.search(re.escape(f"{base_url}{path}?token=") + r"([A-Za-z0-9_-]+)", text_of(message))
    assert match, f"no {base_url}{path} link in the message"
    return match.group(1)
