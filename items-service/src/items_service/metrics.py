"""Prometheus metrics of items-service beyond svckit's request counts and latencies."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from svckit.jwks import JWKSCache


class JWKSCollector(Collector):
    """``items_jwks_fetches_total`` and ``items_jwks_fetch_failures_total`` of this process.

    Labelled with the process id: every uvicorn worker has its own cache and registry, and a
    scrape reaches one worker, so the label tells them apart (the benchmark checks that
    each worker fetches once per cache lifetime, never per request).
    """

    def __init__(self, jwks: JWKSCache) -> None:
        self._jwks = jwks

    def collect(self) -> Iterator[CounterMetricFamily]:
        pid = str(os.getpid())
        fetches = CounterMetricFamily(
            "items_jwks_fetches", "JWKS fetches from auth-service (attempts)", labels=["pid"]
        )
        fetches.add_metric([pid], self._jwks.fetch_count)
        failures = CounterMetricFamily(
            "items_jwks_fetch_failures", "JWKS fetches that failed", labels=["pid"]
        )
        failures.add_metric([pid], self._jwks.fetch_failures)
        yield fetches
        yield failures
