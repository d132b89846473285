"""Verification of RS256 access tokens (RFC 9068 profile) against a JWKS.

What is accepted, and why (ARCHITECTURE.md, "Tokens"; RFC 8725):

* the algorithm is bound to the key: only ``RS256`` is ever passed to PyJWT, whatever the
  header says, so ``none``, HMAC-with-the-public-key and algorithm swaps all fail;
* ``kid`` is required and must be published in the JWKS; ``typ`` must be ``at+jwt``;
* ``jku``, ``x5u``, ``x5c`` and ``jwk`` headers are never followed: a token carrying one is
  rejected, since this issuer never sets them; any ``crit`` header is rejected (no extension
  is understood);
* ``iss`` must equal the configured issuer exactly, ``aud`` must contain the audience,
  ``exp``, ``iat``, ``sub`` are required; ``exp``, ``nbf`` and ``iat`` are checked with a
  leeway of at most 60 seconds;
* header and payload must be base64url-encoded UTF-8 (no UTF-16/32, no byte order mark) and
  the header a JSON object without duplicate members, so no parser can read it differently;
* ``sub`` must be a decimal user id (a PostgreSQL bigint), or, for a service client's own
  token (RFC 9068 §2.2: no resource owner), equal to ``client_id``, which never starts with a
  digit, so a machine token can never be read as a user's; ``roles`` a list of strings;
* ``scope`` (RFC 9068 §2.2.3) a space-separated string; a user token without one (issued
  before scopes existed) holds its user's default scopes (:mod:`svckit.scopes`);
* any malformed input raises :class:`InvalidToken`, never anything else.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from svckit.db import BIGINT_MAX
from svckit.jwks import KeysUnavailable
from svckit.scopes import (
    ITEMS_MODERATE,
    InvalidScopeSyntax,
    UserTokenRequired,
    default_scopes,
    parse_scope,
)

__all__ = ["AccessClaims", "InvalidToken", "KeySource", "KeysUnavailable", "TokenVerifier"]

ALGORITHM = "RS256"
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_LEEWAY_SECONDS = 60
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "jwk", "crit"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")  # base64url without padding; used with fullmatch
# Registered client ids: a letter first, so no client id is ever a user id.
CLIENT_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


class InvalidToken(Exception):
    """The token is not an acceptable access token. The message is for logs, not clients."""


class KeySource(Protocol):
    async def get_key(self, kid: str) -> RSAPublicKey | None: ...


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token that the services use."""

    subject: str
    roles: frozenset[str]
    username: str | None
    token_id: str | None
    expires_at: int
    claims: dict[str, Any]
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    # A service client's own token (client credentials): ``sub`` is the client, not a user.
    is_machine: bool = False

    @property
    def user_id(self) -> int:
        """``sub`` as the integer user id of auth-service.

        Raises :class:`~svckit.scopes.UserTokenRequired` (403) for a machine token, so no
        route that acts for a user can be reached with one.
        """
        if self.is_machine:
            raise UserTokenRequired()
        return int(self.subject)

    @property
    def is_admin(self) -> bool:
        return not self.is_machine and "admin" in self.roles

    @property
    def may_moderate(self) -> bool:
        """May change anyone's items: ``items:moderate`` held by an admin or a service client."""
        return ITEMS_MODERATE in self.scopes and (self.is_machine or self.is_admin)


class TokenVerifier:
    """Verifies access tokens of one issuer for one audience."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        max_token_bytes: int = 8192,
    ) -> None:
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds")
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes

    def _header(self, token: str) -> dict[str, Any]:
        if len(token) > self.max_token_bytes:
            raise InvalidToken("token too large")
        segments = token.split(".")
        if len(segments) != 3 or not all(_SEGMENT.fullmatch(s) for s in segments):
            raise InvalidToken("not a compact JWS")
        # Parsed here, strictly, rather than by PyJWT: json.loads(bytes) would also accept
        # UTF-16/32 and a byte order mark, and silently keep the last of duplicate members.
        header_text = _utf8(segments[0])
        _utf8(segments[1])
        try:
            header = json.loads(header_text, object_pairs_hook=_unique_members)
        except (ValueError, RecursionError) as exc:
            raise InvalidToken(f"bad header: {type(exc).__name__}") from None
        if not isinstance(header, dict):
            raise InvalidToken("header is not a JSON object")
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token (typ)")
        if _FORBIDDEN_HEADERS & header.keys():
            raise InvalidToken("forbidden header parameter")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 256:
            raise InvalidToken("missing or malformed kid")
        return header

    async def verify(self, token: str) -> AccessClaims:
        """Verify ``token`` and return its claims.

        Raises :class:`InvalidToken` for any token that is not acceptable, and
        :class:`KeysUnavailable` when no keys at all can be had (callers answer 503).
        """
        header = self._header(token)
        key = await self._keys.get_key(header["kid"])
        if key is None:
            raise InvalidToken("unknown kid")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "strict_aud": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise InvalidToken(f"rejected: {type(exc).__name__}") from None
        return _claims(payload)


def _utf8(segment: str) -> str:
    """A base64url segment decoded to text; only UTF-8 without a byte order mark is text."""
    try:
        text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        raise InvalidToken("segment is not base64url-encoded UTF-8") from None
    if text.startswith("\ufeff"):
        raise InvalidToken("byte order mark in segment")
    return text


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _claims(payload: dict[str, Any]) -> AccessClaims:
    subject = payload["sub"]
    roles = payload.get("roles", [])
    username = payload.get("preferred_username")
    jti = payload.get("jti")
    exp = payload["exp"]
    client_id = payload.get("client_id")
    if client_id is not None and not (
        isinstance(client_id, str) and _CLIENT_ID.fullmatch(client_id)
    ):
        raise InvalidToken("client_id is not a client id")
    if not isinstance(subject, str):
        raise InvalidToken("sub is not a string")
    machine = client_id is not None and subject == client_id
    if not machine:
        if not (subject.isascii() and subject.isdecimal()):
            raise InvalidToken("sub is not a user id")
        if len(subject) > 19 or int(subject) > BIGINT_MAX:
            # beyond bigint a lookup would fail in the database (a 500) instead of here (a 401)
            raise InvalidToken("sub is not a user id")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles must be a list of strings")
    if username is not None and not isinstance(username, str):
        raise InvalidToken("preferred_username must be a string")
    if jti is not None and not isinstance(jti, str):
        raise InvalidToken("jti must be a string")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidToken("exp must be a number")
    if machine and roles:
        raise InvalidToken("a client's own token has no roles")
    scope = payload.get("scope")
    if scope is None:
        scopes = frozenset() if machine else default_scopes(is_admin="admin" in roles)
    elif isinstance(scope, str):
        try:
            scopes = parse_scope(scope)
        except InvalidScopeSyntax:
            raise InvalidToken("scope is malformed") from None
    else:
        raise InvalidToken("scope must be a string")
    return AccessClaims(
        subject=subject,
        roles=frozenset(roles),
        username=username,
        token_id=jti,
        expires_at=int(exp),
        claims=payload,
        client_id=client_id,
        scopes=scopes,
        is_machine=machine,
    )
