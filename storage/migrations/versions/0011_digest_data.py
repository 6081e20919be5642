"""digest data: mention primary intent, claim and resolve times, indexes for the digest

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 21:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each engine reads a JSON list its own way; both give NULL for an empty list.
_FIRST_INTENT = {
    "sqlite": "json_extract(intents, '$[0].intent')",
    "postgresql": "intents -> 0 ->> 'intent'",
}


def upgrade() -> None:
    with op.batch_alter_table("mention", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("primary_intent", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True)
        )
        batch_op.add_column(
            sa.Column("claimed_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )

    dialect = op.get_bind().dialect.name
    op.execute(f"UPDATE mention SET primary_intent = {_FIRST_INTENT[dialect]}")
    # The last claim and the last resolution in the audit trail, as bot/workflow.py now
    # records them on the mention itself.
    op.execute(
        "UPDATE mention SET claimed_at = (SELECT max(event.created_at) FROM event "
        "WHERE event.mention_id = mention.id AND event.action = 'claim')"
    )
    op.execute(
        "UPDATE mention SET resolved_at = (SELECT max(event.created_at) FROM event "
        "WHERE event.mention_id = mention.id AND event.to_state = 'resolved')"
    )

    # Indexes last: built once over the backfilled rows rather than updated row by row.
    with op.batch_alter_table("mention", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mention_digest",
            [
                "found_at",
                "state",
                "department",
                "primary_intent",
                "source",
                "sentiment_label",
                "sentiment_compound",
                "watch_name",
                "watch_kind",
            ],
            unique=False,
        )
        batch_op.create_index(
            "ix_mention_claimed_at", ["claimed_at", "state", "department", "found_at"], unique=False
        )
        batch_op.create_index(
            "ix_mention_resolved_at",
            ["resolved_at", "state", "department", "found_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_mention_state_priority_found_at", ["state", "priority", "found_at"], unique=False
        )
        batch_op.create_index(
            "ix_mention_priority_found_at", ["priority", "found_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mention", schema=None) as batch_op:
        batch_op.drop_index("ix_mention_priority_found_at")
        batch_op.drop_index("ix_mention_state_priority_found_at")
        batch_op.drop_index("ix_mention_resolved_at")
        batch_op.drop_index("ix_mention_claimed_at")
        batch_op.drop_index("ix_mention_digest")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("primary_intent")
