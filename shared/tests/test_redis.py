"""svckit.redis: the consumer-group reader's client against a real Redis."""

from __future__ import annotations

import uuid

from svckit.redis import close_redis, connect_stream_reader


async def test_stream_reader_gets_resp2_entries_as_bytes(redis_url: str) -> None:
    stream = f"svckit-test-{uuid.uuid4().hex[:8]}"
    client = connect_stream_reader(redis_url, block_seconds=0.1)
    try:
        await client.xgroup_create(stream, "group", id="0", mkstream=True)
        message_id = await client.xadd(stream, {"type": "user.deleted"})
        reply = await client.xreadgroup("group", "me", {stream: ">"}, count=10, block=100)
        # RESP2: [[stream, [(id, {field: value})]]], all bytes (what the consumers parse).
        assert reply == [[stream.encode(), [(message_id, {b"type": b"user.deleted"})]]]
        # A blocking read on an idle stream is an empty reply, not a socket timeout.
        assert await client.xreadgroup("group", "me", {stream: ">"}, block=100) == []
    finally:
        await client.delete(stream)
        await close_redis(client)
