"""Issuing RS256 access tokens (RFC 9068 profile: ``typ: at+jwt``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from auth_service.models import User

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (RFC 9068 "typ", not a secret)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int


def roles_of(user: User) -> list[str]:
    return ["admin"] if user.is_admin else []


def issue_access_token(
    user: User | None,
    *,
    client_id: str,
    scope: str,
    kid: str,
    private_key: RSAPrivateKey,
    issuer: str,
    audience: str,
    lifetime: int,
    now: datetime,
    amr: Sequence[str] | None = None,
) -> AccessToken:
    """Sign an access token for ``user``, or with ``user=None`` a service client's own token
    (``sub`` = ``client_id``, RFC 9068 §2.2). ``amr``: how the user authenticated (RFC 8176),
    for user tokens. RSA signing is fast enough for the event loop."""
    issued_at = int(now.timestamp())
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": str(user.id) if user is not None else client_id,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "scope": scope,
    }
    if user is not None:
        claims["preferred_username"] = user.username
        claims["email_verified"] = user.email_verified
        claims["roles"] = roles_of(user)
        if amr:
            claims["amr"] = list(amr)
    token = jwt.encode(
        claims,
        private_key,
        algorithm="RS256",
        headers={"kid": kid, "typ": ACCESS_TOKEN_TYPE},
    )
    return AccessToken(token=token, expires_in=lifetime)
