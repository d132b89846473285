"""A worker's heap: freed memory given back to the operating system, and a cyclic garbage
collector sized for request handling.

Importing FastAPI, SQLAlchemy, redis-py, cryptography and friends leaves ~10 MB of freed but
unreturned heap in every worker (glibc keeps it for reuse), which counts against the
per-worker memory budget. ``malloc_trim`` hands such pages back. It exists only in glibc;
elsewhere (musl) these functions do nothing.

CPython examines its youngest generation after every 700 container objects allocated (and
not freed): a FastAPI request allocates hundreds, so a collection ran every request or two,
and the older generations' collections traversed every object start-up left (modules,
routes, pydantic's schemas). For a service's lifetime the collector instead skips what
start-up left (``gc.freeze`` once its garbage is collected) and examines young objects every
10,000 allocations. Measured on 2 cores at -c50 through the gateway: 9-11 % less of
items-service's CPU per single-item read, 3 % per 100-item page, 7-9 % more reads per second
(docs/benchmarks.md, "Analysis"), for at most 10,000 young objects (a few MB) of cyclic
garbage waiting longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections.abc import AsyncIterator, Callable

logger = logging.getLogger("svckit.memory")

# Container objects allocated before the youngest generation is collected (CPython: 700).
YOUNG_GENERATION_THRESHOLD = 10_000


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
    """For a service's lifespan: collect start-up's garbage, freeze what is left and collect
    young objects less often, trim now, then every ``interval`` seconds (0: only now) until the
    block ends; then the collector is as it was."""
    threshold = gc.get_threshold()
    release_free_memory(collect=True)
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *threshold[1:])
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
        gc.set_threshold(*threshold)
        gc.unfreeze()
