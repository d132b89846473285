"""The local SMTP server ``make run`` starts: every message becomes a file, one log line each.

Messages are kept as ``<mail dir>/<time>-<n>.eml`` (RFC 5322, as received), written to a
temporary name and renamed, so a reader never sees half a message. The log line names the
recipients, the subject and the file, never the body: links and tokens stay in the file.
It accepts any sender and recipient and relays nothing; it listens on loopback only.

``make run`` runs it in a thread of its launcher (:class:`MailServer`); on its own:
``python -m devstack.mailserver --port 1025 --dir .data/stack/mail``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import threading
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


class MailServer:
    """The SMTP server run in a thread of the calling process (the ``make run`` launcher).

    In a thread rather than a process of its own: it handles a handful of messages, and a
    second interpreter would cost the stack tens of megabytes for the whole of its life.
    ``stop()`` closes the listening socket and joins the thread.
    """

    def __init__(self, host: str, port: int, directory: Path, log_path: Path) -> None:
        self.host = host
        self.port = port
        self.directory = directory
        self.log_path = log_path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._handler: logging.Handler | None = None
        self._failure: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._attach_log()
        ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="devstack-mail", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or self._failure is not None:
            self.stop()
            raise OSError(f"the local SMTP server did not start: {self._failure!r}")

    def stop(self) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout=5)
        self._thread = self._loop = self._stop = None
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def _attach_log(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._handler = handler

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # reported to start(), which raises it
            self._failure = exc
            ready.set()
        finally:
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        store = MailStore(self.directory)
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await loop.create_server(
            lambda: SMTP(store, hostname="devstack-mail", ident="devstack mail"),
            self.host,
            self.port,
        )
        logger.info(
            "local SMTP server on %s:%d, messages in %s", self.host, self.port, self.directory
        )
        ready.set()
        async with server:
            await self._stop.wait()
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
