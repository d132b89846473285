"""Giving freed heap memory back to the operating system.

Importing FastAPI, SQLAlchemy, redis-py, cryptography and friends leaves ~10 MB of freed but
unreturned heap in every worker (glibc keeps it for reuse), which counts against the
per-worker memory budget. ``malloc_trim`` hands such pages back. It exists only in glibc;
elsewhere (musl) these functions do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections.abc import AsyncIterator, Callable

logger = logging.getLogger("svckit.memory")


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _find_malloc_trim()


def release_free_memory(*, collect: bool = False) -> bool:
    """Return free heap pages to the OS; ``collect`` first runs a full garbage collection
    (~0.1 s: only at startup). Returns whether ``malloc_trim`` is available."""
    if collect:
        gc.collect()
    if _malloc_trim is None:
        return False
    _malloc_trim(0)  # ~0.5 ms
    return True


async def release_periodically(interval: float) -> None:
    """Trim every ``interval`` seconds, so request-time churn does not keep pages resident."""
    if _malloc_trim is None:
        logger.info("malloc_trim is not available; heap trimming is off")
        return
    while True:
        await asyncio.sleep(interval)
        release_free_memory()


@contextlib.asynccontextmanager
async def trimmed_heap(interval: float) -> AsyncIterator[None]:
    """For a service's lifespan: trim now (start-up's garbage is freed by then), then every
    ``interval`` seconds (0: only now) until the block ends."""
    release_free_memory(collect=True)
    task = (
        asyncio.create_task(release_periodically(interval), name="memory-trim")
        if interval
        else None
    )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
