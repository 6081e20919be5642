"""The outbox: every Slack post or update, written with its cause, delivered later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import OutboxItem, OutboxKind, OutboxStatus
from storage.types import utcnow


def enqueue(
    session: AsyncSession,
    *,
    kind: OutboxKind,
    mention_id: int | None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> OutboxItem:
    now = utcnow()
    item = OutboxItem(
        kind=kind,
        mention_id=mention_id,
        payload=payload or {},
        next_attempt_at=not_before or now,
        created_at=now,
    )
    session.add(item)
    return item


async def due_items(session: AsyncSession, *, now: datetime, limit: int = 50) -> list[OutboxItem]:
    stmt = (
        select(OutboxItem)
        .where(
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.next_attempt_at) <= now,
        )
        .order_by(col(OutboxItem.id))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def mark_done(session: AsyncSession, *, item_id: int) -> None:
    await session.execute(
        update(OutboxItem)
        .where(col(OutboxItem.id) == item_id)
        .values(status=OutboxStatus.DONE, done_at=utcnow(), last_error=None)
    )


async def mark_superseded(
    session: AsyncSession, *, mention_id: int, kind: OutboxKind, up_to_id: int
) -> None:
    """Card updates render the mention's current state, so older pending ones are redundant."""
    await session.execute(
        update(OutboxItem)
        .where(
            col(OutboxItem.mention_id) == mention_id,
            col(OutboxItem.kind) == kind,
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.id) <= up_to_id,
        )
        .values(status=OutboxStatus.DONE, done_at=utcnow())
    )


async def mark_retry(
    session: AsyncSession,
    *,
    item_id: int,
    error: str,
    next_attempt_at: datetime,
    count_attempt: bool = True,
) -> None:
    values: dict[str, Any] = {"last_error": error[:500], "next_attempt_at": next_attempt_at}
    if count_attempt:
        values["attempts"] = OutboxItem.attempts + 1
    await session.execute(update(OutboxItem).where(col(OutboxItem.id) == item_id).values(**values))


async def mark_attempt(session: AsyncSession, *, item_id: int) -> None:
    """Recorded before calling Slack, so a crash mid-call leaves a trace to check on restart."""
    await session.execute(
        update(OutboxItem)
        .where(col(OutboxItem.id) == item_id)
        .values(attempts=OutboxItem.attempts + 1)
    )


async def mark_dead(session: AsyncSession, *, item_id: int, error: str) -> None:
    await session.execute(
        update(OutboxItem)
        .where(col(OutboxItem.id) == item_id)
        .values(status=OutboxStatus.DEAD, last_error=error[:500], done_at=utcnow())
    )


async def pending_count(session: AsyncSession) -> int:
    stmt = (
        select(func.count())
        .select_from(OutboxItem)
        .where(col(OutboxItem.status) == OutboxStatus.PENDING)
    )
    return int((await session.execute(stmt)).scalar_one())


async def release_waiting(session: AsyncSession, *, now: datetime) -> None:
    """Make every pending item due now (for example after a route was set)."""
    await session.execute(
        update(OutboxItem)
        .where(
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.next_attempt_at) > now,
        )
        .values(next_attempt_at=now)
    )
