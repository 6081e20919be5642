"""The outbox: every Slack post or update, written with its cause, delivered later."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, case, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from storage.models import Mention, OutboxItem, OutboxKind, OutboxStatus
from storage.types import utcnow

# Items that concern a mention's thread and wait for its alert (or its summary) to be posted.
THREAD_KINDS = (OutboxKind.THREAD_REPLY, OutboxKind.THREAD_NOTE)
URGENT_LANE_PREFIX = "p1:"


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


_INSERT_CHUNK = 500


async def enqueue_many(
    session: AsyncSession, *, kind: OutboxKind, mention_ids: Sequence[int]
) -> None:
    """:func:`enqueue` for many mentions at once, due now, with one INSERT per few hundred
    rows and no ORM objects; ids follow the order given, so delivery does too."""
    if not mention_ids:
        return
    now = utcnow()
    table = OutboxItem.__table__  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = [
        {
            "kind": kind.value,
            "mention_id": mention_id,
            "payload": {},
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "created_at": now,
            "done_at": None,
        }
        for mention_id in mention_ids
    ]
    for start in range(0, len(rows), _INSERT_CHUNK):
        await session.execute(insert(table), rows[start : start + _INSERT_CHUNK])


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


def _is_urgent() -> ColumnElement[bool]:
    return and_(col(OutboxItem.kind) == OutboxKind.ALERT, col(Mention.priority) == "P1")


def lane() -> ColumnElement[str]:
    """Which delivery lane an item belongs to: its department's (one channel, posted in order),
    a department's P1 alerts on a lane of their own so that they never wait behind a backlog,
    and direct messages together."""
    department = func.coalesce(
        col(Mention.department), col(OutboxItem.payload)["department"].as_string()
    )
    return case(
        (_is_urgent(), literal(URGENT_LANE_PREFIX) + department),
        else_=func.coalesce(department, literal("direct")),
    )


async def due_in_lanes(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int = 200,
    skip_lanes: Collection[str] = (),
) -> list[tuple[OutboxItem, str]]:
    """Due items with their lane, P1 alerts first, then oldest first; lanes being delivered
    right now are skipped, so one busy channel cannot fill the window and starve the others."""
    item_lane = lane()
    stmt = (
        select(OutboxItem, item_lane)
        .outerjoin(Mention, col(Mention.id) == col(OutboxItem.mention_id))
        .where(
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.next_attempt_at) <= now,
        )
        .order_by(case((_is_urgent(), 0), else_=1), col(OutboxItem.id))
        .limit(limit)
    )
    if skip_lanes:
        stmt = stmt.where(item_lane.not_in(list(skip_lanes)))
    rows = (await session.execute(stmt)).all()
    return [(item, str(item_lane_key)) for item, item_lane_key in rows]


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


async def mark_attempt(session: AsyncSession, *, item_id: int) -> bool:
    """Recorded before calling Slack, so a crash mid-call leaves a trace to check on restart.

    False when the item is no longer pending (a summary took it over meanwhile): then it must
    not be posted. The condition is in the UPDATE, so the row lock decides any race.
    """
    result = await session.execute(
        update(OutboxItem)
        .where(col(OutboxItem.id) == item_id, col(OutboxItem.status) == OutboxStatus.PENDING)
        .values(attempts=OutboxItem.attempts + 1)
    )
    return cast(CursorResult[Any], result).rowcount == 1


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


async def release_thread_items(session: AsyncSession, *, mention_id: int, now: datetime) -> None:
    """Thread notes that were waiting for this mention's alert can go now."""
    await session.execute(
        update(OutboxItem)
        .where(
            col(OutboxItem.mention_id) == mention_id,
            col(OutboxItem.kind).in_([kind.value for kind in THREAD_KINDS]),
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.next_attempt_at) > now,
        )
        .values(next_attempt_at=now)
    )


def _of_group(group_id: int) -> ColumnElement[bool]:
    return col(OutboxItem.payload)["group_id"].as_integer() == group_id


async def release_group_items(session: AsyncSession, *, group_id: int, now: datetime) -> None:
    """A summary's thread replies, waiting for the summary to be posted, can go now."""
    await session.execute(
        update(OutboxItem)
        .where(
            col(OutboxItem.kind) == OutboxKind.GROUP_LINES,
            _of_group(group_id),
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.next_attempt_at) > now,
        )
        .values(next_attempt_at=now)
    )


async def mark_group_updates_done(session: AsyncSession, *, group_id: int, up_to_id: int) -> None:
    """A summary re-rendered now shows every earlier change; its older updates are redundant."""
    await session.execute(
        update(OutboxItem)
        .where(
            col(OutboxItem.kind) == OutboxKind.GROUP_UPDATE,
            _of_group(group_id),
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.id) <= up_to_id,
        )
        .values(status=OutboxStatus.DONE, done_at=utcnow())
    )
