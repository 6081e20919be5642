"""answers: the knowledge base of saved answers, and what was written when answering

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 20:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saved_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=150), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("intents", sa.JSON(), nullable=False),
        sa.Column("watch_name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.Column("last_used_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("mention_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "mention_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("draft", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("saved_answer_id", sa.Integer(), nullable=True),
        sa.Column("used_answer_id", sa.Integer(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mention_id"], ["mention.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["saved_answer_id"], ["saved_answer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["used_answer_id"], ["saved_answer.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mention_answer", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mention_answer_mention_id"), ["mention_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mention_answer_event_id"), ["event_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("mention_answer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mention_answer_event_id"))
        batch_op.drop_index(batch_op.f("ix_mention_answer_mention_id"))
    op.drop_table("mention_answer")
    op.drop_table("saved_answer")
