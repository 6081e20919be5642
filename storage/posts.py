"""Recently fetched posts, matched or not, kept for a while so queries can be tried on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import FetchedPost

_CHUNK = 200
# Fetched posts (matched or not) are kept this long for `/earful watch test`; mentions stay.
RETENTION = timedelta(days=7)


async def add_posts(session: AsyncSession, *, posts: Sequence[dict[str, Any]]) -> None:
    """Insert posts, skipping those already kept (same origin and external id)."""
    if not posts:
        return
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = FetchedPost.__table__  # type: ignore[attr-defined]
    # One statement run for many rows (executemany): building a VALUES clause of hundreds of
    # rows costs more in Python than the database spends on them.
    stmt = insert_fn(table).on_conflict_do_nothing(index_elements=["origin", "external_id"])
    for start in range(0, len(posts), _CHUNK):
        await session.execute(stmt, list(posts[start : start + _CHUNK]))


async def recent_posts(
    session: AsyncSession,
    *,
    since: datetime,
    sources: Sequence[str] | None = None,
    source_kinds: Sequence[str] | None = None,
    limit: int = 5_000,
) -> list[FetchedPost]:
    """The newest posts fetched since ``since``, optionally only from some sources.

    ``sources`` are exact specs (``reddit:r/acme``); ``source_kinds`` are bare kinds (``hn``,
    ``rss``) meaning every spec of that kind. Filtering here, before the limit, keeps a quiet
    source's posts from being crowded out by a busy one's.
    """
    stmt = (
        select(FetchedPost)
        .where(col(FetchedPost.fetched_at) >= since)
        .order_by(col(FetchedPost.fetched_at).desc())
        .limit(limit)
    )
    conditions: list[ColumnElement[bool]] = []
    if sources:
        conditions.append(col(FetchedPost.source).in_(list(sources)))
    for kind in source_kinds or ():
        conditions.append(col(FetchedPost.source) == kind)
        # Kinds are plain words; escaping still keeps "_" or "%" from widening the match.
        pattern = kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(col(FetchedPost.source).like(f"{pattern}:%", escape="\\"))
    if conditions:
        stmt = stmt.where(or_(*conditions))
    return list((await session.execute(stmt)).scalars())


async def prune_posts(session: AsyncSession, *, older_than: datetime) -> int:
    result = await session.execute(
        delete(FetchedPost).where(col(FetchedPost.fetched_at) < older_than)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
