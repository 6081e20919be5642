"""clusters: one cluster per lead mention

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 20:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Two pollers joining copies of one story to the same lead must find one cluster, not
    # create two: the database enforces it.
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_lead_mention_id"))
        batch_op.create_index(
            batch_op.f("ix_cluster_lead_mention_id"), ["lead_mention_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_lead_mention_id"))
        batch_op.create_index(
            batch_op.f("ix_cluster_lead_mention_id"), ["lead_mention_id"], unique=False
        )
