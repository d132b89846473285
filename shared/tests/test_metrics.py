"""Prometheus metrics: counted by route template, one registry per app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from svckit_support import client_for, service_app


def build_app() -> FastAPI:
    app = service_app()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return app


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


async def test_requests_are_counted_by_route_template() -> None:
    app = build_app()
    async with client_for(app) as client:
        for i in range(3):
            assert (await client.get(f"/items/{i}")).status_code == 200
        await client.get("/items/x")  # 422, same template
        for i in range(5):
            await client.get(f"/random/{i}")  # unmatched: one label, not five
        assert (await client.get("/boom")).status_code == 500
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts = samples(response.text, "http_requests_total")
    assert counts[key(service="test", method="GET", route="/items/{item_id}", status="200")] == 3
    assert counts[key(service="test", method="GET", route="/items/{item_id}", status="422")] == 1
    assert counts[key(service="test", method="GET", route="unmatched", status="404")] == 5
    assert counts[key(service="test", method="GET", route="/boom", status="500")] == 1
    assert not any("/random/" in dict(labels)["route"] for labels in counts)
    latency = samples(response.text, "http_request_duration_seconds_count")
    assert latency[key(service="test", method="GET", route="/items/{item_id}")] == 4


async def test_each_app_has_its_own_registry() -> None:
    first, second = build_app(), build_app()
    async with client_for(first) as client:
        await client.get("/items/1")
    async with client_for(second) as client:
        text = (await client.get("/metrics")).text
    counts = samples(text, "http_requests_total")
    assert key(service="test", method="GET", route="/items/{item_id}", status="200") not in counts


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_internal_routes_are_not_in_the_openapi_schema(path: str) -> None:
    assert path not in build_app().openapi()["paths"]
