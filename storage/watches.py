"""Watches and the poll state of each of their sources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import SourceState, Watch
from storage.types import utcnow


class WatchExists(Exception):
    pass


async def create_watch(
    session: AsyncSession,
    *,
    name: str,
    query: str,
    kind: str,
    department: str | None,
    sources: Sequence[str],
    interval_seconds: int,
    created_by: str | None,
    exclude: str | None = None,
) -> Watch:
    """Insert a watch and a poll state per source, due now. Raises WatchExists on a name clash."""
    now = utcnow()
    watch = Watch(
        name=name,
        query=query,
        kind=kind,
        department=department,
        sources=list(sources),
        exclude=exclude,
        interval_seconds=interval_seconds,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(watch)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise WatchExists(name) from exc
    assert watch.id is not None
    for source in sources:
        session.add(SourceState(watch_id=watch.id, source=source, next_poll_at=now))
    await session.flush()
    return watch


async def get_watch(session: AsyncSession, *, name: str) -> Watch | None:
    result = await session.execute(select(Watch).where(col(Watch.name) == name))
    return result.scalars().first()


async def list_watches(session: AsyncSession) -> list[Watch]:
    result = await session.execute(select(Watch).order_by(col(Watch.name)))
    return list(result.scalars())


async def set_paused(session: AsyncSession, *, name: str, paused: bool) -> Watch | None:
    watch = await get_watch(session, name=name)
    if watch is None:
        return None
    watch.paused = paused
    watch.updated_at = utcnow()
    if not paused:
        # Resuming polls at once rather than waiting out a backoff from before the pause.
        await session.execute(
            update(SourceState)
            .where(col(SourceState.watch_id) == watch.id)
            .values(next_poll_at=utcnow())
        )
    await session.flush()
    return watch


async def set_exclude(session: AsyncSession, *, name: str, exclude: str | None) -> Watch | None:
    watch = await get_watch(session, name=name)
    if watch is None:
        return None
    watch.exclude = exclude
    watch.updated_at = utcnow()
    await session.flush()
    return watch


async def delete_watch(session: AsyncSession, *, name: str) -> bool:
    # A DELETE without RETURNING yields a CursorResult; the stubs only promise Result.
    result = cast(
        "CursorResult[Any]", await session.execute(delete(Watch).where(col(Watch.name) == name))
    )
    return bool(result.rowcount)


async def source_states(
    session: AsyncSession, *, watch_ids: Sequence[int] | None = None
) -> list[SourceState]:
    stmt = select(SourceState).order_by(col(SourceState.watch_id), col(SourceState.id))
    if watch_ids is not None:
        stmt = stmt.where(col(SourceState.watch_id).in_(watch_ids))
    result = await session.execute(stmt)
    return list(result.scalars())


async def claim_due_sources(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int = 50
) -> list[tuple[Watch, SourceState]]:
    """Due sources of active watches, leased so that an overlapping tick does not poll them twice.

    A finished poll sets the next time and drops the lease. A poll that dies mid-way is retried
    when its lease runs out, or at once when a new leader starts (``release_leases``).
    """
    moment = utcnow()
    stmt = (
        select(SourceState, Watch)
        .join(Watch, col(Watch.id) == SourceState.watch_id)
        .where(
            col(Watch.paused) == False,  # noqa: E712
            col(SourceState.next_poll_at) <= now,
            or_(
                col(SourceState.leased_until).is_(None),
                col(SourceState.leased_until) <= moment,
            ),
        )
        .order_by(col(SourceState.next_poll_at))
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=SourceState)
    rows = (await session.execute(stmt)).all()
    due: list[tuple[Watch, SourceState]] = []
    for state, watch in rows:
        state.leased_until = moment + lease
        due.append((watch, state))
    await session.flush()
    return due


async def release_leases(session: AsyncSession) -> int:
    """Forget every lease: called by a replica that has just become the only poller, so any
    lease left is a dead process's. How many there were."""
    result = cast(
        "CursorResult[Any]",
        await session.execute(
            update(SourceState)
            .where(col(SourceState.leased_until).is_not(None))
            .values(leased_until=None)
        ),
    )
    return int(result.rowcount or 0)


async def record_poll(
    session: AsyncSession,
    *,
    state_id: int,
    now: datetime,
    next_poll_at: datetime,
    error: str | None,
    etag: str | None = None,
    last_modified: str | None = None,
    cursor: str | None = None,
    posts_seen: int = 0,
    mentions_found: int = 0,
) -> None:
    values: dict[str, object] = {
        "last_poll_at": now,
        "next_poll_at": next_poll_at,
        "leased_until": None,
    }
    if error is None:
        values.update(
            last_success_at=now,
            last_error=None,
            consecutive_failures=0,
            etag=etag,
            last_modified=last_modified,
            cursor=cursor,
            posts_seen=SourceState.posts_seen + posts_seen,
            mentions_found=SourceState.mentions_found + mentions_found,
        )
    else:
        values.update(
            last_error=error[:500],
            consecutive_failures=SourceState.consecutive_failures + 1,
        )
    await session.execute(
        update(SourceState).where(col(SourceState.id) == state_id).values(**values)
    )


async def count_watches(session: AsyncSession) -> int:
    result = await session.execute(select(func.count()).select_from(Watch))
    return int(result.scalar_one())
