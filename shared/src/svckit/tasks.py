"""Background work of a service process, started and stopped one way.

A :class:`PeriodicTask` runs ``work`` every ``interval`` seconds, or at once when woken
(:meth:`~PeriodicTask.wake`, e.g. right after a request committed an outbox row). A failing
pass is logged by its exception type only (messages may quote data) and retried with the
delay doubled up to ``max_backoff``; a good pass returns to ``interval``. :meth:`stop` cancels
the task and waits for it, so nothing runs once the app's lifespan has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


def next_delay(delay: float, *, base: float, cap: float) -> float:
    """The delay after one more failure: doubled, at least ``base``, at most ``cap``."""
    return min(max(delay * 2, base), cap)


class PeriodicTask:
    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        *,
        interval: float,
        logger: logging.Logger,
        max_backoff: float = 30.0,
        run_at_start: bool = True,
    ) -> None:
        self.name = name
        self._work = work
        self._interval = interval
        self._max_backoff = max(max_backoff, interval)
        self._run_at_start = run_at_start
        self._logger = logger
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name.replace(" ", "-"))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _wait(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wakeup.wait()

    async def _run(self) -> None:
        delay = self._interval
        if not self._run_at_start:
            await self._wait(delay)
        while True:
            # Cleared before the pass, so a wake-up during it triggers the next one at once.
            self._wakeup.clear()
            try:
                await self._work()
                delay = self._interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = next_delay(delay, base=self._interval, cap=self._max_backoff)
                self._logger.warning(
                    f"{self.name} failed; retrying",
                    extra={"error": type(exc).__name__, "retry_in": delay},
                )
            await self._wait(delay)
