"""Share of voice: our brand against each competitor, per UTC hour and day, for the digest.

Volumes and sentiment are computed from the mentions and kept in ``share_of_voice`` rows, one
per watch and period, so the digest reads a few rows instead of scanning a day of mentions.
A mention counts for every brand or competitor watch it matched, so a post comparing us with
a rival is part of both voices. Periods are half-open UTC ranges: the hour (or day) starting at
``period_start`` holds the mentions found at or after it and before the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from storage import stats
from storage import watches as watch_store
from storage.db import Database
from storage.types import utcnow
from watchers.departments import WatchKind

Period = Literal["hour", "day"]
PERIODS: tuple[Period, ...] = get_args(Period)
_LENGTHS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Product, person and topic watches are about us or the market but are no brand's "voice";
# counting them would make our share depend on how many such watches someone created.
OUR_KINDS = frozenset({WatchKind.BRAND.value})
COMPETITOR_KINDS = frozenset({WatchKind.COMPETITOR.value})
VOICE_KINDS = OUR_KINDS | COMPETITOR_KINDS


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
    mean_compound: float  # VADER compound, -1 … 1; 0.0 when there were no mentions
    share_percent: float  # of the volume of every brand and competitor watch; 0 when all are 0


@dataclass(frozen=True, slots=True)
class Matchup:
    """One of our brand watches against one competitor: the two split 100 %."""

    brand: Voice
    competitor: Voice
    brand_percent: float  # 0 for both when neither was mentioned
    competitor_percent: float


@dataclass(frozen=True, slots=True)
class ShareOfVoice:
    """A period's share of voice, as the digest shows it."""

    period: Period
    start: datetime
    voices: list[Voice]  # our brand watches first, then competitors, each by volume
    matchups: list[Matchup]  # every brand × competitor pair


def period_start(period: Period, at: datetime) -> datetime:
    """The start of the UTC hour, or day, that contains ``at``."""
    if period not in _LENGTHS:
        raise ValueError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
    hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if period == "day" else hour


async def compute_share_of_voice(
    db: Database, *, period: Period, start: datetime
) -> list[stats.PeriodCounts]:
    """Recompute and store the rows of the period containing ``start``.

    Safe to repeat, and to run on two replicas at once: the period's rows are replaced
    (upserted on their unique key, the rest deleted), never added to.
    """
    begin = period_start(period, start)
    end = begin + _LENGTHS[period]
    async with db.session() as session:
        # A watch's current kind wins over what its mentions recorded.
        watches = await watch_store.list_watches(session)
        kinds = {w.name: w.kind for w in watches}
        counts = await stats.period_counts(session, start=begin, end=end, kinds=kinds)
        counts = [c for c in counts if c.watch_kind in VOICE_KINDS]
        # A competitor nobody talked about is news for the digest too: it gets a zero row.
        seen = {c.watch_name for c in counts}
        counts += [
            stats.PeriodCounts(
                watch_name=watch.name,
                watch_kind=watch.kind,
                volume=0,
                positive=0,
                neutral=0,
                negative=0,
                mean_compound=0.0,
            )
            for watch in watches
            if watch.kind in VOICE_KINDS and watch.created_at < end and watch.name not in seen
        ]
        await stats.replace_share_of_voice(
            session, period=period, period_start=begin, counts=counts
        )
    return counts


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


async def share_of_voice(db: Database, *, period: Period, start: datetime) -> ShareOfVoice:
    """The stored share of voice of the period containing ``start`` (for the digest)."""
    begin = period_start(period, start)
    async with db.session() as session:
        rows = await stats.share_of_voice_rows(session, period=period, period_start=begin)
    rows = [r for r in rows if r.watch_kind in VOICE_KINDS]
    total = sum(r.volume for r in rows)
    voices = sorted(
        (
            Voice(
                watch_name=r.watch_name,
                watch_kind=r.watch_kind,
                ours=r.watch_kind in OUR_KINDS,
                volume=r.volume,
                positive=r.positive,
                neutral=r.neutral,
                negative=r.negative,
                mean_compound=r.mean_compound,
                share_percent=_percent(r.volume, total),
            )
            for r in rows
        ),
        key=lambda v: (not v.ours, -v.volume, v.watch_name),
    )
    matchups = [
        Matchup(
            brand=brand,
            competitor=rival,
            brand_percent=_percent(brand.volume, brand.volume + rival.volume),
            competitor_percent=_percent(rival.volume, brand.volume + rival.volume),
        )
        for brand in voices
        if brand.ours
        for rival in voices
        if not rival.ours
    ]
    return ShareOfVoice(period=period, start=begin, voices=voices, matchups=matchups)


async def refresh_share_of_voice(db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
    """The scheduler's job: recompute the current and the previous hour and day.

    The previous period too, because mentions found just before the hour (or midnight) may
    have been stored after the last run in that period.
    """
    now = clock()
    for period in PERIODS:
        current = period_start(period, now)
        for start in (current - _LENGTHS[period], current):
            await compute_share_of_voice(db, period=period, start=start)
