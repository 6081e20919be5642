"""Share of voice: our brand against each competitor, per UTC day or week, for the digest.

Volumes and sentiment are computed from the mentions and kept in ``share_of_voice`` rows, one
per watch and period, so the digest reads a few rows instead of scanning a week of mentions.
A mention counts once, for its primary watch (``mention.watch_name``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from storage import stats
from storage import watches as watch_store
from storage.db import Database
from storage.types import utcnow
from watchers.departments import WatchKind

Period = Literal["day", "week"]
PERIODS: tuple[Period, ...] = get_args(Period)
_LENGTHS: dict[str, timedelta] = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
# Product, person and topic watches are about us or the market but are no brand's "voice";
# counting them would make our share depend on how many such watches someone created.
OUR_KINDS = frozenset({WatchKind.BRAND.value})
COMPETITOR_KINDS = frozenset({WatchKind.COMPETITOR.value})


@dataclass(frozen=True, slots=True)
class Voice:
    """One watch's part of the conversation in a period."""

    watch_name: str
    watch_kind: str
    ours: bool
    volume: int
    positive: int
    neutral: int
    negative: int
    mean_compound: float
    share: float  # volume / the volume of every brand and competitor watch; 0 when all are 0


def period_start(period: Period, at: datetime) -> datetime:
    """The start of the UTC day, or week (from Monday), that contains ``at``."""
    if period not in _LENGTHS:
        raise ValueError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if period == "week" else day


async def compute_share_of_voice(
    db: Database, *, period: Period, start: datetime
) -> list[stats.PeriodCounts]:
    """Recompute and store the rows of the period containing ``start``; safe to repeat."""
    begin = period_start(period, start)
    end = begin + _LENGTHS[period]
    async with db.session() as session:
        counts = await stats.period_counts(session, start=begin, end=end)
        watches = {
            w.name: w
            for w in await watch_store.list_watches(session)
            if w.kind in OUR_KINDS | COMPETITOR_KINDS and w.created_at < end
        }
        # A watch's current kind, when it still exists, wins over what its mentions recorded.
        counts = [
            dataclasses.replace(c, watch_kind=watches[c.watch_name].kind)
            if c.watch_name in watches
            else c
            for c in counts
        ]
        # A competitor nobody talked about is news for the digest too: it gets a zero row.
        seen = {c.watch_name for c in counts}
        counts += [
            stats.PeriodCounts(
                watch_name=name,
                watch_kind=watch.kind,
                volume=0,
                positive=0,
                neutral=0,
                negative=0,
                mean_compound=0.0,
            )
            for name, watch in sorted(watches.items())
            if name not in seen
        ]
        await stats.replace_share_of_voice(
            session, period=period, period_start=begin, counts=counts
        )
    return counts


async def share_of_voice(db: Database, *, period: Period, start: datetime) -> list[Voice]:
    """Our brand watches, then competitors, each by volume, with their share of the total."""
    begin = period_start(period, start)
    async with db.session() as session:
        rows = await stats.share_of_voice_rows(session, period=period, period_start=begin)
    rows = [r for r in rows if r.watch_kind in OUR_KINDS | COMPETITOR_KINDS]
    total = sum(r.volume for r in rows)
    voices = [
        Voice(
            watch_name=r.watch_name,
            watch_kind=r.watch_kind,
            ours=r.watch_kind in OUR_KINDS,
            volume=r.volume,
            positive=r.positive,
            neutral=r.neutral,
            negative=r.negative,
            mean_compound=r.mean_compound,
            share=r.volume / total if total else 0.0,
        )
        for r in rows
    ]
    return sorted(voices, key=lambda v: (not v.ours, -v.volume, v.watch_name))


async def refresh_share_of_voice(db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
    """The scheduler's job: recompute the current and the previous day and week.

    The previous period too, because mentions found just before midnight may have been stored
    after the last run of that day.
    """
    now = clock()
    for period in PERIODS:
        current = period_start(period, now)
        for start in (current - _LENGTHS[period], current):
            await compute_share_of_voice(db, period=period, start=start)
