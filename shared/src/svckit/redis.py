"""The Redis client lifecycle both services share."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


async def close_redis(client: Redis[Any]) -> None:
    """Close ``client`` and its pool (awaited, so no connection outlives the app)."""
    # The workspace's types-redis stubs predate aclose(); redis>=5 deprecates close().
    await client.aclose()  # type: ignore[attr-defined]
