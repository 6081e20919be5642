"""Share of voice per UTC hour and day: known seeded counts, stored once, read for the digest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.share_of_voice import (
    compute_share_of_voice,
    period_start,
    refresh_share_of_voice,
    share_of_voice,
)
from storage import watches as watch_store
from storage.db import Database
from storage.models import ShareOfVoice
from tests.bot.test_spikes import mention

HOUR = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)
DAY = datetime(2025, 3, 12, tzinfo=UTC)


async def add_watch(db: Database, name: str, kind: str, *, created_at: datetime = DAY) -> None:
    async with db.session() as session:
        watch = await watch_store.create_watch(
            session,
            name=name,
            query=f'"{name}"',
            kind=kind,
            department=None,
            sources=["hn"],
            interval_seconds=300,
            created_by=None,
        )
        watch.created_at = created_at - timedelta(days=30)


async def seed(db: Database, *rows: tuple[str, datetime, str, float, dict[str, Any]]) -> None:
    async with db.session() as session:
        session.add_all(
            mention(
                watch,
                at,
                sentiment_label=label,
                sentiment_compound=compound,
                **({"watches": [watch]} | extra),
            )
            for watch, at, label, compound, extra in rows
        )


async def seeded(db: Database) -> None:
    """Known counts around the 14:00–15:00 UTC hour of 12 March 2025.

    In that hour: acme 3 negative (-0.6), 2 positive (0.5), 1 neutral, plus 1 neutral post it
    shares with rival; rival 2 negative (-0.4) plus that shared post; widget (a product) 5.
    """
    await add_watch(db, "acme", "brand")
    await add_watch(db, "rival", "competitor")
    await add_watch(db, "quietco", "competitor")  # nobody talks about it
    await add_watch(db, "widget", "product")
    at = HOUR + timedelta(minutes=10)
    rows: list[tuple[str, datetime, str, float, dict[str, Any]]] = []
    rows += [("acme", at, "negative", -0.6, {})] * 3
    rows += [("acme", at, "positive", 0.5, {})] * 2
    rows += [("acme", HOUR, "neutral", 0.0, {})]  # the first instant of the hour is in it
    rows += [("acme", at, "neutral", 0.0, {"watches": ["acme", "rival"]})]
    rows += [("rival", at, "negative", -0.4, {})] * 2
    rows += [("widget", at, "positive", 0.9, {})] * 5
    # Just outside the hour on either side, but in the same day.
    rows += [("acme", HOUR - timedelta(microseconds=1), "positive", 0.8, {})]
    rows += [("rival", HOUR + timedelta(hours=1), "positive", 0.7, {})]
    # Just outside the day.
    rows += [("acme", DAY - timedelta(microseconds=1), "negative", -0.9, {})]
    rows += [("rival", DAY + timedelta(days=1), "negative", -0.9, {})]
    await seed(db, *rows)


async def stored(db: Database) -> list[tuple[str, str, str, int, int, int, int, float]]:
    async with db.session() as session:
        rows = (await session.execute(select(ShareOfVoice))).scalars().all()
    return sorted(
        (
            r.period,
            r.period_start.isoformat(),
            r.watch_name,
            r.volume,
            r.positive,
            r.neutral,
            r.negative,
            round(r.mean_compound, 4),
        )
        for r in rows
    )


async def test_an_hour_counts_each_brand_and_competitor(db: Database) -> None:
    await seeded(db)
    await compute_share_of_voice(db, period="hour", start=HOUR + timedelta(minutes=59))
    start = HOUR.isoformat()
    assert await stored(db) == [
        # (1.0 - 1.8) / 7
        ("hour", start, "acme", 7, 2, 2, 3, round(-0.8 / 7, 4)),
        ("hour", start, "quietco", 0, 0, 0, 0, 0.0),
        ("hour", start, "rival", 3, 0, 1, 2, round(-0.8 / 3, 4)),
    ]

    sov = await share_of_voice(db, period="hour", start=HOUR + timedelta(minutes=30))
    assert sov.start == HOUR and sov.period == "hour"
    assert [(v.watch_name, v.ours, v.volume) for v in sov.voices] == [
        ("acme", True, 7),
        ("rival", False, 3),
        ("quietco", False, 0),
    ]
    assert [v.share_percent for v in sov.voices] == [70.0, 30.0, 0.0]
    assert [
        (m.brand.watch_name, m.competitor.watch_name, m.brand_percent, m.competitor_percent)
        for m in sov.matchups
    ] == [("acme", "rival", 70.0, 30.0), ("acme", "quietco", 100.0, 0.0)]


async def test_a_day_is_the_utc_day_half_open(db: Database) -> None:
    await seeded(db)
    await compute_share_of_voice(db, period="day", start=DAY + timedelta(hours=23))
    day = DAY.isoformat()
    assert await stored(db) == [
        ("day", day, "acme", 8, 3, 2, 3, 0.0),  # -1.8 + 1.0 + 0.8 = 0
        ("day", day, "quietco", 0, 0, 0, 0, 0.0),
        ("day", day, "rival", 4, 1, 1, 2, round(-0.1 / 4, 4)),
    ]


async def test_recomputing_a_period_replaces_its_rows(db: Database) -> None:
    await seeded(db)
    for _ in range(3):
        await compute_share_of_voice(db, period="hour", start=HOUR)
    assert [(r[2], r[3]) for r in await stored(db)] == [("acme", 7), ("quietco", 0), ("rival", 3)]

    # New mentions of the hour arrive late, and a competitor is re-filed as a topic.
    await seed(db, ("quietco", HOUR + timedelta(minutes=5), "positive", 0.5, {}))
    async with db.session() as session:
        rival = await watch_store.get_watch(session, name="rival")
        assert rival is not None
        rival.kind = "topic"
    await compute_share_of_voice(db, period="hour", start=HOUR)
    assert [(r[2], r[3], r[4]) for r in await stored(db)] == [("acme", 7, 2), ("quietco", 1, 1)]
    sov = await share_of_voice(db, period="hour", start=HOUR)
    assert [(v.watch_name, v.share_percent) for v in sov.voices] == [
        ("acme", 87.5),
        ("quietco", 12.5),
    ]


async def test_two_replicas_recomputing_at_once_store_one_row_each(db: Database) -> None:
    await seeded(db)
    other = Database(db.url)
    try:
        await asyncio.gather(
            compute_share_of_voice(db, period="hour", start=HOUR),
            compute_share_of_voice(other, period="hour", start=HOUR),
        )
    finally:
        await other.dispose()
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(ShareOfVoice))).scalar()
    assert count == 3


async def test_the_job_keeps_the_current_and_previous_hour_and_day(db: Database) -> None:
    await seeded(db)
    now = DAY + timedelta(days=1, minutes=20)  # 00:20 on the 13th
    await refresh_share_of_voice(db, clock=lambda: now)
    periods = {(r[0], r[1]) for r in await stored(db)}
    assert periods == {
        ("hour", (now - timedelta(minutes=20)).isoformat()),
        ("hour", (now - timedelta(hours=1, minutes=20)).isoformat()),
        ("day", DAY.isoformat()),
        ("day", (DAY + timedelta(days=1)).isoformat()),
    }
    yesterday = await share_of_voice(db, period="day", start=DAY)
    assert [(v.watch_name, v.volume) for v in yesterday.voices] == [
        ("acme", 8),
        ("rival", 4),
        ("quietco", 0),
    ]
    today = await share_of_voice(db, period="day", start=now)
    assert [(v.watch_name, v.volume) for v in today.voices] == [
        ("acme", 0),
        ("rival", 1),
        ("quietco", 0),
    ]
    # Nothing stored for a period never computed: an empty share, not a division by zero.
    never = await share_of_voice(db, period="day", start=DAY - timedelta(days=5))
    assert never.voices == [] and never.matchups == []


def test_period_start_is_the_utc_hour_or_day() -> None:
    at = datetime(2025, 3, 12, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 23:30 UTC on the 11th
    assert period_start("hour", at) == datetime(2025, 3, 11, 23, tzinfo=UTC)
    assert period_start("day", at) == datetime(2025, 3, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown period"):
        period_start("week", at)  # type: ignore[arg-type]
