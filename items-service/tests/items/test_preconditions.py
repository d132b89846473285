"""ETag parsing (pure functions)."""

from __future__ import annotations

import pytest

from items_service.items.preconditions import etag, if_match_versions, if_none_match_hits


def test_etag_is_strong_and_names_id_and_version() -> None:
    assert etag(12, 3) == '"12-3"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("*", None),
        (" * ", None),
        ('"12-3"', [3]),
        ('"12-3", "12-4"', [3, 4]),
        ('W/"12-3"', []),  # If-Match compares strongly
        ('"13-3"', []),  # another item's tag
        ('"12-0"', []),
        ('"12-99999999999"', []),  # beyond the version column: cannot match
        ('"garbage"', []),
        ("12-3", []),  # unquoted: not an entity-tag
        ("", []),
        ('"12-3",junk,"12-5"', [3, 5]),
    ],
)
def test_if_match_versions(header: str | None, expected: list[int] | None) -> None:
    assert if_match_versions(header, 12) == expected


@pytest.mark.parametrize(
    ("header", "hit"),
    [
        (None, False),
        ("*", True),
        ('"12-3"', True),
        ('W/"12-3"', True),  # If-None-Match compares weakly
        ('"x", "12-3"', True),
        ('"12-4"', False),
        ("12-3", False),
    ],
)
def test_if_none_match(header: str | None, hit: bool) -> None:
    assert if_none_match_hits(header, '"12-3"') is hit
