"""SLA storage: admins' policy edits, each mention's SLA phase, and the timers that fire once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.mentions import TRACTION_ACTION
from storage.models import OPEN_STATES, Event, Mention, SlaPhase, SlaPolicy, SlaTimer
from storage.types import utcnow
from storage.upsert import insert_ignoring_conflicts

FIRED = "fired"
CANCELLED = "cancelled"

_STEP_COLUMNS = ("ping_seconds", "escalate_seconds", "remind_seconds")


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


# ---------------------------------------------------------------- policy


async def policy_edits(session: AsyncSession) -> list[SlaPolicy]:
    result = await session.execute(
        select(SlaPolicy).order_by(col(SlaPolicy.department), col(SlaPolicy.priority))
    )
    return list(result.scalars())


async def edit_policy(
    session: AsyncSession,
    *,
    department: str,
    priority: str,
    steps: dict[str, int | None],
    updated_by: str | None,
) -> None:
    """Set the given steps (column → seconds; 0 = off) and leave the others as they were.

    One upsert statement, so two admins editing the same row at once both land.
    """
    unknown = set(steps) - set(_STEP_COLUMNS)
    if unknown:
        raise ValueError(f"unknown SLA steps: {sorted(unknown)}")
    values: dict[str, Any] = {
        "department": department,
        "priority": priority,
        "updated_by": updated_by,
        "updated_at": utcnow(),
        **steps,
    }
    stmt = _insert(session)(SlaPolicy.__table__).values(**values)  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["department", "priority"],
        set_={k: stmt.excluded[k] for k in (*steps, "updated_by", "updated_at")},
    )
    await session.execute(stmt)


async def reset_policy(session: AsyncSession, *, department: str, priority: str | None) -> int:
    """Drop edits for a department (one priority, or all); returns how many rows went."""
    stmt = delete(SlaPolicy).where(col(SlaPolicy.department) == department)
    if priority is not None:
        stmt = stmt.where(col(SlaPolicy.priority) == priority)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------- phases


async def changed_mentions(
    session: AsyncSession, *, limit: int = 200
) -> list[tuple[Mention, SlaPhase | None]]:
    """Mentions whose state the timers have not caught up with yet.

    Open mentions never seen, and mentions changed (``updated_at`` moved) since their phase was
    last synced. Closed mentions never seen need no timers and are left out.
    """
    stmt = (
        select(Mention, SlaPhase)
        .outerjoin(SlaPhase, col(SlaPhase.mention_id) == col(Mention.id))
        .where(
            or_(
                and_(
                    col(SlaPhase.mention_id).is_(None),
                    col(Mention.state).in_([s.value for s in OPEN_STATES]),
                ),
                and_(
                    col(SlaPhase.mention_id).is_not(None),
                    col(Mention.updated_at) != col(SlaPhase.seen_updated_at),
                ),
            )
        )
        .order_by(col(Mention.id))
        .limit(limit)
    )
    return [(m, p) for m, p in (await session.execute(stmt)).all()]


async def get_phase(session: AsyncSession, *, mention_id: int) -> SlaPhase | None:
    return await session.get(SlaPhase, mention_id)


async def save_phases(session: AsyncSession, *, phases: Sequence[dict[str, Any]]) -> None:
    """Record each mention's SLA phase (one upsert for all); each dict holds a row's columns:
    mention_id, phase, department, priority, seq, started_at, seen_updated_at."""
    if not phases:
        return
    stmt = _insert(session)(SlaPhase.__table__)  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["mention_id"],
        set_={k: stmt.excluded[k] for k in phases[0] if k != "mention_id"},
    )
    await session.execute(stmt, list(phases))


async def last_change_times(
    session: AsyncSession, *, mention_ids: Sequence[int]
) -> dict[int, datetime]:
    """When each mention last changed: the time of its latest event that is not a traction
    note, as :func:`storage.mentions.last_event` finds it; mentions without one are left out."""
    if not mention_ids:
        return {}
    latest = (
        select(func.max(col(Event.id)))
        .where(col(Event.mention_id).in_(mention_ids), col(Event.action) != TRACTION_ACTION)
        .group_by(col(Event.mention_id))
    )
    rows = await session.execute(
        select(col(Event.mention_id), col(Event.created_at)).where(col(Event.id).in_(latest))
    )
    return {int(mention_id): created_at for mention_id, created_at in rows.all()}


# ---------------------------------------------------------------- timers


async def add_timers(session: AsyncSession, *, timers: Sequence[dict[str, Any]]) -> None:
    """:func:`add_timer` for many steps in one statement (each dict: mention_id, kind, seq,
    level, due_at); steps already scheduled are kept."""
    if not timers:
        return
    now = utcnow()
    stmt = (
        _insert(session)(SlaTimer.__table__)  # type: ignore[attr-defined]
        .on_conflict_do_nothing(index_elements=["mention_id", "kind", "seq", "level"])
    )
    await session.execute(stmt, [{**timer, "created_at": now} for timer in timers])


async def cancel_pending_below(
    session: AsyncSession, *, below_seq: dict[int, int], now: datetime
) -> None:
    """Close the pending timers of earlier phases: for each mention id, those whose seq is below
    the given one; one statement per distinct seq."""
    by_seq: dict[int, list[int]] = {}
    for mention_id, seq in below_seq.items():
        by_seq.setdefault(seq, []).append(mention_id)
    for seq, mention_ids in by_seq.items():
        await session.execute(
            update(SlaTimer)
            .where(
                col(SlaTimer.mention_id).in_(mention_ids),
                col(SlaTimer.done_at).is_(None),
                col(SlaTimer.seq) < seq,
            )
            .values(done_at=now, outcome=CANCELLED)
        )


async def add_timer(
    session: AsyncSession, *, mention_id: int, kind: str, seq: int, level: int, due_at: datetime
) -> int | None:
    """Schedule a step; a step already scheduled (same mention, kind, phase, level) is kept."""
    return await insert_ignoring_conflicts(
        session,
        SlaTimer,
        {
            "mention_id": mention_id,
            "kind": kind,
            "seq": seq,
            "level": level,
            "due_at": due_at,
            "created_at": utcnow(),
        },
        conflict_columns=("mention_id", "kind", "seq", "level"),
    )


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int = 50
) -> list[SlaTimer]:
    """Take due timers for this firer until ``lease_until``; no other firer gets them meanwhile.

    One UPDATE … RETURNING whose WHERE is re-checked on the row it locks: on PostgreSQL a
    concurrent firer that waited for the row sees the new lease and skips it (and SKIP LOCKED
    keeps firers from queueing on each other); on SQLite the write lock taken at BEGIN
    IMMEDIATE (storage/db.py) serialises firers outright.
    """
    claimable = and_(
        col(SlaTimer.done_at).is_(None),
        col(SlaTimer.due_at) <= now,
        or_(col(SlaTimer.lease_until).is_(None), col(SlaTimer.lease_until) <= now),
    )
    candidates = (
        select(col(SlaTimer.id)).where(claimable).order_by(col(SlaTimer.due_at)).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(SlaTimer)
        .where(col(SlaTimer.id).in_(candidates.scalar_subquery()), claimable)
        .values(lease_until=lease_until)
        .returning(SlaTimer)
    )
    rows = (await session.execute(stmt)).scalars().all()
    return sorted(rows, key=lambda t: (t.due_at, t.id or 0))


async def finish(session: AsyncSession, *, timer_id: int, now: datetime, outcome: str) -> bool:
    """Close a timer; False when it was already closed (by another firer or a cancellation).

    Run it in the same transaction as what firing writes, so the effects happen exactly once.
    """
    result = await session.execute(
        update(SlaTimer)
        .where(col(SlaTimer.id) == timer_id, col(SlaTimer.done_at).is_(None))
        .values(done_at=now, outcome=outcome, lease_until=None)
    )
    return bool(getattr(result, "rowcount", 0))


async def timers_for(session: AsyncSession, *, mention_id: int) -> list[SlaTimer]:
    result = await session.execute(
        select(SlaTimer).where(col(SlaTimer.mention_id) == mention_id).order_by(col(SlaTimer.id))
    )
    return list(result.scalars())


async def pending_for(session: AsyncSession, *, mention_ids: Sequence[int]) -> list[SlaTimer]:
    if not mention_ids:
        return []
    result = await session.execute(
        select(SlaTimer)
        .where(col(SlaTimer.mention_id).in_(list(mention_ids)), col(SlaTimer.done_at).is_(None))
        .order_by(col(SlaTimer.due_at))
    )
    return list(result.scalars())
