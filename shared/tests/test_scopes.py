"""svckit.scopes: parsing, formatting, defaults and the RFC 6750 refusal."""

from __future__ import annotations

import pytest

from svckit.scopes import (
    ADMIN_SCOPES,
    SCOPES,
    USER_SCOPES,
    InsufficientScope,
    InvalidScopeSyntax,
    default_scopes,
    format_scope,
    parse_scope,
    require_scopes,
)


def test_parse_and_format_round_trip() -> None:
    assert parse_scope("items:read  items:write") == {"items:read", "items:write"}
    assert parse_scope("") == frozenset()
    assert format_scope({"items:write", "items:read"}) == "items:read items:write"


@pytest.mark.parametrize("value", ['items"read', "items\\read", "a\tb", "x" * 1025, "é"])
def test_characters_outside_rfc_6749_are_refused(value: str) -> None:
    with pytest.raises(InvalidScopeSyntax):
        parse_scope(value)


def test_defaults() -> None:
    assert default_scopes(is_admin=False) == USER_SCOPES == {"items:read", "items:write"}
    assert default_scopes(is_admin=True) == ADMIN_SCOPES == set(SCOPES)


def test_insufficient_scope_carries_the_rfc_6750_challenge() -> None:
    with pytest.raises(InsufficientScope) as refused:
        require_scopes(frozenset({"items:read"}), ["items:read", "items:write"])
    error = refused.value
    assert error.status_code == 403
    assert error.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="items:read items:write"'
    )
    assert error.extra["error"] == "insufficient_scope"
    require_scopes(frozenset({"items:read"}), ["items:read"])
