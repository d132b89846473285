"""The cross-service event schema: what auth-service writes is what items-service reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from svckit.events import (
    TOKEN_REVOKED,
    USER_DELETED,
    PoisonMessage,
    TokenRevokedEvent,
    UserDeletedEvent,
    parse_event,
    stream_fields,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _wire(fields: dict[str, str]) -> dict[bytes, bytes]:
    """As a RESP2 stream read returns them."""
    return {k.encode(): v.encode() for k, v in fields.items()}


def test_user_deleted_round_trips() -> None:
    event_id = uuid.uuid4()
    fields = stream_fields(USER_DELETED, event_id, NOW, {"user_id": 42})
    assert fields == {
        "type": "user.deleted",
        "user_id": "42",
        "event_id": event_id.hex,
        "occurred_at": NOW.isoformat(),
    }
    assert parse_event(_wire(fields)) == UserDeletedEvent(event_id, 42, NOW)


def test_token_revoked_round_trips() -> None:
    event_id = uuid.uuid4()
    expires = NOW + timedelta(minutes=30)
    fields = stream_fields(
        TOKEN_REVOKED, event_id, NOW, {"jti": "abc-123", "expires_at": expires.isoformat()}
    )
    assert parse_event(_wire(fields)) == TokenRevokedEvent(event_id, "abc-123", expires)


def test_version_one_may_be_explicit() -> None:
    fields = stream_fields(USER_DELETED, uuid.uuid4(), NOW, {"user_id": 7})
    event = parse_event(_wire({**fields, "version": "1"}))
    assert isinstance(event, UserDeletedEvent)
    assert event.user_id == 7


@pytest.mark.parametrize("version", ["2", "0", "", "v1"])
def test_an_unknown_version_is_poison(version: str) -> None:
    fields = stream_fields(USER_DELETED, uuid.uuid4(), NOW, {"user_id": 7})
    with pytest.raises(PoisonMessage, match="version"):
        parse_event(_wire({**fields, "version": version}))


def test_unknown_types_are_ignored() -> None:
    fields = stream_fields("user.renamed", uuid.uuid4(), NOW, {"user_id": 7})
    assert parse_event(_wire(fields)) is None
