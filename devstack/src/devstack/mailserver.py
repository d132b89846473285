"""The local SMTP server ``make run`` starts: every message becomes a file, one log line each.

Messages are kept as ``<mail dir>/<time>-<n>.eml`` (RFC 5322, as received), written to a
temporary name and renamed, so a reader never sees half a message. The log line names the
recipients, the subject and the file, never the body: links and tokens stay in the file.
It accepts any sender and recipient and relays nothing; it listens on loopback only.

Run: ``python -m devstack.mailserver --port 1025 --dir .data/stack/mail``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

logger = logging.getLogger("devstack.mail")


class MailStore:
    """aiosmtpd handler: writes each message to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)

    def save(self, content: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{next(self._counter):06d}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(content)
        final = self.directory / name
        temporary.replace(final)
        return final

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        path = self.save(content)
        subject = message_from_bytes(content, policy=policy.default).get("Subject", "")
        logger.info("mail to %s: %r (%s)", ", ".join(envelope.rcpt_tos), str(subject), path.name)
        return "250 Message accepted for delivery"


def stored_messages(directory: Path) -> list[EmailMessage]:
    """Every message kept in ``directory``, oldest first (for tests and tools)."""
    if not directory.is_dir():
        return []
    messages = []
    for path in sorted(directory.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


async def serve(host: str, port: int, directory: Path) -> None:
    store = MailStore(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(store, hostname="devstack-mail", ident="devstack mail"), host, port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("local SMTP server on %s:%d, messages in %s", host, port, directory)
    async with server:
        await stop.wait()
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack-mail", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, required=True, help="where messages are kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # aiosmtpd's own session log (every command) would drown the one line per message.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
