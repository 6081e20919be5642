"""The digest's numbers: volumes, sentiment, share of voice, attention, response, spikes.

Every number carries a :class:`DrillDown`, the filter that lists the mentions behind it, and
is counted with that same filter (:func:`_where`), so :func:`drill_down` lists exactly them.

What counts:
- Volumes, the trend and share of voice cover mentions *found* in the period. Muted posts are
  never counted; copies merged into a story are (the story was told that many times), but
  are never listed as work (the attention lists).
- Team response: for mentions claimed (resolved) in the period, whenever found, the time from
  found to ``claimed_at`` (``resolved_at``), the last claim and resolution bot/workflow.py
  recorded. Median and 90th percentile are interpolated (``percentile_cont``): computed by
  PostgreSQL; on SQLite, which has none, from the fetched durations (one float a mention
  claimed or resolved in the period, so bounded by the period's size).
- Attention: the period's P1/P2 mentions by priority then reach; open escalations and SLA
  breaches as they stand at ``now`` (whenever found). An SLA breach is a P1/P2 still *new*
  (unclaimed) longer than its claim deadline: the "ping" step of bot/sla.py's built-in table,
  or the deadlines the caller passes.

Speed (bench/digest.py, 1,000,000 mentions): each period is read in two grouped scans, one of
the covering index ``ix_mention_digest`` and one for the few mentions matching several
watches; response times through ``ix_mention_claimed_at``/``ix_mention_resolved_at``; short
lists through ``(state, priority, found_at)`` and ``(priority, found_at)``. The statements are
the same on both engines except the trend bucket and the duration arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, Text, and_, case, cast, extract, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from storage.models import Mention, MentionState, Spike, Watch

Bucket = Literal["hour", "day"]
TimeField = Literal["found_at", "claimed_at", "resolved_at"]


@dataclass(frozen=True, slots=True)
class DrillDown:
    """Which mentions stand behind a number: every field that is set narrows the list.

    ``time_field`` says which timestamp ``[start, end)`` applies to: the found time for volumes,
    the claim or resolve time for response times; a bound left None is open. ``departments``
    is the digest's own scope (a subscriber's departments); ``department`` the one a row is
    about. ``watch_name`` is a mention's primary watch (as spikes count it), ``matched_watch``
    any watch it matched (as share of voice counts it). ``overdue`` holds (priority, found
    before) pairs: unclaimed new mentions of that priority found before that time;
    ``mention_ids`` the exact items of a short list. Muted mentions are left out unless
    ``states`` names them.
    """

    start: datetime | None = None
    end: datetime | None = None
    time_field: TimeField = "found_at"
    departments: tuple[str, ...] = ()
    department: str | None = None
    intent: str | None = None  # a primary intent; "" for mentions with no intent
    source: str | None = None  # a source kind: "rss", "hn", "reddit", …
    watch_name: str | None = None
    matched_watch: str | None = None
    watch_kinds: tuple[str, ...] = ()
    sentiment: str | None = None  # "positive" | "neutral" | "negative"
    priorities: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    overdue: tuple[tuple[str, datetime], ...] = ()
    mention_ids: tuple[int, ...] = ()

    def to_value(self) -> str:
        """Compact JSON for a button ``value`` (at most 2,000 characters in Block Kit)."""
        data: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None or value == () or (name == "time_field" and value == "found_at"):
                continue
            if isinstance(value, datetime):
                value = _epoch(value)
            elif name == "overdue":
                value = [[priority, _epoch(before)] for priority, before in value]
            elif isinstance(value, tuple):
                value = list(value)
            data[_SHORT[name]] = value
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_value(cls, value: str) -> DrillDown:
        """The drill-down :meth:`to_value` wrote; ``ValueError`` if ``value`` is not one."""
        try:
            data = json.loads(value)
            kwargs: dict[str, Any] = {}
            for short, raw in data.items():
                name = _LONG[short]
                if name in ("start", "end"):
                    kwargs[name] = _from_epoch(raw)
                elif name == "overdue":
                    kwargs[name] = tuple((str(p), _from_epoch(t)) for p, t in raw)
                elif isinstance(raw, list):
                    kwargs[name] = tuple(raw)
                else:
                    kwargs[name] = raw
            return cls(**kwargs)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a drill-down value: {value[:80]!r}") from error

    def narrowed(self, **changes: Any) -> DrillDown:
        """A copy with some fields changed."""
        return replace(self, **changes)


_SHORT = {
    "start": "s",
    "end": "e",
    "time_field": "t",
    "departments": "D",
    "department": "d",
    "intent": "i",
    "source": "k",
    "watch_name": "w",
    "matched_watch": "v",
    "watch_kinds": "W",
    "sentiment": "m",
    "priorities": "p",
    "states": "x",
    "overdue": "o",
    "mention_ids": "n",
}
_LONG = {short: name for name, short in _SHORT.items()}


def _epoch(moment: datetime) -> float | int:
    stamp = moment.timestamp()
    return int(stamp) if stamp.is_integer() else stamp


def _from_epoch(raw: Any) -> datetime:
    return datetime.fromtimestamp(float(raw), UTC)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Volume:
    """How many mentions one group had in the period and the previous one."""

    key: str  # the department, primary intent ("" = none), source kind, or "total"
    count: int
    previous: int
    drill: DrillDown  # the period's mentions of this group
    previous_drill: DrillDown

    @property
    def change(self) -> int:
        return self.count - self.previous

    @property
    def change_percent(self) -> float | None:
        """Change against the previous period in percent; None when it had nothing."""
        return None if self.previous == 0 else 100.0 * self.change / self.previous


@dataclass(frozen=True, slots=True)
class SentimentPoint:
    """One bucket (an hour of a daily digest, a day of a weekly one) of the sentiment trend."""

    start: datetime
    end: datetime
    count: int
    mean_compound: float | None  # VADER compound, -1 … 1; None for an empty bucket
    negative: int
    positive: int
    drill: DrillDown


@dataclass(frozen=True, slots=True)
class Voice:
    """One brand or competitor watch's part of the conversation.

    A mention counts for every watch it matched (as in bot/share_of_voice.py), so the shares of
    watches mentioned together can add up to more than the volume of mentions.
    """

    watch_name: str
    watch_kind: str  # "brand" | "competitor"
    count: int
    previous: int
    share_percent: float  # of the summed volume of every brand and competitor watch
    previous_share_percent: float
    mean_compound: float | None
    negative: int
    drill: DrillDown


@dataclass(frozen=True, slots=True)
class MentionSummary:
    """What a digest line needs of one mention (text cut to ``SUMMARY_TEXT`` characters)."""

    id: int
    found_at: datetime
    watch_name: str
    source: str
    url: str | None
    author: str | None
    author_reach: int | None
    title: str | None
    text: str
    department: str
    priority: str
    state: str
    owner: str | None
    sentiment_compound: float
    primary_intent: str | None
    escalation_level: int


@dataclass(frozen=True, slots=True)
class AttentionList:
    """A short list of items that need someone, and how many there are in all."""

    kind: Literal["top", "escalated", "sla_breach"]
    total: int
    items: tuple[MentionSummary, ...]
    drill: DrillDown  # every item of the list, not only the first few shown


@dataclass(frozen=True, slots=True)
class Attention:
    top: AttentionList  # the period's mentions by priority, then author reach
    escalated: AttentionList  # open escalations, whenever they were found
    sla_breaches: AttentionList  # unclaimed P1/P2 older than their claim deadline


@dataclass(frozen=True, slots=True)
class Durations:
    """Median and 90th percentile of a set of durations, in seconds."""

    count: int
    median_seconds: float | None  # None when count is 0
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class Response:
    """A department's speed: time from found to claimed, and from found to resolved.

    Measured over the mentions claimed (resolved) within the period, whenever they were found.
    """

    department: str
    to_claim: Durations
    to_resolve: Durations
    previous_to_claim: Durations
    previous_to_resolve: Durations
    claim_drill: DrillDown
    resolve_drill: DrillDown


@dataclass(frozen=True, slots=True)
class SpikeSummary:
    spike_id: int
    watch_name: str
    kind: str  # "volume" | "negative"
    started_at: datetime
    ended_at: datetime | None  # None while it goes on
    observed: float
    expected: float
    p_value: float
    examples: tuple[MentionSummary, ...]
    drill: DrillDown  # the watch's mentions during the spike


@dataclass(frozen=True, slots=True)
class DigestData:
    period: Period
    previous: Period
    departments: tuple[str, ...]  # the scope asked for; () = every department
    total: Volume
    by_department: tuple[Volume, ...]  # largest first
    by_intent: tuple[Volume, ...]
    by_source: tuple[Volume, ...]
    bucket: Bucket
    sentiment: tuple[SentimentPoint, ...]  # every bucket of the period, empty ones included
    previous_sentiment: tuple[SentimentPoint, ...]
    share_of_voice: tuple[Voice, ...]  # brand watches first, then competitors, by volume
    attention: Attention
    response: tuple[Response, ...]  # by department name
    spikes: tuple[SpikeSummary, ...]  # spikes that started or were open in the period
    collected_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# What a summary keeps of a mention's text: enough for a digest line, bounded for Block Kit.
SUMMARY_TEXT = 300
# The attention list and SLA breaches are about what could hurt: the two top priorities.
ATTENTION_PRIORITIES: tuple[str, ...] = ("P1", "P2")
# Unclaimed longer than this is an SLA breach: the "ping" step of bot/sla.py's built-in SLAs
# (storage cannot import bot; a caller with admins' edits passes its own table).
DEFAULT_CLAIM_DEADLINES: Mapping[str, timedelta] = {
    "P1": timedelta(minutes=15),
    "P2": timedelta(hours=1),
}
VOICE_KINDS: tuple[str, ...] = ("brand", "competitor")
# A period up to this long gets an hourly sentiment trend; a longer one a daily trend.
HOURLY_TREND_UP_TO = timedelta(days=2)
SORT_MEMORY = "64MB"
_BUCKET_SECONDS: Mapping[str, int] = {"hour": 3600, "day": 86400}
_MUTED = MentionState.MUTED.value
# Copies folded into a story count as volume (the story was told that many times) but are
# never listed as work: their lead stands for them.
_WORK_STATES: tuple[str, ...] = tuple(
    s.value for s in MentionState if s not in (MentionState.MERGED, MentionState.MUTED)
)
_ESCALATED = (MentionState.ESCALATED.value,)


async def collect(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    previous_start: datetime,
    previous_end: datetime,
    departments: Sequence[str] | None = None,
    top_n: int = 5,
    bucket: Bucket | None = None,
    now: datetime | None = None,
    claim_deadlines: Mapping[str, timedelta] | None = None,
) -> DigestData:
    """The digest's numbers for ``[start, end)`` against ``[previous_start, previous_end)``.

    ``departments`` narrows everything but spikes (which belong to watches) to those
    departments. ``bucket`` defaults to hours for a period of up to two days, else days.
    ``now`` (default: ``end``) is the moment open escalations and SLA breaches are judged at:
    those lists describe the present, not the period. ``claim_deadlines`` maps a priority to
    how long it may stay unclaimed (default :data:`DEFAULT_CLAIM_DEADLINES`).
    """
    scope = tuple(departments or ())
    bucket = bucket or ("hour" if end - start <= HOURLY_TREND_UP_TO else "day")
    moment = now or end
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # A week's grouping sorts ~100k rows; PostgreSQL's default 4 MB of sort memory would
        # spill it to disk. For this transaction only.
        await session.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
    current = DrillDown(start=start, end=end, departments=scope)
    previous = DrillDown(start=previous_start, end=previous_end, departments=scope)

    slices = await _period_pass(session, current, bucket, dialect)
    previous_slices = await _period_pass(session, previous, bucket, dialect)
    voices = await _voice_pass(session, current)
    previous_voices = await _voice_pass(session, previous)
    watches = await _watch_kinds(session)
    total = Volume(
        key="total",
        count=sum(part.count for part in slices),
        previous=sum(part.count for part in previous_slices),
        drill=current,
        previous_drill=previous,
    )
    return DigestData(
        period=Period(start, end),
        previous=Period(previous_start, previous_end),
        departments=scope,
        total=total,
        by_department=_volumes(slices, previous_slices, "department", current, previous),
        by_intent=_volumes(slices, previous_slices, "intent", current, previous),
        by_source=_volumes(slices, previous_slices, "source", current, previous),
        bucket=bucket,
        sentiment=_trend(slices, current, bucket),
        previous_sentiment=_trend(previous_slices, previous, bucket),
        share_of_voice=_voices(
            _voice_sums(slices, voices, watches),
            _voice_sums(previous_slices, previous_voices, watches),
            current,
        ),
        attention=await _attention(
            session,
            current,
            top_n=top_n,
            now=moment,
            deadlines=DEFAULT_CLAIM_DEADLINES if claim_deadlines is None else claim_deadlines,
        ),
        response=await _response(session, current, previous, dialect),
        spikes=await _spikes(session, start=start, end=end, top_n=top_n),
        collected_at=moment,
    )


async def drill_down(
    session: AsyncSession, drill: DrillDown, *, limit: int = 20, offset: int = 0
) -> list[Mention]:
    """The mentions behind a number: by priority, then author reach, then newest first."""
    stmt = select(Mention).where(*_where(drill)).order_by(*_ORDER).limit(limit).offset(offset)
    return list((await session.execute(stmt)).scalars())


async def drill_down_count(session: AsyncSession, drill: DrillDown) -> int:
    """How many mentions :func:`drill_down` can list for ``drill``."""
    stmt = select(func.count()).select_from(Mention).where(*_where(drill))
    return int((await session.execute(stmt)).scalar_one())


# ---------------------------------------------------------------- filters


_ORDER = (
    col(Mention.priority),  # "P1" sorts before "P2"
    # Unknown reach sorts last on both engines (their NULL orderings differ).
    func.coalesce(col(Mention.author_reach), -1).desc(),
    col(Mention.found_at).desc(),
    col(Mention.id).desc(),
)
_LIKE_ESCAPE = "!"


def _like_literal(text: str) -> str:
    return (
        text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )


def _where(drill: DrillDown) -> list[ColumnElement[bool]]:
    """The SQL conditions of a drill-down; the digest's numbers are counted with the same."""
    conditions: list[ColumnElement[bool]] = []
    moment = col(getattr(Mention, drill.time_field))
    if drill.start is not None:
        conditions.append(moment >= drill.start)
    if drill.end is not None:
        conditions.append(moment < drill.end)
    if drill.departments:
        conditions.append(col(Mention.department).in_(drill.departments))
    if drill.department is not None:
        conditions.append(col(Mention.department) == drill.department)
    if drill.intent is not None:
        intent = col(Mention.primary_intent)
        conditions.append(intent.is_(None) if drill.intent == "" else intent == drill.intent)
    if drill.source is not None:
        # A source kind is a spec's head: "reddit" stands for "reddit" and "reddit:r/x".
        pattern = _like_literal(drill.source) + ":%"
        conditions.append(
            or_(
                col(Mention.source) == drill.source,
                col(Mention.source).like(pattern, escape=_LIKE_ESCAPE),
            )
        )
    if drill.watch_name is not None:
        conditions.append(col(Mention.watch_name) == drill.watch_name)
    if drill.matched_watch is not None:
        # ``watches`` is a JSON list of names, stored as json.dumps writes it on both engines.
        pattern = "%" + _like_literal(json.dumps(drill.matched_watch)) + "%"
        conditions.append(
            or_(
                col(Mention.watch_name) == drill.matched_watch,
                cast(col(Mention.watches), Text).like(pattern, escape=_LIKE_ESCAPE),
            )
        )
    if drill.watch_kinds:
        conditions.append(col(Mention.watch_kind).in_(drill.watch_kinds))
    if drill.sentiment is not None:
        conditions.append(col(Mention.sentiment_label) == drill.sentiment)
    if drill.priorities:
        conditions.append(col(Mention.priority).in_(drill.priorities))
    if drill.states:
        conditions.append(col(Mention.state).in_(drill.states))
    else:
        conditions.append(col(Mention.state) != _MUTED)
    if drill.overdue:
        # "new" is unclaimed: every way back to it (reopen, reroute) drops the owner.
        conditions.append(col(Mention.state) == MentionState.NEW.value)
        # Redundant with the OR below, but lets the (state, priority, found_at) index bound
        # the scan instead of reading every new mention.
        conditions.append(col(Mention.priority).in_([p for p, _ in drill.overdue]))
        conditions.append(col(Mention.found_at) < max(before for _, before in drill.overdue))
        conditions.append(
            or_(
                *(
                    and_(col(Mention.priority) == priority, col(Mention.found_at) < before)
                    for priority, before in drill.overdue
                )
            )
        )
    if drill.mention_ids:
        conditions.append(col(Mention.id).in_(drill.mention_ids))
    return conditions


# ---------------------------------------------------------------- the period pass


@dataclass(frozen=True, slots=True)
class _Slice:
    """One group of a period's mentions: what volumes and the sentiment trend are built from."""

    department: str
    intent: str  # "" for none
    source: str  # the source kind
    bucket: int  # index of the trend bucket from the period's start
    watch_name: str  # the primary watch
    watch_kind: str  # as recorded on the mention
    count: int
    negative: int
    positive: int
    compound_sum: float


@dataclass(frozen=True, slots=True)
class _VoiceSlice:
    """One group of a period's mentions matching more than one watch."""

    label: str
    watch_name: str
    matched: tuple[str, ...]
    count: int
    compound_sum: float


def _bucket_index(dialect: str, drill: DrillDown, width: int) -> ColumnElement[Any]:
    """The trend bucket of each mention: whole ``width`` seconds since the period's start."""
    assert drill.start is not None and drill.end is not None
    found_at = col(Mention.found_at)
    if dialect == "postgresql":
        since_start = extract("epoch", found_at) - drill.start.timestamp()
        return cast(func.floor(since_start / float(width)), Integer)
    # SQLite would parse every row's timestamp text to do arithmetic on it; comparing the
    # value with the (at most a few dozen) bucket boundaries is several times cheaper.
    step = timedelta(seconds=width)
    bounds: list[datetime] = []
    moment = drill.start + step
    while moment < drill.end:
        bounds.append(moment)
        moment += step
    if not bounds:
        return literal(0, Integer)
    return case(
        *((found_at < bound, number) for number, bound in enumerate(bounds)), else_=len(bounds)
    )


async def _period_pass(
    session: AsyncSession, drill: DrillDown, bucket: Bucket, dialect: str
) -> list[_Slice]:
    """The period's mentions by department, primary intent, source and trend bucket: one
    grouped scan of the covering index, folded here into the volumes and the trend (a few
    thousand groups for a week, never more than its mentions). SQLite sorts every row to
    group them, so the key is kept short: sentiment labels are counted, not grouped."""
    index = _bucket_index(dialect, drill, _BUCKET_SECONDS[bucket])
    label = col(Mention.sentiment_label)
    group = (
        col(Mention.department),
        col(Mention.primary_intent),
        col(Mention.source),
        index,
        col(Mention.watch_name),
        col(Mention.watch_kind),
    )
    stmt = (
        select(
            *group,
            func.count(),
            func.sum(case((label == "negative", 1), else_=0)),
            func.sum(case((label == "positive", 1), else_=0)),
            func.sum(col(Mention.sentiment_compound)),
        )
        .where(*_where(drill))
        .group_by(*group)
    )
    return [
        _Slice(
            department=str(department),
            intent=intent or "",
            source=str(source).partition(":")[0],  # "reddit:r/x" is a reddit source
            bucket=int(number),
            watch_name=str(watch),
            watch_kind=str(kind),
            count=int(n),
            negative=int(negative or 0),
            positive=int(positive or 0),
            compound_sum=float(compound or 0.0),
        )
        for department, intent, source, number, watch, kind, n, negative, positive, compound in (
            await session.execute(stmt)
        )
    ]


async def _voice_pass(session: AsyncSession, drill: DrillDown) -> list[_VoiceSlice]:
    """The period's mentions that matched more than one watch, grouped by the JSON list of
    watches (a handful of distinct lists): their other watches' part of share of voice.

    A list of two or more names has a comma; a single name with a comma in it only costs a
    group that adds nothing."""
    matched = cast(col(Mention.watches), Text)
    group = (col(Mention.sentiment_label), col(Mention.watch_name), matched)
    stmt = (
        select(*group, func.count(), func.sum(col(Mention.sentiment_compound)))
        .where(*_where(drill), matched.like("%,%"))
        .group_by(*group)
    )
    return [
        _VoiceSlice(
            label=str(label),
            watch_name=str(watch),
            matched=tuple(json.loads(names or "[]")),
            count=int(n),
            compound_sum=float(compound or 0.0),
        )
        for label, watch, names, n, compound in await session.execute(stmt)
    ]


# ---------------------------------------------------------------- volumes


def _volumes(
    current: Sequence[_Slice],
    previous: Sequence[_Slice],
    field_name: str,
    drill: DrillDown,
    previous_drill: DrillDown,
) -> tuple[Volume, ...]:
    now_totals: dict[str, int] = {}
    then_totals: dict[str, int] = {}
    for slices, totals in ((current, now_totals), (previous, then_totals)):
        for part in slices:
            key = getattr(part, field_name)
            totals[key] = totals.get(key, 0) + part.count
    rows = [
        Volume(
            key=key,
            count=now_totals.get(key, 0),
            previous=then_totals.get(key, 0),
            drill=drill.narrowed(**{field_name: key}),
            previous_drill=previous_drill.narrowed(**{field_name: key}),
        )
        for key in set(now_totals) | set(then_totals)
    ]
    rows.sort(key=lambda v: (-v.count, -v.previous, v.key))
    return tuple(rows)


# ---------------------------------------------------------------- sentiment


def _trend(
    slices: Sequence[_Slice], drill: DrillDown, bucket: Bucket
) -> tuple[SentimentPoint, ...]:
    """Every bucket of the period, empty ones included."""
    assert drill.start is not None and drill.end is not None
    sums: dict[int, list[float]] = {}  # count, compound sum, negative, positive
    for part in slices:
        row = sums.setdefault(part.bucket, [0, 0.0, 0, 0])
        row[0] += part.count
        row[1] += part.compound_sum
        row[2] += part.negative
        row[3] += part.positive
    points: list[SentimentPoint] = []
    step = timedelta(seconds=_BUCKET_SECONDS[bucket])
    moment, number = drill.start, 0
    while moment < drill.end:
        upper = min(moment + step, drill.end)
        n, compound, negative, positive = sums.get(number, (0, 0.0, 0, 0))
        points.append(
            SentimentPoint(
                start=moment,
                end=upper,
                count=int(n),
                mean_compound=round(compound / n, 4) if n else None,
                negative=int(negative),
                positive=int(positive),
                drill=drill.narrowed(start=moment, end=upper),
            )
        )
        moment, number = upper, number + 1
    return tuple(points)


# ---------------------------------------------------------------- share of voice


VoiceSums = tuple[int, int, float, str]  # volume, negative, sum of compound, watch kind


def _voice_sums(
    slices: Sequence[_Slice], others: Sequence[_VoiceSlice], watches: Mapping[str, str]
) -> dict[str, VoiceSums]:
    """Each mention credited to every brand or competitor watch it matched, as
    bot/share_of_voice.py counts: a post comparing us with a rival is part of both voices.
    Primary watches come from the period pass, the other watches from the voice pass."""
    sums: dict[str, list[Any]] = {}

    def add(name: str, kind: str | None, count: int, negative: int, compound: float) -> None:
        if kind in VOICE_KINDS:
            row = sums.setdefault(name, [0, 0, 0.0, kind])
            row[0] += count
            row[1] += negative
            row[2] += compound

    for part in slices:
        # A watch since deleted still counts as the primary watch, under the kind recorded.
        kind = watches.get(part.watch_name) or (
            part.watch_kind if part.watch_name not in watches else None
        )
        add(part.watch_name, kind, part.count, part.negative, part.compound_sum)
    for other in others:
        negative = other.count if other.label == "negative" else 0
        for name in dict.fromkeys(other.matched):
            if name != other.watch_name:
                add(name, watches.get(name), other.count, negative, other.compound_sum)
    return {name: (row[0], row[1], row[2], row[3]) for name, row in sums.items()}


async def _watch_kinds(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(col(Watch.name), col(Watch.kind)))
    return {str(name): str(kind) for name, kind in rows}


def _voices(
    now: Mapping[str, VoiceSums], then: Mapping[str, VoiceSums], current: DrillDown
) -> tuple[Voice, ...]:
    """Brand against competitors, this period and the previous one."""
    now_total = sum(v[0] for v in now.values())
    then_total = sum(v[0] for v in then.values())
    rows: list[Voice] = []
    for name in set(now) | set(then):
        count, negative, compound_sum, kind = now.get(name, (0, 0, 0.0, ""))
        before = then.get(name, (0, 0, 0.0, ""))
        rows.append(
            Voice(
                watch_name=name,
                watch_kind=kind or before[3],
                count=count,
                previous=before[0],
                share_percent=_percent(count, now_total),
                previous_share_percent=_percent(before[0], then_total),
                mean_compound=round(compound_sum / count, 4) if count else None,
                negative=negative,
                drill=current.narrowed(matched_watch=name),
            )
        )
    rows.sort(key=lambda v: (v.watch_kind != "brand", -v.count, v.watch_name))
    return tuple(rows)


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# ---------------------------------------------------------------- attention


async def _attention(
    session: AsyncSession,
    drill: DrillDown,
    *,
    top_n: int,
    now: datetime,
    deadlines: Mapping[str, timedelta],
) -> Attention:
    scope = DrillDown(departments=drill.departments)
    top = drill.narrowed(priorities=ATTENTION_PRIORITIES, states=_WORK_STATES)
    escalated = scope.narrowed(states=_ESCALATED)
    overdue = tuple((priority, now - wait) for priority, wait in sorted(deadlines.items()))
    breaches = scope.narrowed(overdue=overdue)
    return Attention(
        top=await _short_list(session, "top", top, top_n),
        escalated=await _short_list(session, "escalated", escalated, top_n),
        sla_breaches=(
            await _short_list(session, "sla_breach", breaches, top_n)
            if overdue
            else AttentionList(kind="sla_breach", total=0, items=(), drill=breaches)
        ),
    )


async def _short_list(
    session: AsyncSession,
    kind: Literal["top", "escalated", "sla_breach"],
    drill: DrillDown,
    top_n: int,
) -> AttentionList:
    items = await drill_down(session, drill, limit=top_n)
    total = len(items) if len(items) < top_n else await drill_down_count(session, drill)
    return AttentionList(
        kind=kind, total=total, items=tuple(summary(m) for m in items), drill=drill
    )


def summary(mention: Mention) -> MentionSummary:
    """A mention as a digest line needs it."""
    assert mention.id is not None
    cut = mention.text if len(mention.text) <= SUMMARY_TEXT else mention.text[: SUMMARY_TEXT - 1]
    return MentionSummary(
        id=mention.id,
        found_at=mention.found_at,
        watch_name=mention.watch_name,
        source=mention.source,
        url=mention.url,
        author=mention.author,
        author_reach=mention.author_reach,
        title=mention.title,
        text=cut if cut == mention.text else cut + "…",
        department=mention.department,
        priority=mention.priority,
        state=mention.state,
        owner=mention.owner,
        sentiment_compound=mention.sentiment_compound,
        primary_intent=mention.primary_intent,
        escalation_level=mention.escalation_level,
    )


# ---------------------------------------------------------------- response times


async def _response(
    session: AsyncSession, current: DrillDown, previous: DrillDown, dialect: str
) -> tuple[Response, ...]:
    claim_now = current.narrowed(time_field="claimed_at")
    resolve_now = current.narrowed(time_field="resolved_at")
    claim_then = previous.narrowed(time_field="claimed_at")
    resolve_then = previous.narrowed(time_field="resolved_at")
    to_claim = await _durations(session, claim_now, dialect)
    to_resolve = await _durations(session, resolve_now, dialect)
    before_claim = await _durations(session, claim_then, dialect)
    before_resolve = await _durations(session, resolve_then, dialect)
    departments = sorted(set(to_claim) | set(to_resolve) | set(before_claim) | set(before_resolve))
    return tuple(
        Response(
            department=department,
            to_claim=to_claim.get(department, _NONE),
            to_resolve=to_resolve.get(department, _NONE),
            previous_to_claim=before_claim.get(department, _NONE),
            previous_to_resolve=before_resolve.get(department, _NONE),
            claim_drill=claim_now.narrowed(department=department),
            resolve_drill=resolve_now.narrowed(department=department),
        )
        for department in departments
    )


_NONE = Durations(count=0, median_seconds=None, p90_seconds=None)


def _elapsed(dialect: str, later: Any) -> ColumnElement[Any]:
    """Seconds from a mention being found to ``later``."""
    found = col(Mention.found_at)
    if dialect == "postgresql":
        return extract("epoch", later - found)
    return (func.julianday(later) - func.julianday(found)) * 86400.0


async def _durations(session: AsyncSession, drill: DrillDown, dialect: str) -> dict[str, Durations]:
    """Count, median and 90th percentile (interpolated, like ``percentile_cont``) per
    department of the time from found to ``drill.time_field``, for mentions whose claim or
    resolution falls in the drill's range."""
    later = col(getattr(Mention, drill.time_field))
    seconds = _elapsed(dialect, later)
    department = col(Mention.department)
    if dialect == "postgresql":
        stmt = (
            select(
                department,
                func.count(),
                func.percentile_cont(0.5).within_group(seconds),
                func.percentile_cont(0.9).within_group(seconds),
            )
            .where(*_where(drill))
            .group_by(department)
        )
        return {
            str(name): Durations(
                count=int(n),
                median_seconds=round(float(median), 3),
                p90_seconds=round(float(p90), 3),
            )
            for name, n, median, p90 in await session.execute(stmt)
        }
    return await _sqlite_durations(session, drill, seconds)


async def _sqlite_durations(
    session: AsyncSession, drill: DrillDown, seconds: ColumnElement[Any]
) -> dict[str, Durations]:
    """SQLite has no percentile function: fetch the durations themselves (one float and a
    department per mention claimed or resolved in the period, so bounded by the period's
    size), and interpolate as ``percentile_cont`` does. Measured faster there than ranking
    them with window functions, which sorts the same rows inside SQLite."""
    stmt = select(col(Mention.department), seconds).where(*_where(drill))
    by_department: dict[str, list[float]] = {}
    for department, value in await session.execute(stmt):
        by_department.setdefault(str(department), []).append(float(value))
    result: dict[str, Durations] = {}
    for department, values in by_department.items():
        values.sort()
        result[department] = Durations(
            count=len(values),
            median_seconds=_interpolate(values, 0.5),
            p90_seconds=_interpolate(values, 0.9),
        )
    return result


def _interpolate(ordered: Sequence[float], share: float) -> float:
    """The ``share`` percentile of sorted values, interpolated like ``percentile_cont``."""
    position = (len(ordered) - 1) * share
    low = int(position)
    fraction = position - low
    result = ordered[low]
    if fraction > 0:
        result += fraction * (ordered[low + 1] - ordered[low])
    return round(result, 3)


# ---------------------------------------------------------------- spikes


async def _spikes(
    session: AsyncSession, *, start: datetime, end: datetime, top_n: int
) -> tuple[SpikeSummary, ...]:
    """Spikes that started in the period, or were still open at its start."""
    stmt = (
        select(Spike)
        .where(
            col(Spike.started_at) < end,
            or_(col(Spike.ended_at).is_(None), col(Spike.ended_at) > start),
        )
        .order_by(col(Spike.started_at), col(Spike.id))
    )
    spikes = list((await session.execute(stmt)).scalars())
    wanted = {i for spike in spikes for i in spike.example_mention_ids[:top_n]}
    examples: dict[int, Mention] = {}
    if wanted:
        found = await session.execute(select(Mention).where(col(Mention.id).in_(wanted)))
        examples = {m.id: m for m in found.scalars() if m.id is not None}
    result: list[SpikeSummary] = []
    for spike in spikes:
        assert spike.id is not None
        result.append(
            SpikeSummary(
                spike_id=spike.id,
                watch_name=spike.watch_name,
                kind=spike.kind,
                started_at=spike.started_at,
                ended_at=spike.ended_at,
                observed=spike.observed,
                expected=spike.expected,
                p_value=spike.p_value,
                examples=tuple(
                    summary(examples[i]) for i in spike.example_mention_ids[:top_n] if i in examples
                ),
                drill=DrillDown(
                    start=spike.started_at,
                    end=spike.ended_at or end,
                    watch_name=spike.watch_name,
                    sentiment="negative" if spike.kind == "negative" else None,
                ),
            )
        )
    return tuple(result)
