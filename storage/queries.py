"""Read-only queries behind the queues, search and App Home.

Every list is bounded (``limit``, and callers cap ``offset``) and ordered by a unique tail
(the id), so pages neither overlap nor skip rows while nothing changes. The SQL is portable:
``lower(…) LIKE … ESCAPE`` rather than PostgreSQL's ``ILIKE``, so the same query runs on SQLite.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from storage.models import OPEN_STATES, DepartmentLead, Event, Mention, MentionState, Route

LIKE_ESCAPE = "!"
MAX_SEARCH_TEXT = 100
# Claim delays looked at for today's median; a day with more claims than this is a day whose
# median the first few thousand already describe.
MAX_CLAIMS_MEASURED = 5_000
_OPEN = [state.value for state in OPEN_STATES]
# Kept, but not something anyone works: copies folded into a story, and muted posts.
_HIDDEN = [MentionState.MERGED.value, MentionState.MUTED.value]


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern (escape character ``!``) matching ``text`` anywhere, lower-cased.

    ``%`` and ``_`` in what people type are literal characters, not wildcards.
    """
    escaped = (
        text.lower()
        .replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def _contains(column: Any, pattern: str) -> ColumnElement[bool]:
    return func.lower(column).like(pattern, escape=LIKE_ESCAPE)


def _queue_order() -> tuple[Any, ...]:
    # P1 < P2 < P3 < P4 as strings too; oldest first within a priority.
    return col(Mention.priority).asc(), col(Mention.found_at).asc(), col(Mention.id).asc()


async def open_queue(
    session: AsyncSession,
    *,
    departments: Collection[str] | None,
    limit: int,
    offset: int = 0,
) -> list[Mention]:
    """Open mentions (of ``departments``, or all), by priority then age."""
    stmt = select(Mention).where(col(Mention.state).in_(_OPEN))
    if departments is not None:
        stmt = stmt.where(col(Mention.department).in_(list(departments)))
    stmt = stmt.order_by(*_queue_order()).offset(offset).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def open_counts(
    session: AsyncSession, *, departments: Collection[str] | None = None
) -> dict[tuple[str, str], int]:
    """Open mentions per (department, priority)."""
    stmt = select(col(Mention.department), col(Mention.priority), func.count()).where(
        col(Mention.state).in_(_OPEN)
    )
    if departments is not None:
        stmt = stmt.where(col(Mention.department).in_(list(departments)))
    stmt = stmt.group_by(col(Mention.department), col(Mention.priority))
    return {(str(d), str(p)): int(n) for d, p, n in (await session.execute(stmt)).all()}


async def claimed_open(
    session: AsyncSession, *, owner: str, limit: int, offset: int = 0
) -> list[Mention]:
    """Open mentions ``owner`` holds, by priority then age."""
    stmt = (
        select(Mention)
        .where(col(Mention.owner) == owner, col(Mention.state).in_(_OPEN))
        .order_by(*_queue_order())
        .offset(offset)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def search_mentions(
    session: AsyncSession, *, text: str, limit: int, offset: int = 0
) -> list[Mention]:
    """Mentions whose title, text or author contains ``text`` (any case), newest first.

    Closed mentions are found too (the point of searching is often "did we see this before");
    copies folded into a story and muted posts are not. On SQLite ``lower()`` only folds ASCII.
    """
    pattern = like_pattern(text[:MAX_SEARCH_TEXT])
    stmt = (
        select(Mention)
        .where(
            col(Mention.state).not_in(_HIDDEN),
            or_(
                _contains(col(Mention.title), pattern),
                _contains(col(Mention.text), pattern),
                _contains(col(Mention.author), pattern),
            ),
        )
        .order_by(col(Mention.found_at).desc(), col(Mention.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def department_of_channel(session: AsyncSession, *, channel_id: str) -> str | None:
    """The department whose alerts go to ``channel_id``, if any (the first, if several)."""
    stmt = (
        select(col(Route.department))
        .where(col(Route.channel_id) == channel_id)
        .order_by(col(Route.department))
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def user_departments(
    session: AsyncSession, *, user_id: str, since: datetime, limit: int = 3
) -> list[str]:
    """The departments someone works in: those they lead, then those of mentions they acted on
    since ``since`` (most acted-on first)."""
    led = await session.execute(
        select(col(DepartmentLead.department))
        .where(col(DepartmentLead.user_id) == user_id)
        .order_by(col(DepartmentLead.department))
    )
    found = [str(department) for department in led.scalars()]
    acted = await session.execute(
        select(col(Mention.department), func.count())
        .join(Event, col(Event.mention_id) == col(Mention.id))
        .where(col(Event.actor) == user_id, col(Event.created_at) >= since)
        .group_by(col(Mention.department))
        .order_by(func.count().desc(), col(Mention.department))
        .limit(limit)
    )
    for department, _ in acted.all():
        if department not in found:
            found.append(str(department))
    return found[:limit]


async def unclaimed_past(
    session: AsyncSession,
    *,
    deadlines: Mapping[tuple[str, str], timedelta],
    now: datetime,
    limit: int,
) -> list[Mention]:
    """New, unclaimed mentions found longer ago than the deadline of their (department,
    priority), oldest first. Pairs without a deadline never count as late."""
    late = [
        and_(
            col(Mention.department) == department,
            col(Mention.priority) == priority,
            col(Mention.found_at) < now - deadline,
        )
        for (department, priority), deadline in deadlines.items()
    ]
    if not late:
        return []
    stmt = (
        select(Mention)
        .where(
            col(Mention.state) == MentionState.NEW.value,
            col(Mention.owner).is_(None),
            or_(*late),
        )
        .order_by(col(Mention.found_at).asc(), col(Mention.id).asc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


@dataclass(frozen=True, slots=True)
class DayNumbers:
    new: int  # stories found (copies folded into a story and muted posts not counted)
    claimed: int
    resolved: int
    median_to_claim: timedelta | None  # from found to claimed, for today's claims


async def day_numbers(session: AsyncSession, *, since: datetime, until: datetime) -> DayNumbers:
    new = await session.execute(
        select(func.count())
        .select_from(Mention)
        .where(
            col(Mention.found_at) >= since,
            col(Mention.found_at) < until,
            col(Mention.state).not_in(_HIDDEN),
        )
    )
    in_range = (col(Event.created_at) >= since, col(Event.created_at) < until)
    counts = await session.execute(
        select(col(Event.action), func.count())
        .where(col(Event.action).in_(["claim", "resolve"]), *in_range)
        .group_by(col(Event.action))
    )
    by_action = {str(action): int(n) for action, n in counts.all()}
    delays = await session.execute(
        select(col(Event.created_at), col(Mention.found_at))
        .join(Mention, col(Mention.id) == col(Event.mention_id))
        .where(col(Event.action) == "claim", *in_range)
        .order_by(col(Event.id))
        .limit(MAX_CLAIMS_MEASURED)
    )
    seconds = [max(0.0, (claimed - found).total_seconds()) for claimed, found in delays.all()]
    return DayNumbers(
        new=int(new.scalar_one()),
        claimed=by_action.get("claim", 0),
        resolved=by_action.get("resolve", 0),
        median_to_claim=timedelta(seconds=statistics.median(seconds)) if seconds else None,
    )
