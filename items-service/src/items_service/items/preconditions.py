"""ETags and conditional requests (RFC 9110 §8.8.3, §13.1.1, §13.1.2).

An item's ETag is strong and names its id and version: ``"<id>-<version>"``. Every update
bumps the version, so the ETag changes exactly when the representation may have changed.
"""

from __future__ import annotations

import re

# An entity-tag: optional weakness marker, then an opaque quoted string.
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')
_OURS = re.compile(r"^(\d{1,19})-(\d{1,10})$")
_MAX_VERSION = 2**31 - 1


def etag(item_id: int, version: int) -> str:
    return f'"{item_id}-{version}"'


def _entity_tags(header: str) -> list[tuple[bool, str]]:
    """``(weak, opaque)`` pairs of a list of entity-tags; malformed members are skipped."""
    return [(bool(m.group(1)), m.group(2)) for m in _ENTITY_TAG.finditer(header)]


def if_match_versions(header: str | None, item_id: int) -> list[int] | None:
    """The versions of ``item_id`` that an ``If-Match`` header accepts.

    ``None`` means "no condition" (no header, or ``*``, which matches any existing item).
    Otherwise the list may be empty: nothing the client sent can match. If-Match uses strong
    comparison, so weak tags never match.
    """
    if header is None or header.strip() == "*":
        return None
    versions: list[int] = []
    for weak, opaque in _entity_tags(header):
        match = _OURS.match(opaque)
        if weak or match is None or int(match.group(1)) != item_id:
            continue
        version = int(match.group(2))
        if 1 <= version <= _MAX_VERSION:
            versions.append(version)
    return versions


def if_none_match_hits(header: str | None, current: str) -> bool:
    """Whether ``If-None-Match`` matches the current ETag (weak comparison; ``*`` matches)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = current.strip('"')
    return any(opaque == wanted for _weak, opaque in _entity_tags(header))
