"""Item queries: one SQL statement per operation on the request path, run by asyncpg.

Every write is a single statement, so it is atomic without an explicit transaction: the
data-modifying CTEs change the item and its counter shards (``models.py``) together. asyncpg
prepares each statement once per connection and reuses it.

Authorisation and preconditions are part of the write's ``WHERE`` clause, so a check and the
change it guards cannot be separated by a concurrent writer (no lost update: of two updates
sent with the same ``If-Match``, exactly one matches). Only when a write matches no row is the
item read again, to tell 404 from 403 from 412.

A deleted user's items are deleted here too (:func:`delete_user_items`, called by the
user-events consumer), so every write of ``items`` is in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from asyncpg import Record

from items_service.items.errors import ItemChanged, ItemNotFound, NotItemOwner, UserDeleted
from items_service.items.schemas import ItemCreate, ItemUpdate
from svckit.db import BIGINT_MAX, Pool
from svckit.events import UserDeletedEvent
from svckit.scopes import ITEMS_MODERATE, ITEMS_WRITE, InsufficientScope
from svckit.tokens import AccessClaims

# No item has owner 0: a caller who may write no item of its own writes "as" it.
_NOBODY = 0

# Totals are kept in counter rows updated with every insert and delete, split over this many
# rows (by item id) so that writers do not queue on one row lock (items_service/models.py).
COUNTER_SHARDS = 16

# Columns of a rendered item (schemas.ItemRead), plus the version for ETags.
_ITEM = "id, title, description, owner_id, created_at, updated_at, version"
_SHARD = f"id % {COUNTER_SHARDS}"

# One round trip for the page and its total: the total is O(COUNTER_SHARDS) rows, never a
# count(*) scan. $1 = after (keyset cursor, 0 for the start), $2 = limit, $3 = offset.
_LIST_ALL = f"""
SELECT t.total, i.id, i.title, i.description, i.owner_id, i.created_at, i.updated_at
FROM (SELECT coalesce(sum(count), 0)::bigint AS total FROM item_count_shards) AS t
LEFT JOIN (
    SELECT {_ITEM} FROM items WHERE id > $1::bigint ORDER BY id LIMIT $2::bigint OFFSET $3::bigint
) AS i ON true
ORDER BY i.id
"""  # noqa: S608 - only module constants are interpolated

_LIST_OWNED = f"""
SELECT t.total, i.id, i.title, i.description, i.owner_id, i.created_at, i.updated_at
FROM (
    SELECT coalesce(sum(count), 0)::bigint AS total
    FROM owner_item_counts WHERE owner_id = $1::bigint
) AS t
LEFT JOIN (
    SELECT {_ITEM} FROM items
    WHERE (owner_id, id) > ($1::bigint, $2::bigint)
      AND (owner_id, id) <= ($1::bigint, {BIGINT_MAX})
    ORDER BY owner_id, id LIMIT $3::bigint OFFSET $4::bigint
) AS i ON true
ORDER BY i.id
"""  # noqa: S608

_GET = f"SELECT {_ITEM} FROM items WHERE id = $1::bigint"  # noqa: S608

# The insert is refused for a user whose deletion was already applied (delete_user_items).
_CREATE = f"""
WITH new AS (
    INSERT INTO items (title, description, owner_id)
    SELECT $1::varchar, $2::varchar, $3::bigint
    WHERE NOT EXISTS (SELECT 1 FROM deleted_users WHERE user_id = $3::bigint)
    RETURNING {_ITEM}
), total AS (
    INSERT INTO item_count_shards AS c (shard, count)
    SELECT {_SHARD}, 1 FROM new
    ON CONFLICT (shard) DO UPDATE SET count = c.count + 1
), owned AS (
    INSERT INTO owner_item_counts AS c (owner_id, shard, count)
    SELECT owner_id, {_SHARD}, 1 FROM new
    ON CONFLICT (owner_id, shard) DO UPDATE SET count = c.count + 1
)
SELECT {_ITEM} FROM new
"""  # noqa: S608

# $2/$4 say whether title/description are set; $6 = caller id, $7 = caller is admin,
# $8 = the versions If-Match accepts (NULL: any).
_UPDATE = f"""
UPDATE items SET
    title = CASE WHEN $2::boolean THEN $3::varchar ELSE title END,
    description = CASE WHEN $4::boolean THEN $5::varchar ELSE description END,
    version = version + 1,
    updated_at = now()
WHERE id = $1::bigint
  AND (owner_id = $6::bigint OR $7::boolean)
  AND ($8::integer[] IS NULL OR version = ANY($8::integer[]))
RETURNING {_ITEM}
"""  # noqa: S608

_DELETE = f"""
WITH gone AS (
    DELETE FROM items
    WHERE id = $1::bigint
      AND (owner_id = $2::bigint OR $3::boolean)
      AND ($4::integer[] IS NULL OR version = ANY($4::integer[]))
    RETURNING id, owner_id
), total AS (
    UPDATE item_count_shards AS c SET count = c.count - 1
    FROM gone WHERE c.shard = gone.{_SHARD}
), owned AS (
    UPDATE owner_item_counts AS c SET count = c.count - 1
    FROM gone WHERE c.owner_id = gone.owner_id AND c.shard = gone.{_SHARD}
)
SELECT id FROM gone
"""  # noqa: S608

# A deleted user's items go, off the counters, and the user is recorded (so _CREATE refuses
# them from then on), atomically.
_DELETE_OWNER = f"""
WITH gone AS (
    DELETE FROM items WHERE owner_id = $1::bigint RETURNING id
), per_shard AS (
    SELECT {_SHARD} AS shard, count(*) AS n FROM gone GROUP BY 1
), total AS (
    UPDATE item_count_shards AS c SET count = c.count - p.n
    FROM per_shard AS p WHERE c.shard = p.shard
), owned AS (
    UPDATE owner_item_counts AS c SET count = c.count - p.n
    FROM per_shard AS p WHERE c.owner_id = $1::bigint AND c.shard = p.shard
), marked AS (
    INSERT INTO deleted_users (user_id, event_id, occurred_at)
    VALUES ($1::bigint, $2::uuid, $3::timestamptz)
    ON CONFLICT (user_id) DO NOTHING
)
SELECT count(*) FROM gone
"""  # noqa: S608

_OWNER_AND_VERSION = "SELECT owner_id, version FROM items WHERE id = $1::bigint"


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Record]
    total: int
    # The keyset cursor of the next page, or None when this page is the last.
    next_after: int | None


def _page(rows: list[Record], limit: int) -> Page:
    total = rows[0]["total"] if rows else 0
    items = [row for row in rows if row["id"] is not None]
    if len(items) > limit:
        return Page(items[:limit], total, items[limit - 1]["id"])
    return Page(items, total, None)


async def list_items(db: Pool, *, after: int, limit: int, skip: int) -> Page:
    # One extra row tells whether a next page exists.
    return _page(await db.fetch(_LIST_ALL, after, limit + 1, skip), limit)


async def list_owned_items(db: Pool, owner_id: int, *, after: int, limit: int, skip: int) -> Page:
    return _page(await db.fetch(_LIST_OWNED, owner_id, after, limit + 1, skip), limit)


async def get_item(db: Pool, item_id: int) -> Record:
    row = await db.fetchrow(_GET, item_id)
    if row is None:
        raise ItemNotFound()
    return row


async def create_item(db: Pool, data: ItemCreate, owner_id: int) -> Record:
    row = await db.fetchrow(_CREATE, data.title, data.description, owner_id)
    if row is None:
        raise UserDeleted()
    return row


def _writer(claims: AccessClaims) -> tuple[int, bool]:
    """Whose items the caller may change: (its own user id, or nobody; anyone's?).

    A user changes their own items with ``items:write``; an administrator or a service
    client changes anyone's with ``items:moderate``. A service client owns nothing.
    """
    own = _NOBODY if claims.is_machine or ITEMS_WRITE not in claims.scopes else claims.user_id
    return own, claims.may_moderate


def may_modify(claims: AccessClaims, owner_id: int) -> bool:
    own, anyone = _writer(claims)
    return anyone or own == owner_id


def _forbidden(claims: AccessClaims, owner_id: int) -> NoReturn:
    if not claims.is_machine and claims.user_id == owner_id:
        raise InsufficientScope([ITEMS_WRITE])
    if claims.is_machine or claims.is_admin:
        raise InsufficientScope([ITEMS_MODERATE])
    raise NotItemOwner()


async def _refusal(db: Pool, item_id: int, claims: AccessClaims) -> NoReturn:
    """Why a guarded write matched no row: missing, not the caller's, or changed."""
    row = await db.fetchrow(_OWNER_AND_VERSION, item_id)
    if row is None:
        raise ItemNotFound()
    if not may_modify(claims, row["owner_id"]):
        _forbidden(claims, row["owner_id"])
    # The owner never changes, so only the If-Match condition can have failed.
    raise ItemChanged()


async def update_item(
    db: Pool,
    item_id: int,
    data: ItemUpdate,
    claims: AccessClaims,
    *,
    if_match: list[int] | None,
) -> Record:
    fields = data.model_fields_set
    if not fields:
        # Nothing to change: answer as the update would, without bumping the version.
        current = await get_item(db, item_id)
        if not may_modify(claims, current["owner_id"]):
            _forbidden(claims, current["owner_id"])
        if if_match is not None and current["version"] not in if_match:
            raise ItemChanged()
        return current
    own, anyone = _writer(claims)
    row = await db.fetchrow(
        _UPDATE,
        item_id,
        "title" in fields,
        data.title,
        "description" in fields,
        data.description,
        own,
        anyone,
        if_match,
    )
    if row is None:
        await _refusal(db, item_id, claims)
    return row


async def delete_item(
    db: Pool, item_id: int, claims: AccessClaims, *, if_match: list[int] | None
) -> None:
    own, anyone = _writer(claims)
    deleted = await db.fetchval(_DELETE, item_id, own, anyone, if_match)
    if deleted is None:
        await _refusal(db, item_id, claims)


async def delete_user_items(db: Pool, event: UserDeletedEvent) -> int:
    """Delete a deleted user's items and record the user; returns how many items went.

    Idempotent (events are delivered at least once). An item whose insert raced the first
    pass (its request began before the user was recorded) is caught by the second, which sees
    every insert that committed meanwhile.
    """
    deleted = 0
    for _ in range(2):
        deleted += await db.fetchval(
            _DELETE_OWNER, event.user_id, event.event_id, event.occurred_at
        )
    return deleted
