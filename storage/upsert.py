"""INSERT … ON CONFLICT DO NOTHING on both engines, returning the new row's id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_ignoring_conflicts(
    session: AsyncSession,
    model: Any,
    values: Mapping[str, Any],
    *,
    conflict_columns: Sequence[str],
) -> int | None:
    """Insert a row unless it would violate the unique key; the id, or None when it existed."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_fn(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(table.c.id)
    )
    result = await session.execute(stmt)
    return result.scalar_one_or_none()
