"""Issuing RS256 access tokens (RFC 9068 profile: ``typ: at+jwt``)."""

from __future__ import annotations

import uuid
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
    user: User,
    *,
    kid: str,
    private_key: RSAPrivateKey,
    issuer: str,
    audience: str,
    lifetime: int,
    now: datetime,
) -> AccessToken:
    """Sign an access token for ``user`` (RSA signing is fast enough for the event loop)."""
    issued_at = int(now.timestamp())
    claims = {
        "iss": issuer,
        "sub": str(user.id),
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": uuid.uuid4().hex,
        "preferred_username": user.username,
        "email_verified": user.email_verified,
        "roles": roles_of(user),
    }
    token = jwt.encode(
        claims,
        private_key,
        algorithm="RS256",
        headers={"kid": kid, "typ": ACCESS_TOKEN_TYPE},
    )
    return AccessToken(token=token, expires_in=lifetime)
