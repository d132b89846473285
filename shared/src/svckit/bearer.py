"""FastAPI dependencies that turn an ``Authorization: Bearer`` header into verified claims.

The app keeps its :class:`~svckit.tokens.TokenVerifier` on ``app.state.token_verifier``
(built in its lifespan). Missing credentials answer 401 with ``WWW-Authenticate: Bearer``;
a bad token 401 with ``Bearer error="invalid_token"``; no keys at all 503. A route that
declares scopes (``Security(required_claims, scopes=[...])``) answers 403
``Bearer error="insufficient_scope"`` (RFC 6750 §3.1) to a token without them.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from svckit.errors import ServiceError
from svckit.scopes import SCOPES, require_scopes
from svckit.tokens import AccessClaims, InvalidToken, KeysUnavailable, TokenVerifier

logger = logging.getLogger("svckit.bearer")

# tokenUrl is the public path at the gateway, so "Authorize" works from every service's docs.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", scopes=SCOPES, auto_error=False)


class NotAuthenticated(ServiceError):
    status_code = 401
    code = "not_authenticated"
    detail = "Not authenticated"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(ServiceError):
    status_code = 401
    code = "invalid_token"
    detail = "Invalid or expired access token"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class VerificationUnavailable(ServiceError):
    status_code = 503
    code = "keys_unavailable"
    detail = "Token verification keys are unavailable; try again shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "5"})


async def token_verifier(request: Request) -> TokenVerifier:
    """The app's verifier; 503 (not a 500) while the lifespan has not set one."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise VerificationUnavailable()
    return verifier


async def verify_bearer(verifier: TokenVerifier, token: str) -> AccessClaims:
    """Verify ``token`` or raise the matching :class:`ServiceError`."""
    try:
        return await verifier.verify(token)
    except InvalidToken as exc:
        logger.info("access token rejected", extra={"reason": str(exc)})
        raise InvalidCredentials() from None
    except KeysUnavailable:
        raise VerificationUnavailable() from None


async def optional_claims(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    verifier: Annotated[TokenVerifier, Depends(token_verifier)],
) -> AccessClaims | None:
    """Claims of a valid bearer token, ``None`` without one; an invalid token is still 401."""
    if not token:
        return None
    return await verify_bearer(verifier, token)


async def required_claims(
    security_scopes: SecurityScopes,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    verifier: Annotated[TokenVerifier, Depends(token_verifier)],
) -> AccessClaims:
    """Claims of a valid bearer token holding the route's scopes; 401 without one."""
    if not token:
        raise NotAuthenticated()
    claims = await verify_bearer(verifier, token)
    require_scopes(claims.scopes, security_scopes.scopes)
    return claims


Claims = Annotated[AccessClaims, Depends(required_claims)]
OptionalClaims = Annotated[AccessClaims | None, Depends(optional_claims)]
