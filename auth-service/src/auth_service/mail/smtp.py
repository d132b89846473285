"""SMTP delivery with aiosmtplib, configured by one URL (``AUTH_SMTP_URL``).

* ``smtp://host:587``: STARTTLS when the server offers it (plain otherwise, e.g. a local
  catcher); ``smtp+starttls://``: STARTTLS required; ``smtps://host:465``: TLS from the first
  byte. ``user:password@`` (percent-encoded) logs in with SMTP AUTH.
* One connection per batch; the caller decides what a failure means for each message
  (:func:`is_permanent`: a 5xx answer about that message will not get better by retrying).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

SCHEMES = {"smtp": None, "smtp+starttls": True, "smtps": False}


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    hostname: str
    port: int
    use_tls: bool
    start_tls: bool | None
    username: str | None
    password: str | None
    timeout: float

    @classmethod
    def from_url(cls, url: str, *, timeout: float) -> SmtpConfig:
        """Parse ``AUTH_SMTP_URL``; raises ``ValueError`` naming what is wrong (never the
        password)."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError("AUTH_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
        if not parts.hostname:
            raise ValueError("AUTH_SMTP_URL must name a host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("AUTH_SMTP_URL has an invalid port") from None
        implicit_tls = scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=port or (465 if implicit_tls else 587),
            use_tls=implicit_tls,
            start_tls=False if implicit_tls else SCHEMES[scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )


class SmtpSender:
    """Opens connections to the configured server."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SmtpConnection]:
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.hostname,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            timeout=config.timeout,
        )
        async with client:
            yield SmtpConnection(client)


class SmtpConnection:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self._client = client

    async def send(self, message: EmailMessage) -> None:
        await self._client.send_message(message)


def is_permanent(exc: BaseException) -> bool:
    """A 5xx refusal of this message (sender, recipients or data), not of the connection."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= refused.code < 600 for refused in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPDataError):
        return 500 <= exc.code < 600
    return False
