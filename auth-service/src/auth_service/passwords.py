"""Password hashing: bcrypt via libpass, off the event loop, with bounded concurrency.

* Scheme ``bcrypt_sha256``: the password is HMAC-SHA256'd (keyed by the salt) before bcrypt,
  so passwords longer than bcrypt's 72-byte input limit are never truncated. Plain ``bcrypt``
  hashes (and ``bcrypt_sha256`` hashes of a lower cost) still verify and are flagged for
  rehashing on the next successful login.
* Passwords are NFC-normalised first: the composed and decomposed spellings of the same text
  are the same password.
* bcrypt releases the GIL, so hashing runs in a small thread pool. A semaphore bounds the
  number of hashes in flight; a caller that cannot get a slot within the queue timeout gets
  :class:`HashingBusy` (503 with ``Retry-After``) instead of waiting behind a long queue.
  A login takes its slot (:meth:`PasswordHasher.slot`) *before* it touches the database, so
  logins queued behind the hashes hold no database connection: a login flood cannot drain the
  pool that key reloads, the outbox relay and every other request need.
* :meth:`PasswordHasher.verify` with no stored hash verifies against a dummy hash, so a
  login for an unknown user costs the same as a wrong password.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from passlib.context import CryptContext
from passlib.exc import UnknownHashError

from svckit.errors import ServiceError

T = TypeVar("T")


class HashingBusy(ServiceError):
    status_code = 503
    code = "busy"
    detail = "The server is busy; try again shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced


def normalise(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def build_context(rounds: int) -> CryptContext:
    return CryptContext(
        schemes=["bcrypt_sha256", "bcrypt"],
        deprecated=["bcrypt"],
        bcrypt_sha256__default_rounds=rounds,
        bcrypt_sha256__min_rounds=rounds,
    )


class PasswordHasher:
    def __init__(self, *, rounds: int, concurrency: int, queue_timeout: float) -> None:
        self._context = build_context(rounds)
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hash")
        self._queue_timeout = queue_timeout
        self._dummy_hash: str | None = None
        # Tasks holding a slot through slot(); a task, not a context variable, since tasks
        # created inside the block copy the context but must queue like everyone else.
        self._holders: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Compute the dummy hash unknown-user logins are verified against."""
        self._dummy_hash = await self.hash(secrets.token_urlsafe(24))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise HashingBusy() from None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one hashing slot for a whole block (the hashes inside it reuse the slot).

        Raises :class:`HashingBusy` when no slot frees up within the queue timeout.
        """
        task = asyncio.current_task()
        if task is not None and task in self._holders:
            yield
            return
        await self._acquire()
        if task is not None:
            self._holders.add(task)
        try:
            yield
        finally:
            self._holders.discard(task)
            self._slots.release()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self.slot():
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._context.hash, normalise(password))

    async def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed``; ``None`` spends the same time and fails."""
        if hashed is None:
            if self._dummy_hash is None:
                await self.start()
            assert self._dummy_hash is not None
            await self._run(self._verify_and_update, password, self._dummy_hash)
            return Verification(ok=False)
        ok, new_hash = await self._run(self._verify_and_update, password, hashed)
        return Verification(ok=ok, new_hash=new_hash)

    def _verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        try:
            ok, new_hash = self._context.verify_and_update(normalise(password), hashed)
        except (UnknownHashError, ValueError, TypeError):
            return False, None
        return bool(ok), new_hash

    def needs_update(self, hashed: str) -> bool:
        try:
            return bool(self._context.needs_update(hashed))
        except (UnknownHashError, ValueError):
            return True
