"""digest subscriptions: who gets the executive digest, where, at what local time

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("is_channel", sa.Boolean(), nullable=False),
        sa.Column("send_minute", sa.Integer(), nullable=False),
        sa.Column("tz", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("departments", sa.JSON(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sent_on", sa.Date(), nullable=True),
        sa.Column("last_sent_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_on", sa.Date(), nullable=True),
        sa.Column("lease_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("target", name="uq_digest_subscription_target"),
    )


def downgrade() -> None:
    op.drop_table("digest_subscription")
