"""Aggregates over mentions (hourly counts, period volumes), spikes and share of voice.

Every aggregate filters on ``mention.found_at``, which is indexed, so a check scans only the
rows of its time range however large the table grows.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, cast, delete, extract, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from storage.models import Mention, ShareOfVoice, Spike, Watch

SECONDS_PER_HOUR = 3600
# Held for the length of one spike check on PostgreSQL, so that two replicas checking at the
# same moment cannot both find "no open spike" and both open one. SQLite needs no lock: every
# write transaction there begins with BEGIN IMMEDIATE and so runs alone.
SPIKE_CHECK_LOCK_KEY = zlib.crc32(b"earful.spike_check")


@dataclass(frozen=True, slots=True)
class HourCount:
    watch_name: str
    hour: int  # whole hours since the start of the range asked for
    total: int
    negative: int


@dataclass(frozen=True, slots=True)
class PeriodCounts:
    watch_name: str
    watch_kind: str
    volume: int
    positive: int
    neutral: int
    negative: int
    mean_compound: float


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _hour_index(dialect: str, start_epoch: int) -> ColumnElement[Any]:
    """Whole hours between ``start_epoch`` and ``found_at``, computed by the database."""
    found_at = col(Mention.found_at)
    if dialect == "postgresql":
        seconds = extract("epoch", found_at)
        return cast(func.floor((seconds - start_epoch) / SECONDS_PER_HOUR), Integer)
    # SQLite keeps found_at as naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"). Its date functions
    # round that to the millisecond, so 14:59:59.9999 would read as 15:00:00 and land in the
    # next hour: cut the text to whole seconds first, which floors it. Integer division then
    # floors too, because only rows at or after the (whole-second) start are selected.
    whole_seconds = func.strftime("%s", func.substr(found_at, 1, 19))
    return (cast(whole_seconds, Integer) - start_epoch) // SECONDS_PER_HOUR


def _is_negative() -> ColumnElement[Any]:
    return case((col(Mention.sentiment_label) == "negative", 1), else_=0)


async def hourly_counts(
    session: AsyncSession, *, start: datetime, end: datetime
) -> list[HourCount]:
    """Mentions and negative mentions per watch and hour in ``[start, end)``.

    Hours are counted from ``start`` (not clock hours), so a window ending "now" is exactly
    the last bucket. ``start`` should be a whole second: SQLite drops fractions of a second.
    Hours without mentions are absent.
    """
    hour = _hour_index(_dialect(session), int(start.timestamp())).label("hour")
    stmt = (
        select(
            col(Mention.watch_name),
            hour,
            func.count().label("total"),
            func.sum(_is_negative()).label("negative"),
        )
        .where(col(Mention.found_at) >= start, col(Mention.found_at) < end)
        .group_by(col(Mention.watch_name), hour)
    )
    rows = (await session.execute(stmt)).all()
    return [
        HourCount(watch_name=name, hour=int(h), total=int(total), negative=int(negative or 0))
        for name, h, total, negative in rows
    ]


async def watch_created_at(session: AsyncSession, *, names: Collection[str]) -> dict[str, datetime]:
    """When each named watch was created; watches since deleted are absent."""
    if not names:
        return {}
    stmt = select(col(Watch.name), col(Watch.created_at)).where(col(Watch.name).in_(names))
    return {name: created for name, created in (await session.execute(stmt)).all()}


async def top_examples(
    session: AsyncSession,
    *,
    watch_name: str,
    start: datetime,
    end: datetime,
    negative_only: bool = False,
    limit: int = 5,
) -> list[Mention]:
    """The window's most important mentions of a watch: by priority, then author reach."""
    stmt = select(Mention).where(
        col(Mention.watch_name) == watch_name,
        col(Mention.found_at) >= start,
        col(Mention.found_at) < end,
    )
    if negative_only:
        stmt = stmt.where(col(Mention.sentiment_label) == "negative")
    stmt = stmt.order_by(
        col(Mention.priority),  # "P1" sorts before "P2"
        # Unknown reach sorts last on both engines (their NULL orderings differ).
        func.coalesce(col(Mention.author_reach), -1).desc(),
        col(Mention.found_at).desc(),
        col(Mention.id).desc(),
    ).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def biggest_cluster(
    session: AsyncSession, *, watch_name: str, start: datetime, end: datetime
) -> int | None:
    """The cluster (story) holding most of a watch's mentions in the window, if any."""
    size = func.count().label("size")
    stmt = (
        select(col(Mention.cluster_id), size)
        .where(
            col(Mention.watch_name) == watch_name,
            col(Mention.found_at) >= start,
            col(Mention.found_at) < end,
            col(Mention.cluster_id).is_not(None),
        )
        .group_by(col(Mention.cluster_id))
        .order_by(size.desc(), col(Mention.cluster_id))
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None or row[0] is None else int(row[0])


async def mentions_by_ids(session: AsyncSession, *, ids: Sequence[int]) -> list[Mention]:
    """The mentions with these ids, in the order given; deleted ones are skipped."""
    if not ids:
        return []
    found = await session.execute(select(Mention).where(col(Mention.id).in_(ids)))
    by_id = {m.id: m for m in found.scalars()}
    return [by_id[i] for i in ids if i in by_id]


# ---------------------------------------------------------------- spikes


async def lock_spike_check(session: AsyncSession) -> None:
    """Serialise spike checks across processes until the end of the transaction."""
    if _dialect(session) == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": SPIKE_CHECK_LOCK_KEY}
        )


async def open_spikes(session: AsyncSession) -> list[Spike]:
    stmt = select(Spike).where(col(Spike.ended_at).is_(None)).order_by(col(Spike.id))
    return list((await session.execute(stmt)).scalars())


async def add_spike(session: AsyncSession, *, spike: Spike) -> Spike:
    session.add(spike)
    await session.flush()
    return spike


async def close_spike(session: AsyncSession, *, spike_id: int, ended_at: datetime) -> None:
    await session.execute(
        update(Spike)
        .where(col(Spike.id) == spike_id, col(Spike.ended_at).is_(None))
        .values(ended_at=ended_at)
    )


async def get_spike(session: AsyncSession, *, spike_id: int) -> Spike | None:
    return await session.get(Spike, spike_id)


async def mark_spike_alerted(session: AsyncSession, *, spike_id: int) -> None:
    await session.execute(update(Spike).where(col(Spike.id) == spike_id).values(alerted=True))


# ---------------------------------------------------------------- share of voice


async def period_counts(
    session: AsyncSession, *, start: datetime, end: datetime, kinds: Mapping[str, str]
) -> list[PeriodCounts]:
    """Volume and sentiment per watch for mentions found in ``[start, end)``.

    A mention counts for every watch it matched (``mention.watches``), not only its primary
    one: a post comparing us with a competitor is part of both voices. Only watches named in
    ``kinds`` (name → current kind) are counted, plus a mention's primary watch under the kind
    it recorded when that watch is gone. The JSON list of watches cannot be grouped by the
    same SQL on both engines, so rows are read (four small columns of one period, through the
    found_at index) and added up here.
    """
    stmt = select(
        col(Mention.watch_name),
        col(Mention.watch_kind),
        col(Mention.watches),
        col(Mention.sentiment_compound),
        col(Mention.sentiment_label),
    ).where(col(Mention.found_at) >= start, col(Mention.found_at) < end)
    totals: dict[str, list[float]] = {}
    watch_kinds: dict[str, str] = {}
    for primary, primary_kind, matched, compound, label in await session.execute(stmt):
        for name in dict.fromkeys([primary, *(matched or [])]):
            kind = kinds.get(name) or (primary_kind if name == primary else None)
            if kind is None:
                continue
            watch_kinds.setdefault(name, kind)
            # volume, positive, neutral, negative, sum of compound
            row = totals.setdefault(name, [0, 0, 0, 0, 0.0])
            row[0] += 1
            row[_LABEL_COLUMN.get(label, 2)] += 1
            row[4] += float(compound or 0.0)
    return [
        PeriodCounts(
            watch_name=name,
            watch_kind=watch_kinds[name],
            volume=int(row[0]),
            positive=int(row[1]),
            neutral=int(row[2]),
            negative=int(row[3]),
            mean_compound=row[4] / row[0],
        )
        for name, row in sorted(totals.items())
    ]


_LABEL_COLUMN = {"positive": 1, "neutral": 2, "negative": 3}


async def replace_share_of_voice(
    session: AsyncSession,
    *,
    period: str,
    period_start: datetime,
    counts: Sequence[PeriodCounts],
) -> None:
    """Make the stored rows of one period exactly ``counts``: upsert each, drop the rest.

    An upsert on the (period, period_start, watch_name) key, so recomputing a period, or two
    processes recomputing it at once, never duplicates a row.
    """
    table: Any = ShareOfVoice.__table__  # type: ignore[attr-defined]
    insert_fn = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    for row in counts:
        values = {
            "volume": row.volume,
            "positive": row.positive,
            "neutral": row.neutral,
            "negative": row.negative,
            "mean_compound": row.mean_compound,
            "watch_kind": row.watch_kind,
        }
        stmt = insert_fn(table).values(
            period=period, period_start=period_start, watch_name=row.watch_name, **values
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["period", "period_start", "watch_name"], set_=values
        )
        await session.execute(stmt)
    await session.execute(
        delete(ShareOfVoice).where(
            col(ShareOfVoice.period) == period,
            col(ShareOfVoice.period_start) == period_start,
            col(ShareOfVoice.watch_name).not_in([row.watch_name for row in counts]),
        )
    )


async def share_of_voice_rows(
    session: AsyncSession, *, period: str, period_start: datetime
) -> list[ShareOfVoice]:
    stmt = (
        select(ShareOfVoice)
        .where(
            col(ShareOfVoice.period) == period,
            col(ShareOfVoice.period_start) == period_start,
        )
        .order_by(col(ShareOfVoice.volume).desc(), col(ShareOfVoice.watch_name))
    )
    return list((await session.execute(stmt)).scalars())
