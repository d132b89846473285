"""OAuth2 scopes (RFC 6749 §3.3) both services agree on, and the errors that refuse a token.

The set is small and fixed:

=================  ==========================================================================
``items:read``     read the caller's own items (``GET /items/my-items``)
``items:write``    create items, change and delete the caller's own items
``items:moderate`` change and delete anyone's items (administrators and service clients)
``users:admin``    administer accounts and registered clients (administrators only)
=================  ==========================================================================

A user token asked for with no ``scope`` gets every scope its user may have
(:func:`default_scopes`), i.e. the abilities user tokens had before scopes existed; tokens
issued before scopes existed carry no ``scope`` claim and are read the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from svckit.errors import ServiceError

ITEMS_READ = "items:read"
ITEMS_WRITE = "items:write"
ITEMS_MODERATE = "items:moderate"
USERS_ADMIN = "users:admin"

SCOPES: dict[str, str] = {
    ITEMS_READ: "Read your own items",
    ITEMS_WRITE: "Create items, change and delete your own items",
    ITEMS_MODERATE: "Change and delete anyone's items",
    USERS_ADMIN: "Administer accounts and registered clients",
}
USER_SCOPES = frozenset({ITEMS_READ, ITEMS_WRITE})
ADMIN_SCOPES = frozenset(SCOPES)
# What a registered (machine) client may be allowed: never account administration, which
# needs an administrator in person.
CLIENT_SCOPES = frozenset({ITEMS_READ, ITEMS_WRITE, ITEMS_MODERATE})

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
MAX_SCOPE_LENGTH = 1024


class InvalidScopeSyntax(ValueError):
    """A ``scope`` value that is not a space-separated list of scope tokens."""


def default_scopes(*, is_admin: bool) -> frozenset[str]:
    """Every scope a user may hold: an administrator's include moderation and administration."""
    return ADMIN_SCOPES if is_admin else USER_SCOPES


def parse_scope(value: str) -> frozenset[str]:
    """The scopes of a space-separated ``scope`` value (empty for an empty value).

    Raises :class:`InvalidScopeSyntax` for characters RFC 6749 §3.3 does not allow.
    """
    if len(value) > MAX_SCOPE_LENGTH:
        raise InvalidScopeSyntax("scope is too long")
    tokens = value.split(" ")
    scopes = {t for t in tokens if t}
    if not all(_SCOPE_TOKEN.fullmatch(t) for t in scopes):
        raise InvalidScopeSyntax("scope holds characters RFC 6749 §3.3 does not allow")
    return frozenset(scopes)


def format_scope(scopes: Iterable[str]) -> str:
    """The ``scope`` value of a set of scopes: space-separated, in a stable order."""
    return " ".join(sorted(set(scopes)))


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class InsufficientScope(ServiceError):
    """403 with the RFC 6750 §3.1 challenge naming the scope the request needs."""

    status_code = 403
    code = "insufficient_scope"
    detail = "The access token does not grant the scope this request needs"

    def __init__(self, required: Iterable[str]) -> None:
        scope = format_scope(required)
        super().__init__(
            f"The access token lacks the scope this request needs: {scope}",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{_quoted(scope)}"'
            },
            extra={
                "error": "insufficient_scope",
                "error_description": f"requires scope {scope}",
                "scope": scope,
            },
        )


class UserTokenRequired(ServiceError):
    """A service client's token (``sub`` = the client) where only a user may act."""

    status_code = 403
    code = "user_token_required"
    detail = "This request needs a user's access token, not a service client's"

    def __init__(self) -> None:
        super().__init__(
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            extra={"error": "insufficient_scope", "error_description": self.detail},
        )


def require_scopes(granted: frozenset[str], required: Iterable[str]) -> None:
    """Raise :class:`InsufficientScope` unless every ``required`` scope is ``granted``."""
    needed = list(required)
    if not all(scope in granted for scope in needed):
        raise InsufficientScope(needed)
