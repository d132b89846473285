"""Heap trimming (glibc's malloc_trim, which this test machine has) and the collector's
settings for a service's lifetime."""

from __future__ import annotations

import asyncio
import gc

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


async def test_trimmed_heap_trims_during_the_block_only() -> None:
    def trimming() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "memory-trim"]

    async with memory.trimmed_heap(0.01):
        await asyncio.sleep(0.03)
        assert len(trimming()) == 1
        assert not trimming()[0].done()
    assert trimming() == []
    async with memory.trimmed_heap(0):  # start-up trim only
        assert trimming() == []


async def test_trimmed_heap_freezes_start_up_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    gc.collect()
    async with memory.trimmed_heap(0):
        # what start-up left is frozen: the older generations' collections skip it
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (memory.YOUNG_GENERATION_THRESHOLD, *before[1:])
        # young garbage is still collected
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect(0) >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
