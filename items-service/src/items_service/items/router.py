"""The /items routes. Thin: parameters in, a service call, JSON bytes out.

Public reads (``GET /items/``, ``GET /items/{id}``) ignore any ``Authorization`` header: they
do not depend on who asks, so they keep answering whatever the state of token verification.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response

from items_service.deps import (
    After,
    ItemIdPath,
    Limit,
    ReadClaims,
    RuntimeDep,
    Skip,
    WriteClaims,
    WriterClaims,
    valid_item_id,
)
from items_service.items import service
from items_service.items.preconditions import etag, if_match_versions, if_none_match_hits
from items_service.items.schemas import (
    ItemCreate,
    ItemRead,
    ItemUpdate,
    render_item,
    render_items,
)
from items_service.runtime import Runtime
from svckit.schemas import ErrorEnvelope, Message
from svckit.tokens import AccessClaims

router = APIRouter(prefix="/items", tags=["items"])

JSON = "application/json"

_ERROR: dict[str, Any] = {"model": ErrorEnvelope}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "Missing, invalid, expired or revoked access token"},
    403: {
        **_ERROR,
        "description": "The token lacks the scope (`insufficient_scope`), or is a service "
        "client's where a user must act (`user_token_required`)",
    },
    503: {**_ERROR, "description": "Database or verification keys unavailable"},
}
# A body that is not JSON at all (bytes FastAPI cannot parse) is 400, not 422.
_BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "The body could not be parsed"}
}
_PAGE_HEADERS = {
    "X-Total-Count": {
        "description": "Total number of items in the collection (not just this page)",
        "schema": {"type": "integer"},
    },
    "Link": {
        "description": 'URL of the next page (keyset cursor), as `<...>; rel="next"`; '
        "absent on the last page",
        "schema": {"type": "string"},
    },
}
_ETAG_HEADER = {
    "ETag": {"description": 'Strong validator, `"<id>-<version>"`', "schema": {"type": "string"}}
}

IfMatch = Annotated[
    str | None,
    Header(description="Apply only if the item's current ETag is listed (or `*`); else 412"),
]


def _page_response(request: Request, page: service.Page, limit: int) -> Response:
    headers = {"X-Total-Count": str(page.total)}
    if page.next_after is not None:
        headers["Link"] = f'<{request.url.path}?after={page.next_after}&limit={limit}>; rel="next"'
    return Response(render_items(page.items), media_type=JSON, headers=headers)


def _item_response(row: Any) -> Response:
    return Response(
        render_item(row), media_type=JSON, headers={"ETag": etag(row["id"], row["version"])}
    )


@router.get(
    "/",
    response_model=list[ItemRead],
    summary="List items",
    responses={200: {"headers": _PAGE_HEADERS}, 422: _ERROR, 503: _ERROR},
)
async def list_items(
    request: Request, runtime: RuntimeDep, skip: Skip = 0, limit: Limit = 100, after: After = None
) -> Response:
    """All items by ascending id. Page with `skip`/`limit`, or with the keyset cursor `after`
    (constant time at any depth) by following the `Link: rel="next"` header."""
    result = await service.list_items(runtime.db, after=after or 0, limit=limit, skip=skip)
    return _page_response(request, result, limit)


@router.get(
    "/my-items",
    response_model=list[ItemRead],
    summary="List the caller's items",
    responses={200: {"headers": _PAGE_HEADERS}, 422: _ERROR, **_AUTH_ERRORS},
)
async def list_my_items(
    request: Request,
    runtime: RuntimeDep,
    claims: ReadClaims,
    skip: Skip = 0,
    limit: Limit = 100,
    after: After = None,
) -> Response:
    """The caller's items by ascending id, paged like `GET /items/`. Scope `items:read`."""
    result = await service.list_owned_items(
        runtime.db, claims.user_id, after=after or 0, limit=limit, skip=skip
    )
    return _page_response(request, result, limit)


@router.post(
    "/",
    response_model=ItemRead,
    summary="Create an item",
    responses={200: {"headers": _ETAG_HEADER}, **_BAD_BODY, 422: _ERROR, **_AUTH_ERRORS},
)
async def create_item(runtime: RuntimeDep, claims: WriteClaims, data: ItemCreate) -> Response:
    """Create an item owned by the caller. Scope `items:write`; a user's token."""
    return _item_response(await service.create_item(runtime.db, data, claims.user_id))


@router.get(
    "/{item_id}",
    response_model=ItemRead,
    summary="Read an item",
    responses={
        200: {"headers": _ETAG_HEADER},
        304: {"description": "Not modified (`If-None-Match` matched)"},
        404: _ERROR,
        422: _ERROR,
        503: _ERROR,
    },
)
async def read_item(
    runtime: RuntimeDep,
    item_id: ItemIdPath,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """One item, with its `ETag` (304 when `If-None-Match` matches it)."""
    row = await service.get_item(runtime.db, valid_item_id(item_id))
    tag = etag(row["id"], row["version"])
    if if_none_match_hits(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return Response(render_item(row), media_type=JSON, headers={"ETag": tag})


_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_AUTH_ERRORS,
    403: {
        **_ERROR,
        "description": "Neither the owner (with `items:write`) nor a moderator (an admin or a "
        "service client with `items:moderate`); or the token lacks the scope",
    },
    404: _ERROR,
    412: {**_ERROR, "description": "`If-Match` does not match the item's current ETag"},
    422: _ERROR,
}


async def _update(
    runtime: Runtime, claims: AccessClaims, item_id: int, data: ItemUpdate, if_match: str | None
) -> Response:
    item_id = valid_item_id(item_id)
    row = await service.update_item(
        runtime.db, item_id, data, claims, if_match=if_match_versions(if_match, item_id)
    )
    return _item_response(row)


@router.put(
    "/{item_id}",
    response_model=ItemRead,
    summary="Update an item (partial)",
    responses={200: {"headers": _ETAG_HEADER}, **_BAD_BODY, **_WRITE_RESPONSES},
)
async def replace_item(
    runtime: RuntimeDep,
    claims: WriterClaims,
    item_id: ItemIdPath,
    data: Annotated[ItemUpdate, Body()],
    if_match: IfMatch = None,
) -> Response:
    """Owner (`items:write`) or moderator (`items:moderate`). Like PATCH: fields left out
    keep their value. Send `If-Match` with the ETag you read to be sure nobody changed the
    item in between."""
    return await _update(runtime, claims, item_id, data, if_match)


@router.patch(
    "/{item_id}",
    response_model=ItemRead,
    summary="Update an item",
    responses={200: {"headers": _ETAG_HEADER}, **_BAD_BODY, **_WRITE_RESPONSES},
)
async def update_item(
    runtime: RuntimeDep,
    claims: WriterClaims,
    item_id: ItemIdPath,
    data: Annotated[ItemUpdate, Body()],
    if_match: IfMatch = None,
) -> Response:
    """Owner (`items:write`) or moderator (`items:moderate`). Fields left out keep their
    value; `If-Match` guards against lost updates."""
    return await _update(runtime, claims, item_id, data, if_match)


@router.delete(
    "/{item_id}",
    response_model=Message,
    summary="Delete an item",
    responses=_WRITE_RESPONSES,
)
async def delete_item(
    runtime: RuntimeDep, claims: WriterClaims, item_id: ItemIdPath, if_match: IfMatch = None
) -> Message:
    """Owner (`items:write`) or moderator (`items:moderate`)."""
    item_id = valid_item_id(item_id)
    await service.delete_item(
        runtime.db, item_id, claims, if_match=if_match_versions(if_match, item_id)
    )
    return Message(message="Item deleted")
