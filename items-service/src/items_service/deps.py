"""What routes declare: the bearer-claims dependency and the parameter aliases.

Hot routes take their query and path parameters directly (these ``Annotated`` aliases) and
the pool from the app state, not through ``Depends`` wrappers: each nested dependency costs
FastAPI ~30 µs of solving per request, a fifth of a fast read. The claims stay a dependency,
which is what puts the security scheme into OpenAPI. Every dependency is ``async def``:
FastAPI runs a plain ``def`` dependency in a worker thread, which costs more than the rest of
a fast request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import SecurityScopes

from items_service.db import Database
from items_service.items.errors import ItemNotFound
from svckit.bearer import NotAuthenticated, oauth2_scheme, verify_bearer
from svckit.db import BIGINT_MAX
from svckit.scopes import ITEMS_MODERATE, ITEMS_READ, ITEMS_WRITE, InsufficientScope, require_scopes
from svckit.tokens import AccessClaims, TokenVerifier

__all__ = [
    "After",
    "Claims",
    "ItemIdPath",
    "Limit",
    "ReadClaims",
    "Skip",
    "WriteClaims",
    "WriterClaims",
    "database",
    "valid_item_id",
]

MAX_PAGE_SIZE = 100


def database(request: Request) -> Database:
    """The app's pool (built in the lifespan)."""
    db: Database = request.app.state.db
    return db


async def required_claims(
    request: Request,
    security_scopes: SecurityScopes,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> AccessClaims:
    """Verified bearer claims holding the route's scopes; 401 without a token or with a bad
    one, 403 ``insufficient_scope`` without the scopes, 503 without keys.

    svckit's ``Claims`` with the same scheme and errors, minus its thread hop (its
    ``token_verifier`` dependency is a plain ``def``).
    """
    if not token:
        raise NotAuthenticated()
    verifier: TokenVerifier = request.app.state.token_verifier
    claims = await verify_bearer(verifier, token)
    require_scopes(claims.scopes, security_scopes.scopes)
    return claims


async def writer_claims(claims: Annotated[AccessClaims, Depends(required_claims)]) -> AccessClaims:
    """Claims that may change some item: ``items:write`` (own items) or ``items:moderate``."""
    if ITEMS_WRITE not in claims.scopes and ITEMS_MODERATE not in claims.scopes:
        raise InsufficientScope([ITEMS_WRITE])
    return claims


Claims = Annotated[AccessClaims, Depends(required_claims)]
# GET /items/my-items
ReadClaims = Annotated[AccessClaims, Security(required_claims, scopes=[ITEMS_READ])]
# POST /items/
WriteClaims = Annotated[AccessClaims, Security(required_claims, scopes=[ITEMS_WRITE])]
# PUT / PATCH / DELETE /items/{id}: the owner with items:write, or a moderator
WriterClaims = Annotated[AccessClaims, Depends(writer_claims)]

ItemIdPath = Annotated[int, Path(description="The item's id")]


def valid_item_id(item_id: int) -> int:
    """An integer that no item can have is "not found" (never a database error)."""
    if not 1 <= item_id <= BIGINT_MAX:
        raise ItemNotFound()
    return item_id


Skip = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Items to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size (1..100)")]
After = Annotated[
    int | None,
    Query(
        ge=0,
        le=BIGINT_MAX,
        description="Keyset cursor: only items with an id greater than this, in constant time "
        'at any depth. Follow the `Link: rel="next"` header rather than building it; `skip` '
        "then counts from the cursor.",
    ),
]
