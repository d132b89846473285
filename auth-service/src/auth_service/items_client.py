"""Fetching the caller's items from items-service for ``GET /users/me``.

Any failure (connection refused, timeout, non-200, a body that is not a list of items) gives
``None``, which the endpoint returns as ``items: null``: "unknown", never a fake empty list and
never an error for the whole request. The whole call, body included, is bounded by one
deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from svckit.request_id import outgoing_headers

logger = logging.getLogger("auth_service.items_client")

MAX_BODY_BYTES = 2 * 1024 * 1024
PAGE_LIMIT = 100


class Item(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    title: str
    description: str | None = None
    owner_id: int
    created_at: datetime
    updated_at: datetime | None = None


_ITEMS = TypeAdapter(list[Item])


async def fetch_my_items(
    client: httpx.AsyncClient, *, base_url: str, token: str, timeout: float
) -> list[Item] | None:
    url = base_url.rstrip("/") + "/items/my-items"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    headers.update(outgoing_headers())
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "GET",
                url,
                params={"limit": PAGE_LIMIT},
                headers=headers,
                timeout=timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise ValueError(f"items-service answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ValueError("items-service response too large")
        return _ITEMS.validate_python(json.loads(body))
    except (TimeoutError, httpx.HTTPError, ValueError, ValidationError) as exc:
        logger.warning(
            "items-service unavailable for /users/me",
            extra={"error": type(exc).__name__},
        )
        return None
