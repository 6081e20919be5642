"""seen Slack requests: signatures already handled, so a replayed request is refused

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_slack_request",
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("expires_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature"),
    )
    with op.batch_alter_table("seen_slack_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_seen_slack_request_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("seen_slack_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_slack_request_expires_at"))
    op.drop_table("seen_slack_request")
