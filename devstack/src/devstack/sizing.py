"""How ``make run`` sizes the stack to the machine it runs on.

The rule, per service (README, "Sizing"):

* **items-service** serves the hot path (reads and writes at thousands per second). A Python
  worker uses at most one core, so it gets one worker per core: on 2 cores, two workers served
  2-35 % more requests than one, at up to 30 % more CPU per request (docs/benchmarks.md,
  "Analysis"): one worker was the bottleneck while the gateway and PostgreSQL left the other
  core partly idle. Never more workers than the connection budget allows (one connection each
  at least).
* **auth-service** spends its CPU on bcrypt, which runs in threads that release the GIL, so
  one worker keeps every core busy hashing: one worker per four cores, and each worker's
  hashing threads are its share of the cores.
* **The gateway** (Traefik, a Go program) runs Go code on half the cores (``GOMAXPROCS``,
  at least one). Go's default is every core, but here the service workers already take one
  core each: with two cores, Go's idle processors spin looking for work and its goroutines
  hop between the cores the workers need. Measured at -c50 through the gateway on 2 cores,
  ``GOMAXPROCS=1`` cut Traefik's CPU per request by 20 % for single items and 10-20 % for
  100-item pages, items-service's by 4-7 %, and served 5-13 % more reads at a lower p99
  (docs/benchmarks.md, "Analysis"). Traefik takes about a third of the stack's CPU per
  request, so half the cores leave it room.
* **Database pools** are per worker and small, since every pooled connection is a PostgreSQL
  backend of its own (memory): two connections per items worker (a request holds one for one
  statement or transaction); for auth one kept and one more per hashing thread, closed when
  returned. All pools together stay within the connection budget: PostgreSQL's
  ``max_connections`` less what migrations, command lines and superusers need; where they
  would not, items workers keep one connection each, then auth gives up its overflow.

Everything here can be overridden: the environment wins over these values, ``devstack run
--workers N`` sets both services' worker counts and ``GATEWAY_GOMAXPROCS`` the gateway's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# PostgreSQL's default max_connections, which the embedded server keeps.
DEFAULT_MAX_CONNECTIONS = 100
# Kept free for migrations, `devstack cli` commands, psql and the superuser reservation.
RESERVED_CONNECTIONS = 13
# items-service: a request holds a connection for one statement or a short transaction, and a
# second connection lets the worker start the next while the first waits on PostgreSQL (a
# commit's WAL flush above all): measured at -c50 through the gateway on 2 cores, two
# connections per worker served 16 % more creates and 15 % more 20-item pages than one, and
# 4 % more single items (docs/benchmarks.md, "Analysis"), for a PostgreSQL backend more each.
# auth-service: a login takes its hashing slot before it touches the database, then holds its
# connection while the hash is computed, so it needs a connection per hashing thread at once,
# and one more for its background loops. It keeps one idle (an idle pooled connection is a
# PostgreSQL backend kept for nothing); the others are overflow, closed when returned, and
# opening one costs a few milliseconds beside a hash's few hundred.
ITEMS_POOL = 2


def machine_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Sizing:
    """Workers, hashing threads and database pools for one machine."""

    cores: int
    auth_workers: int
    items_workers: int
    hashing_threads: int
    auth_pool_size: int
    auth_max_overflow: int
    items_pool_size: int
    items_max_overflow: int
    gateway_procs: int

    @property
    def database_connections(self) -> int:
        """The most connections all pools together may open."""
        return self.auth_workers * (
            self.auth_pool_size + self.auth_max_overflow
        ) + self.items_workers * (self.items_pool_size + self.items_max_overflow)

    def env(self) -> dict[str, str]:
        """The services' settings for these sizes (the environment may override each)."""
        return {
            "AUTH_HASHING_CONCURRENCY": str(self.hashing_threads),
            "AUTH_DB_POOL_SIZE": str(self.auth_pool_size),
            "AUTH_DB_MAX_OVERFLOW": str(self.auth_max_overflow),
            "ITEMS_DB_POOL_SIZE": str(self.items_pool_size),
            "ITEMS_DB_MAX_OVERFLOW": str(self.items_max_overflow),
        }

    def describe(self) -> str:
        return (
            f"{self.cores} cores: auth-service {self.auth_workers} worker(s) x "
            f"{self.hashing_threads} hashing threads, pool {self.auth_pool_size}"
            f"+{self.auth_max_overflow}; items-service {self.items_workers} worker(s), pool "
            f"{self.items_pool_size}+{self.items_max_overflow}; gateway GOMAXPROCS "
            f"{self.gateway_procs}"
        )


def size_stack(
    cores: int | None = None,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    auth_workers: int | None = None,
    items_workers: int | None = None,
    gateway_procs: int | None = None,
) -> Sizing:
    """The sizes for ``cores`` (default: this machine's); worker counts and the gateway's
    ``GOMAXPROCS`` may be fixed."""
    cores = max(1, cores if cores is not None else machine_cores())
    auth = auth_workers or max(1, cores // 4)
    available = max_connections - RESERVED_CONNECTIONS
    items = items_workers or max(1, min(cores, available - auth))
    if auth < 1 or items < 1:
        raise ValueError("a service needs at least one worker")
    gateway = gateway_procs or max(1, cores // 2)
    if gateway < 1:
        raise ValueError("the gateway needs at least one core")
    hashing = max(1, cores // auth)
    items_pool, items_overflow = ITEMS_POOL, 0
    auth_pool, auth_overflow = 1, hashing
    # Within the budget: items workers keep one connection each, then auth gives up its
    # overflow (down to one connection per worker), rather than fail to start.
    budget = max(available, auth + items)

    def connections() -> int:
        return auth * (auth_pool + auth_overflow) + items * (items_pool + items_overflow)

    while connections() > budget and items_pool > 1:
        items_pool -= 1
    while connections() > budget and auth_overflow > 0:
        auth_overflow -= 1
    return Sizing(
        cores=cores,
        auth_workers=auth,
        items_workers=items,
        hashing_threads=hashing,
        auth_pool_size=auth_pool,
        auth_max_overflow=auth_overflow,
        items_pool_size=items_pool,
        items_max_overflow=items_overflow,
        gateway_procs=gateway,
    )
