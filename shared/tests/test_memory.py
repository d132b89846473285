"""Heap trimming (glibc's malloc_trim, which this test machine has)."""

from __future__ import annotations

import asyncio

import pytest

from svckit import memory


def test_release_free_memory_trims_on_glibc() -> None:
    assert memory.release_free_memory(collect=True) is True


async def test_periodic_release_runs_until_cancelled() -> None:
    task = asyncio.create_task(memory.release_periodically(0.01))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
