"""items-service metrics on ``/metrics``, next to svckit's request metrics.

Read from the live objects at scrape time (no bookkeeping on the request path). Every sample
carries the worker's ``pid``: each uvicorn worker has its own registry and JWKS cache, so the
benchmark can tell that every worker fetched the JWKS about once, not once per request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from items_service.runtime import Runtime


class ItemsCollector(Collector):
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        runtime: Runtime | None = getattr(self.app.state, "runtime", None)
        if runtime is None:  # scraped before the lifespan started
            return
        pid = [str(os.getpid())]
        jwks = runtime.jwks
        yield _counter(
            "items_jwks_fetches", "JWKS fetches from auth-service", pid, jwks.fetch_count
        )
        yield _counter(
            "items_jwks_fetch_failures", "JWKS fetches that failed", pid, jwks.fetch_failures
        )
        yield _gauge("items_jwks_keys", "Verification keys held", pid, len(jwks.kids))
        verifier = runtime.verifier
        yield _counter(
            "items_token_cache_hits", "Tokens accepted from the verified-token cache", pid,
            verifier.hits,
        )  # fmt: skip
        yield _counter("items_token_cache_misses", "Tokens verified with RSA", pid, verifier.misses)
        yield _gauge(
            "items_deleted_users", "Deleted users known to this worker", pid,
            len(runtime.deleted_users),
        )  # fmt: skip
        consumer = runtime.consumer
        if consumer is not None:
            yield _counter(
                "items_user_events_handled", "user.deleted events applied", pid, consumer.handled
            )
            yield _counter(
                "items_user_events_dead_lettered", "Entries moved to the dead-letter stream", pid,
                consumer.dead_lettered,
            )  # fmt: skip


def _counter(name: str, documentation: str, pid: list[str], value: float) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["pid"])
    family.add_metric(pid, value)
    return family


def _gauge(name: str, documentation: str, pid: list[str], value: float) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["pid"])
    family.add_metric(pid, value)
    return family


def install_items_metrics(app: FastAPI) -> None:
    """Register the collector on the app's registry (``install_common`` creates it)."""
    app.state.metrics.registry.register(ItemsCollector(app))
