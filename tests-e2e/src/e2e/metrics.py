"""Reading a service's Prometheus ``/metrics`` (internal: not routed by the gateway)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample_total(base_url: str, name: str) -> float:
    """The sum over every label set of the sample ``name`` at ``base_url``/metrics."""
    response = httpx.get(f"{base_url}/metrics", timeout=5, trust_env=False)
    response.raise_for_status()
    found = False
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found = True
                total += sample.value
    assert found, f"{base_url}/metrics has no sample {name!r}"
    return total
