"""The items database schema. Alembic migrations are checked against it (no autogenerate diff).

The request paths run hand-written SQL on asyncpg (``items/service.py``) rather than the ORM,
for speed; these declarations are the schema's single source of truth for migrations and tests.
No request path imports this module (SQLAlchemy would cost every worker memory): the sizes it
declares come from ``items/schemas.py`` (the field lengths) and ``items/service.py`` (the
counter shards).

Counters: ``X-Total-Count`` must be exact and O(1) at any table size, so totals are kept in
counter rows updated in the same statement as every insert and delete. A single counter row
would serialise all writers on its row lock (held through each commit's WAL flush), so the
count is split over ``COUNTER_SHARDS`` rows chosen by ``item id % COUNTER_SHARDS``, globally
(``item_count_shards``) and per owner (``owner_item_counts``); a total is the sum of at most
``COUNTER_SHARDS`` rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from items_service.items.schemas import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH
from items_service.items.service import COUNTER_SHARDS
from svckit.orm import naming_metadata


class Base(DeclarativeBase):
    metadata = naming_metadata()


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX_LENGTH))
    owner_id: Mapped[int] = mapped_column(BigInteger)
    # Bumped by every update; the ETag is built from id and version.
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # The API rejects these first; the database refuses them too.
        CheckConstraint("title ~ '[^[:space:]]'", name="title_not_blank"),
        CheckConstraint("version >= 1", name="version_positive"),
        # "my items" pages: WHERE owner_id = ? AND id > ? ORDER BY id, and deletes by owner.
        Index("ix_items_owner_id_id", "owner_id", "id"),
    )


class ItemCountShard(Base):
    """One slice of the global item count."""

    __tablename__ = "item_count_shards"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    __table_args__ = (
        CheckConstraint(f"shard >= 0 AND shard < {COUNTER_SHARDS}", name="shard_range"),
    )


class OwnerItemCount(Base):
    """One slice of one owner's item count."""

    __tablename__ = "owner_item_counts"

    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    __table_args__ = (
        CheckConstraint(f"shard >= 0 AND shard < {COUNTER_SHARDS}", name="shard_range"),
    )


class DeletedUser(Base):
    """Users whose ``user.deleted`` event was applied; their tokens are refused."""

    __tablename__ = "deleted_users"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False))
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    # Replicas poll for deletions recorded since they last looked.
    __table_args__ = (Index("ix_deleted_users_recorded_at", "recorded_at"),)


class RevokedToken(Base):
    """Access tokens revoked at auth-service (``token.revoked`` events), refused until they
    expire; rows are pruned a while after ``expires_at``."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        Index("ix_revoked_tokens_recorded_at", "recorded_at"),
        Index("ix_revoked_tokens_expires_at", "expires_at"),
    )
