"""origin: the namespace in which a source's post ids are unique

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Mirrors watchers.registry.origin at the time of writing: these source types have ids that
# are unique across all their specs.
_ORIGIN = (
    "CASE "
    "WHEN source = 'reddit' OR source LIKE 'reddit:%' THEN 'reddit' "
    "WHEN source LIKE 'mastodon:%' THEN 'mastodon' "
    "WHEN source IN ('hn', 'bluesky', 'github') THEN source "
    "ELSE source END"
)


def _add_origin(table: str, old_unique: str, new_unique: str) -> None:
    with op.batch_alter_table(table) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.Text(), nullable=True))
    op.execute(f"UPDATE {table} SET origin = {_ORIGIN}")
    with op.batch_alter_table(table) as batch_op:
        batch_op.alter_column("origin", existing_type=sa.Text(), nullable=False)
        batch_op.drop_constraint(old_unique, type_="unique")
        batch_op.create_unique_constraint(new_unique, ["origin", "external_id"])


def _drop_origin(table: str, old_unique: str, new_unique: str) -> None:
    with op.batch_alter_table(table) as batch_op:
        batch_op.drop_constraint(new_unique, type_="unique")
        batch_op.create_unique_constraint(old_unique, ["source", "external_id"])
        batch_op.drop_column("origin")


def upgrade() -> None:
    _add_origin("mention", "uq_mention_source_external_id", "uq_mention_origin_external_id")
    _add_origin("post", "uq_post_source_external_id", "uq_post_origin_external_id")


def downgrade() -> None:
    _drop_origin("post", "uq_post_source_external_id", "uq_post_origin_external_id")
    _drop_origin("mention", "uq_mention_source_external_id", "uq_mention_origin_external_id")
