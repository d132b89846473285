"""Item schemas, and the renderers that write response JSON straight from database rows.

Reads skip per-request pydantic models: rows are turned into JSON bytes with orjson, in the
shape of :class:`ItemRead`. Routes still declare ``response_model`` so OpenAPI is exact, and
the tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Self

import orjson
from asyncpg import Record
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# The columns' sizes too (items_service/models.py).
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate (JSON allows "\ud800") has no UTF-8
    # form: refuse both here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Title = Annotated[
    str,
    Field(min_length=1, max_length=TITLE_MAX_LENGTH, examples=["Buy milk"]),
    AfterValidator(_storable),
    AfterValidator(_not_blank),
]
Description = Annotated[
    str,
    Field(max_length=DESCRIPTION_MAX_LENGTH, examples=["Two litres, semi-skimmed"]),
    AfterValidator(_storable),
]


class ItemBase(BaseModel):
    title: Title
    description: Description | None = None


class ItemCreate(ItemBase):
    pass


class ItemUpdate(BaseModel):
    """A partial update: fields left out keep their value; ``description: null`` clears it."""

    title: Title | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _title_not_null(self) -> Self:
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null; leave it out to keep it")
        return self


class ItemRead(ItemBase):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    created_at: datetime
    updated_at: datetime


def _item_dict(row: Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "owner_id": row["owner_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def render_item(row: Record) -> bytes:
    """One item row as :class:`ItemRead` JSON."""
    return orjson.dumps(_item_dict(row), option=orjson.OPT_UTC_Z)


def render_items(rows: Iterable[Record]) -> bytes:
    """Item rows as a JSON list of :class:`ItemRead`."""
    return orjson.dumps([_item_dict(row) for row in rows], option=orjson.OPT_UTC_Z)
