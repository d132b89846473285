"""OAuth2: registered clients, revoked access tokens, the client and scope of refresh families.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("grant_types", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("secret_rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
    )
    op.create_table(
        "revoked_access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_access_tokens")),
    )
    op.create_index(
        op.f("ix_revoked_access_tokens_expires_at"),
        "revoked_access_tokens",
        ["expires_at"],
        unique=False,
    )
    op.add_column("refresh_families", sa.Column("client_id", sa.String(length=64), nullable=True))
    op.add_column("refresh_families", sa.Column("scope", sa.String(length=1024), nullable=True))
    op.create_index(
        op.f("ix_refresh_families_client_id"), "refresh_families", ["client_id"], unique=False
    )
    op.create_foreign_key(
        op.f("fk_refresh_families_client_id_oauth_clients"),
        "refresh_families",
        "oauth_clients",
        ["client_id"],
        ["client_id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_refresh_families_client_id_oauth_clients"), "refresh_families", type_="foreignkey"
    )
    op.drop_index(op.f("ix_refresh_families_client_id"), table_name="refresh_families")
    op.drop_column("refresh_families", "scope")
    op.drop_column("refresh_families", "client_id")
    op.drop_index(op.f("ix_revoked_access_tokens_expires_at"), table_name="revoked_access_tokens")
    op.drop_table("revoked_access_tokens")
    op.drop_table("oauth_clients")
