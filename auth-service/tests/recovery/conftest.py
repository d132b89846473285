from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auth_service.runtime import Runtime

from ..conftest import AppContext
from ..smtp_server import SmtpServer


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()


class MailApp:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def deliver(self) -> None:
        """What the background relay does after a commit (tests run without it)."""
        await self.runtime.mail.run_once()


@pytest.fixture
def mail_app(app_context: AppContext, smtp: SmtpServer) -> Any:
    """``async with mail_app(**settings) as m``: an app whose mail goes to ``smtp``."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[MailApp]:
        overrides.setdefault("smtp_url", smtp.url)
        overrides.setdefault("public_url", "https://public.example")
        overrides.setdefault("mail_retry_base_seconds", 1)
        async with app_context(**overrides) as (app, client):
            yield MailApp(app, client)

    return run
