"""The dependencies routes declare, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from items_service.db import Database
from items_service.items.errors import ItemNotFound
from svckit.bearer import Claims

__all__ = ["BIGINT_MAX", "Claims", "DatabaseDep", "ItemId", "PageParams", "PageQuery"]

BIGINT_MAX = 2**63 - 1
MAX_PAGE_SIZE = 100


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(get_database)]


def item_id(item_id: Annotated[int, Path(description="The item's id")]) -> int:
    # An integer that no item can have is "not found", not a database error.
    if not 1 <= item_id <= BIGINT_MAX:
        raise ItemNotFound()
    return item_id


ItemId = Annotated[int, Depends(item_id)]


@dataclass(frozen=True, slots=True)
class PageParams:
    skip: int
    limit: int
    after: int


def page_params(
    skip: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Items to skip")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size (1..100)")
    ] = MAX_PAGE_SIZE,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=BIGINT_MAX,
            description="Keyset cursor: only items with an id greater than this. Follow the "
            '`Link: rel="next"` header rather than building it; `skip` then counts from here.',
        ),
    ] = None,
) -> PageParams:
    return PageParams(skip=skip, limit=limit, after=after or 0)


PageQuery = Annotated[PageParams, Depends(page_params)]
