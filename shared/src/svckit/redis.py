"""The Redis clients both services use, and their lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

# The workspace's types-redis stubs make Redis generic; redis-py's own class is not.
if TYPE_CHECKING:
    StreamClient = Redis[bytes]
else:
    StreamClient = Redis


def connect_stream_reader(url: str, *, block_seconds: float) -> StreamClient:
    """A client for a consumer-group reader (``XREADGROUP ... BLOCK``).

    RESP2 replies (the shape the readers parse; redis-py 8 defaults to RESP3), bytes not
    decoded (entries are parsed field by field), bounded connects, and a socket timeout
    longer than the blocking read so an idle stream is not mistaken for a dead server.
    """
    client: StreamClient = Redis.from_url(  # type: ignore[call-overload]
        url,
        protocol=2,
        socket_connect_timeout=3,
        socket_timeout=block_seconds + 5,
        health_check_interval=30,
    )
    return client


async def close_redis(client: Redis[Any]) -> None:
    """Close ``client`` and its pool (awaited, so no connection outlives the app)."""
    # The workspace's types-redis stubs predate aclose(); redis>=5 deprecates close().
    await client.aclose()  # type: ignore[attr-defined]
