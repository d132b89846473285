"""How `make run` sizes itself: workers, hashing threads and pools from the cores."""

from __future__ import annotations

import pytest

from devstack.config import StackConfig
from devstack.sizing import DEFAULT_MAX_CONNECTIONS, RESERVED_CONNECTIONS, size_stack


def test_two_cores_small_pools_and_an_items_worker_per_core() -> None:
    sizing = size_stack(2)
    assert (sizing.auth_workers, sizing.items_workers) == (1, 2)
    assert sizing.hashing_threads == 2
    assert (sizing.items_pool_size, sizing.items_max_overflow) == (2, 0)
    # a login holds its connection while it is hashed: one kept, one more per hashing thread
    assert (sizing.auth_pool_size, sizing.auth_max_overflow) == (1, sizing.hashing_threads)
    # the gateway's Go code on one core of two: the workers take one each
    assert sizing.gateway_procs == 1
    assert sizing.env() == {
        "AUTH_HASHING_CONCURRENCY": "2",
        "AUTH_DB_POOL_SIZE": "1",
        "AUTH_DB_MAX_OVERFLOW": "2",
        "ITEMS_DB_POOL_SIZE": "2",
        "ITEMS_DB_MAX_OVERFLOW": "0",
    }


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 32, 64, 128])
def test_workers_follow_the_cores_and_pools_stay_in_the_budget(cores: int) -> None:
    sizing = size_stack(cores)
    assert sizing.auth_workers == max(1, cores // 4)
    budget = DEFAULT_MAX_CONNECTIONS - RESERVED_CONNECTIONS
    assert sizing.items_workers == min(cores, budget - sizing.auth_workers)
    # every core can be hashing, and no more threads than cores
    assert sizing.auth_workers * sizing.hashing_threads <= max(cores, sizing.auth_workers)
    assert sizing.auth_workers * sizing.hashing_threads >= min(cores, 4 * sizing.auth_workers)
    assert sizing.items_pool_size >= 1
    assert sizing.auth_pool_size >= 1
    # within the budget, unless there are more workers than connections (one each, at least)
    assert sizing.database_connections <= max(budget, sizing.auth_workers + sizing.items_workers)
    # half the cores for the gateway's Go code, at least one
    assert sizing.gateway_procs == max(1, cores // 2)
    assert f"gateway GOMAXPROCS {sizing.gateway_procs}" in sizing.describe()


def test_a_tight_budget_takes_the_items_workers_second_connection_first() -> None:
    # 32 cores: auth 8 workers x (1 + 4), items 32 x 2 = 104 connections > 87
    sizing = size_stack(32)
    assert (sizing.auth_workers, sizing.items_workers, sizing.hashing_threads) == (8, 32, 4)
    assert (sizing.items_pool_size, sizing.auth_max_overflow) == (1, 4)
    assert sizing.database_connections == 72
    # 64 cores: one each for items (64) and auth's overflow down until it fits
    sizing = size_stack(64)
    assert sizing.items_pool_size == 1
    assert sizing.database_connections <= DEFAULT_MAX_CONNECTIONS - RESERVED_CONNECTIONS


def test_fixed_workers_and_a_small_connection_budget() -> None:
    sizing = size_stack(8, max_connections=30, auth_workers=1, items_workers=6)
    assert (sizing.auth_workers, sizing.items_workers) == (1, 6)
    assert sizing.hashing_threads == 8
    assert sizing.database_connections <= 30 - RESERVED_CONNECTIONS


def test_the_environment_overrides_the_worker_counts() -> None:
    config = StackConfig.from_env({"DEVSTACK_AUTH_WORKERS": "3", "DEVSTACK_ITEMS_WORKERS": "5"})
    assert (config.sizing.auth_workers, config.sizing.items_workers) == (3, 5)
    with pytest.raises(ValueError, match="DEVSTACK_ITEMS_WORKERS"):
        StackConfig.from_env({"DEVSTACK_ITEMS_WORKERS": "0"})


def test_the_environment_overrides_the_gateways_cores() -> None:
    config = StackConfig.from_env({"GATEWAY_GOMAXPROCS": "3"})
    assert config.sizing.gateway_procs == 3
    assert StackConfig.from_env({}).sizing.gateway_procs == size_stack().gateway_procs
    for wrong in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="GATEWAY_GOMAXPROCS"):
            StackConfig.from_env({"GATEWAY_GOMAXPROCS": wrong})
