"""items, counter shards, deleted users

Revision ID: 0001
Revises:
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of models.COUNTER_SHARDS at the time of this revision.
COUNTER_SHARDS = 16


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=10000), nullable=True),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("title ~ '[^[:space:]]'", name=op.f("ck_items_title_not_blank")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_items_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    op.create_index("ix_items_owner_id_id", "items", ["owner_id", "id"], unique=False)

    op.create_table(
        "item_count_shards",
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            f"shard >= 0 AND shard < {COUNTER_SHARDS}",
            name=op.f("ck_item_count_shards_shard_range"),
        ),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_item_count_shards")),
    )
    op.create_table(
        "owner_item_counts",
        sa.Column("owner_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            f"shard >= 0 AND shard < {COUNTER_SHARDS}",
            name=op.f("ck_owner_item_counts_shard_range"),
        ),
        sa.PrimaryKeyConstraint("owner_id", "shard", name=op.f("pk_owner_item_counts")),
    )
    op.create_table(
        "deleted_users",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_deleted_users")),
    )
    op.create_index(
        "ix_deleted_users_recorded_at", "deleted_users", ["recorded_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_deleted_users_recorded_at", table_name="deleted_users")
    op.drop_table("deleted_users")
    op.drop_table("owner_item_counts")
    op.drop_table("item_count_shards")
    op.drop_index("ix_items_owner_id_id", table_name="items")
    op.drop_table("items")
