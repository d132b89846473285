"""Liveness and readiness endpoints.

``/healthz`` answers as long as the process serves requests. ``/readyz`` runs the service's
checks concurrently, each with a timeout, and answers 503 listing what is not ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[bool]]
logger = logging.getLogger("svckit.health")


async def _run_check(name: str, check: Check, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            return bool(await check())
    except Exception as exc:
        logger.warning("readiness check failed", extra={"check": name, "error": type(exc).__name__})
        return False


def health_router(checks: Callable[[], Mapping[str, Check]], *, timeout: float = 2.0) -> APIRouter:
    """A router with ``/healthz`` and ``/readyz``.

    ``checks`` is called per request and returns named async checks, so they can reach objects
    built in the app's lifespan.
    """
    router = APIRouter(tags=["health"], include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            named = dict(checks())
        except Exception:
            # e.g. called before the lifespan built what the checks reach: not ready, not a 500
            logger.warning("readiness checks could not be built", exc_info=True)
            return JSONResponse({"status": "not_ready", "checks": {}}, status_code=503)
        results = await asyncio.gather(*(_run_check(n, c, timeout) for n, c in named.items()))
        status = dict(zip(named, ("ok" if r else "unavailable" for r in results), strict=True))
        ready = all(results)
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": status},
            status_code=200 if ready else 503,
        )

    return router
