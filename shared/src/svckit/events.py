"""The events auth-service publishes to other services, written and read through one schema.

auth-service's outbox relays each event to a Redis stream as flat string fields: ``type``,
``event_id`` (a UUID), ``occurred_at`` (ISO 8601) and the payload's members:

* ``user.deleted``: ``user_id`` (a decimal PostgreSQL bigint);
* ``token.revoked``: ``jti`` (printable ASCII, at most 64 characters) and ``expires_at``.

Versioning: the fields above are version 1, which writes no ``version`` field (entries queued
before versions existed are version 1 too). A later, incompatible shape adds ``version`` and a
consumer that does not know it treats the entry as poison (dead-lettered, never half-applied).
Unknown event types are ignored, so a new type never breaks an older consumer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from svckit.db import BIGINT_MAX

USER_DELETED = "user.deleted"
TOKEN_REVOKED = "token.revoked"  # noqa: S105 (an event type)
MAX_JTI_LENGTH = 64
VERSION = 1


def stream_fields(
    kind: str, event_id: uuid.UUID, occurred_at: datetime, payload: dict[str, Any]
) -> dict[str, str]:
    """The stream entry of one event (version 1: no ``version`` field)."""
    return {
        **{name: str(value) for name, value in payload.items()},
        "type": kind,
        "event_id": event_id.hex,
        "occurred_at": occurred_at.isoformat(),
    }


class PoisonMessage(Exception):
    """A stream entry that can never be handled."""


@dataclass(frozen=True, slots=True)
class UserDeletedEvent:
    event_id: uuid.UUID
    user_id: int
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenRevokedEvent:
    event_id: uuid.UUID
    jti: str
    expires_at: datetime


Event = UserDeletedEvent | TokenRevokedEvent


def _timestamp(fields: dict[bytes, bytes], name: str) -> datetime | None:
    value = _text(fields, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PoisonMessage(f"{name} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _event_id(fields: dict[bytes, bytes]) -> uuid.UUID:
    try:
        return uuid.UUID(_text(fields, "event_id") or "")
    except ValueError:
        raise PoisonMessage("event_id is not a UUID") from None


def _token_revoked(fields: dict[bytes, bytes]) -> TokenRevokedEvent:
    jti = _text(fields, "jti")
    if not jti or len(jti) > MAX_JTI_LENGTH or not jti.isascii() or not jti.isprintable():
        raise PoisonMessage("jti is not a token id")
    expires_at = _timestamp(fields, "expires_at")
    if expires_at is None:
        raise PoisonMessage("no expires_at")
    return TokenRevokedEvent(_event_id(fields), jti, expires_at)


def _text(fields: dict[bytes, bytes], name: str) -> str | None:
    raw = fields.get(name.encode())
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PoisonMessage(f"{name} is not UTF-8") from None


def parse_event(fields: dict[bytes, bytes]) -> Event | None:
    """The event in a stream entry; ``None`` for event types this service ignores.

    Raises :class:`PoisonMessage` for an entry that is not a valid event.
    """
    kind = _text(fields, "type")
    if kind is None:
        raise PoisonMessage("no type")
    version = _text(fields, "version")
    if version is not None and version != str(VERSION):
        raise PoisonMessage("unsupported event version")
    if kind == TOKEN_REVOKED:
        return _token_revoked(fields)
    if kind != USER_DELETED:
        return None
    user_id = _text(fields, "user_id")
    if not user_id or not (user_id.isascii() and user_id.isdecimal()) or len(user_id) > 19:
        raise PoisonMessage("user_id is not a decimal user id")
    if int(user_id) > BIGINT_MAX:
        raise PoisonMessage("user_id is out of range")
    event_id = _text(fields, "event_id")
    try:
        parsed_id = uuid.UUID(event_id or "")
    except ValueError:
        raise PoisonMessage("event_id is not a UUID") from None
    occurred_at = None
    occurred = _text(fields, "occurred_at")
    if occurred is not None:
        try:
            occurred_at = datetime.fromisoformat(occurred)
        except ValueError:
            raise PoisonMessage("occurred_at is not an ISO 8601 timestamp") from None
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
    return UserDeletedEvent(parsed_id, int(user_id), occurred_at)
