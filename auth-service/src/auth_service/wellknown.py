"""``/.well-known``: the JWKS (RFC 7517) and authorization server metadata (RFC 8414)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from auth_service.deps import KeyRingDep, SettingsDep
from auth_service.oauth import service as oauth
from auth_service.responses import error_responses
from svckit.bearer import VerificationUnavailable
from svckit.scopes import SCOPES
from svckit.tokens import KeysUnavailable

router = APIRouter(prefix="/.well-known", tags=["discovery"])


class JWKSResponse(JSONResponse):
    media_type = "application/jwk-set+json"  # RFC 7517 §8.5.1


class PublicJWK(BaseModel):
    """A public RSA signing key (RFC 7517, RFC 7518 §6.3.1): never a private member."""

    kty: Literal["RSA"]
    kid: str
    use: Literal["sig"]
    alg: Literal["RS256"]
    n: str
    e: str


class JSONWebKeySet(BaseModel):
    keys: list[PublicJWK]


@router.get(
    "/jwks.json",
    summary="Public keys that verify access tokens",
    response_class=JWKSResponse,
    responses={200: {"model": JSONWebKeySet}, **error_responses(503)},
)
async def jwks(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    try:
        document = await keyring.jwks()
    except KeysUnavailable:
        raise VerificationUnavailable() from None
    max_age = settings.jwks_max_age_seconds
    return JWKSResponse(document, headers={"Cache-Control": f"public, max-age={max_age}"})


@router.get("/oauth-authorization-server", summary="RFC 8414 metadata")
async def metadata(settings: SettingsDep) -> JSONResponse:
    issuer = settings.issuer
    base = issuer.rstrip("/")
    document: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": f"{base}/auth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "scopes_supported": sorted(SCOPES),
        "grant_types_supported": list(oauth.GRANT_TYPES),
        # No authorization endpoint, so no response types (RFC 8414 §2).
        "response_types_supported": [],
        # "none": the first-party public client (password and refresh_token grants).
        "token_endpoint_auth_methods_supported": list(oauth.AUTH_METHODS),
        "revocation_endpoint": f"{base}/auth/revoke",
        "revocation_endpoint_auth_methods_supported": list(oauth.AUTH_METHODS),
        "introspection_endpoint": f"{base}/auth/introspect",
        "introspection_endpoint_auth_methods_supported": [
            m for m in oauth.AUTH_METHODS if m != "none"
        ],
        "service_documentation": f"{base}/docs/auth",
    }
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})
