"""When each signing key signs and when it is published: pure functions of the key rows and
the time, so every replica reaches the same answer without coordination.

The rotation order (ARCHITECTURE.md, "Tokens"):

1. A new key is *published* from the moment it is created, but only *signs* from its
   ``activates_at`` (creation + a delay of at least the JWKS max-age). By then every verifier's
   cached JWKS holds it, so no verifier ever sees a token signed by a key it does not know.
2. A key signs from its ``activates_at`` until the next key's ``activates_at`` (it is then
   *superseded*).
3. A superseded key stays published for ``retention`` (the access-token lifetime plus the key
   reload interval plus the largest verifier leeway), so every token it signed can still be
   verified until it expires. After that it is *retired*: left out of the JWKS, and its private
   half can be erased.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeVar


class Scheduled(Protocol):
    @property
    def kid(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def activates_at(self) -> datetime: ...
    @property
    def retired_at(self) -> datetime | None: ...


K = TypeVar("K", bound=Scheduled)

# Where a key is in the rotation: not signing yet, signing, superseded but still published,
# or superseded and past retention (left out of the JWKS).
KeyState = Literal["pending", "signing", "verifying", "expired"]


def _order(key: Scheduled) -> tuple[datetime, datetime, str]:
    return (key.activates_at, key.created_at, key.kid)


def _live(keys: Sequence[K], now: datetime) -> list[K]:
    return sorted(
        (k for k in keys if k.retired_at is None or k.retired_at > now),
        key=_order,
    )


def signer(keys: Sequence[K], now: datetime) -> K | None:
    """The key that signs at ``now``: the most recently activated live key."""
    active = [k for k in _live(keys, now) if k.activates_at <= now]
    return active[-1] if active else None


def superseded_at(key: Scheduled, keys: Sequence[Scheduled], now: datetime) -> datetime | None:
    """When ``key`` stopped (or will stop) signing: the next live key's activation."""
    later = [k.activates_at for k in _live(keys, now) if _order(k) > _order(key)]
    return min(later) if later else None


def published(keys: Sequence[K], now: datetime, retention: timedelta) -> list[K]:
    """Keys a verifier may need at ``now``: pending, signing, and superseded within retention."""
    result = []
    for key in _live(keys, now):
        ended = superseded_at(key, keys, now)
        if ended is None or now < ended + retention:
            result.append(key)
    return result


def retirable(keys: Sequence[K], now: datetime, retention: timedelta) -> list[K]:
    """Live keys no token still in circulation can have been signed with."""
    live = _live(keys, now)
    keep = {k.kid for k in published(keys, now, retention)}
    return [k for k in live if k.kid not in keep]


def state(key: K, keys: Sequence[K], now: datetime, retention: timedelta) -> KeyState:
    """Where ``key`` (one of ``keys``) is in the rotation at ``now``."""
    if key is signer(keys, now):
        return "signing"
    if key.activates_at > now:
        return "pending"
    if key.kid in {k.kid for k in published(keys, now, retention)}:
        return "verifying"
    return "expired"
