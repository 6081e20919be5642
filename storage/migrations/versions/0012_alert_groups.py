"""alert groups: a summary alert for a burst of low-priority mentions, and its members

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_group", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_group_department_updated_at", ["department", "updated_at"], unique=False
        )
    op.create_table(
        "alert_group_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("added_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["alert_group.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mention_id"),
    )
    with op.batch_alter_table("alert_group_member", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_group_member_group_id"), ["group_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_group_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_group_member_group_id"))
    op.drop_table("alert_group_member")
    with op.batch_alter_table("alert_group", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_group_department_updated_at")
    op.drop_table("alert_group")
