"""Mentions, their audit trail, and the state changes applied to them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import instrumentation
from sqlmodel import col

from storage.models import Event, Mention, OutboxItem
from storage.types import utcnow
from storage.upsert import insert_ignoring_conflicts

# A note Earful adds to a story that keeps spreading (see bot/clustering.py). It changes no
# state, so the card's state line ("Claimed by … at …") keeps describing the last real change.
TRACTION_ACTION = "traction"
# Rows per bulk INSERT: a mention has ~40 columns, and SQLite allows 32,766 parameters.
_INSERT_CHUNK = 200


def new_mention(**values: Any) -> Mention:
    """``Mention(**values)``, at a twentieth of the cost: for a burst of new mentions.

    SQLModel's constructor sets every one of a mention's ~40 attributes through SQLAlchemy's
    and pydantic's ``__setattr__``, about 0.3 ms a mention, which was most of what storing a
    burst cost. This builds the same transient object the way SQLAlchemy builds the ones it
    loads (``ClassManager.new_instance``), with the values and defaults put in place and
    pydantic's record of which fields were given; later changes go through ``__setattr__``
    as usual. tests/storage/test_mentions.py checks it stays equal to the constructor's.
    """
    mention = _MENTIONS.new_instance()
    state = mention.__dict__
    for name, field in _MENTION_FIELDS:
        if name in values:
            state[name] = values[name]
        elif not field.is_required():
            state[name] = field.get_default(call_default_factory=True)
        else:
            raise TypeError(f"new_mention() needs {name!r}")
    unknown = values.keys() - state.keys()
    if unknown:
        raise TypeError(f"new_mention() got unknown fields {sorted(unknown)}")
    object.__setattr__(mention, "__pydantic_fields_set__", set(values))
    return mention


_MENTIONS = instrumentation.manager_of_class(Mention)
_COLUMNS = tuple(c.name for c in Mention.__table__.columns if c.name != "id")  # type: ignore[attr-defined]
_MENTION_FIELDS = tuple(Mention.model_fields.items())


async def add_mentions(session: AsyncSession, *, mentions: Sequence[Mention]) -> list[Mention]:
    """Store new mentions; those already stored (same origin and external id) are skipped.

    Returns the ones that were new, with their ids. The unique constraint decides, so two
    pollers racing on the same post store it once.
    """
    stored: list[Mention] = []
    for mention in mentions:
        values = mention.model_dump(exclude={"id"})
        new_id = await insert_ignoring_conflicts(
            session,
            Mention,
            values,
            conflict_columns=("origin", "external_id"),
        )
        if new_id is not None:
            mention.id = new_id
            stored.append(mention)
    return stored


async def insert_new_mentions(
    session: AsyncSession, *, mentions: Sequence[Mention]
) -> list[Mention]:
    """Store new mentions in bulk (one INSERT per few hundred rows); like :func:`add_mentions`,
    those already stored (same origin and external id) are skipped by the unique constraint,
    and the ones stored are returned with their ids, in the order given."""
    if not mentions:
        return []
    table = Mention.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_fn(table)
        .on_conflict_do_nothing(index_elements=["origin", "external_id"])
        .returning(table.c.id, table.c.origin, table.c.external_id)
    )
    ids: dict[tuple[str, str], int] = {}
    for start in range(0, len(mentions), _INSERT_CHUNK):
        rows = [_row(m) for m in mentions[start : start + _INSERT_CHUNK]]
        for new_id, origin, external_id in (await session.execute(stmt, rows)).all():
            ids[(str(origin), str(external_id))] = int(new_id)
    stored = []
    for mention in mentions:
        new_id = ids.pop((mention.origin, mention.external_id), None)
        if new_id is not None:
            mention.id = new_id
            stored.append(mention)
    return stored


def _row(mention: Mention) -> dict[str, Any]:
    # The column values as they are, for a bulk INSERT: pydantic's model_dump would copy and
    # check each of them, which for a burst costs more than the INSERT does. A new mention
    # holds them all in its __dict__ (new_mention puts them there); reading them there skips
    # SQLAlchemy's attribute machinery, the other half of the cost.
    state = mention.__dict__
    return {name: state[name] if name in state else getattr(mention, name) for name in _COLUMNS}


async def stored_external_ids(
    session: AsyncSession, *, origin: str, external_ids: Sequence[str]
) -> set[str]:
    """Which of these posts of ``origin`` are already stored as mentions."""
    return set(await known_posts(session, origin=origin, external_ids=external_ids))


async def known_posts(
    session: AsyncSession, *, origin: str, external_ids: Sequence[str]
) -> dict[str, tuple[int, int | None]]:
    """Of these posts, those already stored as mentions: external id → (mention id, reach)."""
    known: dict[str, tuple[int, int | None]] = {}
    ids = list(dict.fromkeys(external_ids))
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(col(Mention.external_id), col(Mention.id), col(Mention.author_reach)).where(
                col(Mention.origin) == origin,
                col(Mention.external_id).in_(ids[start : start + 500]),
            )
        )
        for external_id, mention_id, reach in rows.all():
            known[str(external_id)] = (cast(int, mention_id), reach)
    return known


async def get_mention(
    session: AsyncSession, *, mention_id: int, lock: bool = False
) -> Mention | None:
    stmt = select(Mention).where(col(Mention.id) == mention_id)
    if lock:
        # PostgreSQL serialises concurrent transitions on the row; SQLite already holds the
        # database write lock from BEGIN IMMEDIATE.
        stmt = stmt.with_for_update()
    result = await session.execute(stmt)
    return result.scalars().first()


async def get_mention_by_message(session: AsyncSession, *, channel: str, ts: str) -> Mention | None:
    result = await session.execute(
        select(Mention).where(col(Mention.channel) == channel, col(Mention.ts) == ts)
    )
    return result.scalars().first()


async def set_message(session: AsyncSession, *, mention_id: int, channel: str, ts: str) -> None:
    await session.execute(
        update(Mention).where(col(Mention.id) == mention_id).values(channel=channel, ts=ts)
    )


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write with :func:`insert_events`."""

    mention_id: int
    actor: str | None
    action: str
    from_state: str | None
    to_state: str | None
    note: str | None = None


async def insert_events(session: AsyncSession, *, events: Sequence[NewEvent]) -> None:
    """Write many events at once: one INSERT per few hundred rows and no ORM objects, which
    for a burst of new mentions cost more than the database did. Ids are given in order."""
    if not events:
        return
    now = utcnow()
    table = Event.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "mention_id": event.mention_id,
            "actor": event.actor,
            "action": event.action,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "note": event.note,
            "reason": None,
            "created_at": now,
        }
        for event in events
    ]
    for start in range(0, len(rows), _INSERT_CHUNK):
        await session.execute(insert(table), rows[start : start + _INSERT_CHUNK])


async def add_event(
    session: AsyncSession,
    *,
    mention_id: int,
    actor: str | None,
    action: str,
    from_state: str | None,
    to_state: str | None,
    note: str | None = None,
) -> Event:
    event = Event(
        mention_id=mention_id,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        note=note,
    )
    session.add(event)
    await session.flush()
    return event


async def events_for(session: AsyncSession, *, mention_id: int) -> list[Event]:
    result = await session.execute(
        select(Event).where(col(Event.mention_id) == mention_id).order_by(col(Event.id))
    )
    return list(result.scalars())


async def last_event(session: AsyncSession, *, mention_id: int) -> Event | None:
    """The latest event that changed the mention (traction notes are not such changes)."""
    result = await session.execute(
        select(Event)
        .where(col(Event.mention_id) == mention_id, col(Event.action) != TRACTION_ACTION)
        .order_by(col(Event.id).desc())
        .limit(1)
    )
    return result.scalars().first()


async def count_mentions(session: AsyncSession, **filters: Any) -> int:
    stmt = select(func.count()).select_from(Mention)
    for column, value in filters.items():
        stmt = stmt.where(getattr(Mention, column) == value)
    return int((await session.execute(stmt)).scalar_one())


async def pending_alert_count_by_department(session: AsyncSession) -> dict[str, int]:
    """Alerts that could not be posted yet, per department (usually: no channel routed)."""
    from storage.models import OutboxKind, OutboxStatus

    stmt = (
        select(col(Mention.department), func.count())
        .join(OutboxItem, col(OutboxItem.mention_id) == Mention.id)
        .where(
            col(OutboxItem.kind) == OutboxKind.ALERT,
            col(OutboxItem.status) == OutboxStatus.PENDING,
        )
        .group_by(col(Mention.department))
    )
    return {department: int(n) for department, n in (await session.execute(stmt)).all()}


async def claimed_by(session: AsyncSession, *, owner: str, limit: int = 10) -> list[Mention]:
    from storage.models import OPEN_STATES

    stmt = (
        select(Mention)
        .where(
            col(Mention.owner) == owner,
            col(Mention.state).in_([s.value for s in OPEN_STATES]),
        )
        .order_by(col(Mention.priority), col(Mention.found_at).desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def open_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Open mentions per (department, priority)."""
    from storage.models import OPEN_STATES

    stmt = (
        select(col(Mention.department), col(Mention.priority), func.count())
        .where(col(Mention.state).in_([s.value for s in OPEN_STATES]))
        .group_by(col(Mention.department), col(Mention.priority))
    )
    return {(d, p): int(n) for d, p, n in (await session.execute(stmt)).all()}


async def found_since(session: AsyncSession, *, since: datetime) -> int:
    stmt = select(func.count()).select_from(Mention).where(col(Mention.found_at) >= since)
    return int((await session.execute(stmt)).scalar_one())
