"""What routes declare: the app's runtime, the scoped claims (svckit's bearer dependency) and
the parameter aliases.

Hot routes take their query and path parameters directly (these ``Annotated`` aliases), not
through ``Depends`` wrappers: each nested dependency costs FastAPI some solving per request.
The runtime is one dependency (everything the lifespan built, ``runtime.Runtime``), and the
claims stay a dependency, which is what puts the security scheme into OpenAPI. Every
dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which
costs more than the rest of a fast request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security

from items_service.items.errors import ItemNotFound
from items_service.runtime import Runtime
from svckit.bearer import Claims, required_claims
from svckit.db import BIGINT_MAX
from svckit.scopes import ITEMS_MODERATE, ITEMS_READ, ITEMS_WRITE, InsufficientScope
from svckit.tokens import AccessClaims

__all__ = [
    "After",
    "ItemIdPath",
    "Limit",
    "ReadClaims",
    "RuntimeDep",
    "Skip",
    "WriteClaims",
    "WriterClaims",
    "valid_item_id",
]

MAX_PAGE_SIZE = 100


async def runtime(request: Request) -> Runtime:
    """What the lifespan built (``app.state.runtime``)."""
    built: Runtime = request.app.state.runtime
    return built


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def writer_claims(claims: Claims) -> AccessClaims:
    """Claims that may change some item: ``items:write`` (own items) or ``items:moderate``."""
    if ITEMS_WRITE not in claims.scopes and ITEMS_MODERATE not in claims.scopes:
        raise InsufficientScope([ITEMS_WRITE])
    return claims


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
