"""Helpers the svckit test modules share (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
from fastapi import FastAPI

from svckit.app import install_common
from svckit.health import Check

ISSUER = "http://127.0.0.1:8080"
AUDIENCE = "api"


class Clock:
    """A monotonic clock the test moves by hand (JWKSCache takes ``clock=``)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def service_app(
    *,
    readiness_checks: Callable[[], Mapping[str, Check]] | None = None,
    access_log: bool = True,
) -> FastAPI:
    """A tiny app wired like the real services (``install_common``)."""
    app = FastAPI()
    install_common(
        app,
        service="test",
        readiness_checks=readiness_checks or (lambda: {}),
        access_log=access_log,
    )
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
