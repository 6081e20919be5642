"""The digest's numbers against a seeded database whose every count is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.workflow import Action, Workflow
from storage import digest_data
from storage import mentions as mention_store
from storage.db import Database
from storage.digest_data import DigestData, DrillDown, collect, drill_down, drill_down_count
from storage.models import Mention, Spike, Watch

DAY = datetime(2026, 3, 10, tzinfo=UTC)
START, END = DAY, DAY + timedelta(days=1)
PREVIOUS_START, PREVIOUS_END = DAY - timedelta(days=1), DAY
M = timedelta(minutes=1)


def at(hours: float, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hours)


def make(key: str, found_at: datetime, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "watches": ["acme"],
        "source": "hn",
        "origin": f"test:{key}",
        "external_id": key,
        "text": f"post {key}",
        "department": "support",
        "priority": "P3",
        "sentiment_compound": 0.0,
        "sentiment_label": "neutral",
        "updated_at": found_at,
        "found_at": found_at,
    }
    values.update(fields)
    return Mention(**values)


def seed() -> list[Mention]:
    """Two days: the digest's day (10 March) and the day before, plus rows just outside."""
    negative = {"sentiment_label": "negative"}
    positive = {"sentiment_label": "positive"}
    return [
        # the period
        make(
            "m1",
            at(1 + 10 / 60),
            primary_intent="complaint",
            source="rss:https://a/feed",
            sentiment_compound=-0.5,
            priority="P1",
            author_reach=100,
            **negative,
        ),
        make(
            "m2",
            at(1 + 40 / 60),
            primary_intent="complaint",
            source="reddit:r/acme",
            sentiment_compound=-0.3,
            priority="P2",
            author_reach=5000,
            state="claimed",
            owner="U1",
            claimed_at=at(1 + 50 / 60),
            watch_name="widget",
            watch_kind="product",
            watches=["widget"],
            **negative,
        ),
        make(
            "m3",
            at(5),
            primary_intent="purchase_intent",
            department="sales",
            sentiment_compound=0.6,
            state="resolved",
            owner="U2",
            claimed_at=at(5.5),
            resolved_at=at(7),
            watch_name="rival",
            watch_kind="competitor",
            watches=["rival", "acme"],
            **positive,
        ),
        make("m4", at(5.5), source="reddit", priority="P4", state="merged"),
        make("m5", at(6), primary_intent="complaint", state="muted", priority="P1", **negative),
        make(
            "m6",
            at(23) + 59 * M + timedelta(seconds=59.999),
            primary_intent="press",
            department="pr",
            sentiment_compound=0.4,
            priority="P2",
            state="escalated",
            escalation_level=1,
            **positive,
        ),
        make("m7", at(23.5), primary_intent="question", priority="P2", author_reach=10),
        # found the day before, claimed in the period: counts for the period's response
        make(
            "m8",
            at(20, PREVIOUS_START),
            primary_intent="question",
            state="claimed",
            owner="U1",
            claimed_at=at(20, PREVIOUS_START) + timedelta(hours=5),
        ),
        make(
            "m9",
            at(23 + 50 / 60, PREVIOUS_START),
            primary_intent="question",
            state="claimed",
            owner="U3",
            claimed_at=at(10 / 60),
        ),
        # the previous period
        make(
            "p1",
            at(12, PREVIOUS_START),
            primary_intent="complaint",
            source="rss:https://b",
            sentiment_compound=-0.7,
            state="resolved",
            owner="U1",
            claimed_at=at(12.5, PREVIOUS_START),
            resolved_at=at(14, PREVIOUS_START),
            **negative,
        ),
        make(
            "p2",
            at(13, PREVIOUS_START),
            primary_intent="purchase_intent",
            department="sales",
            watch_name="rival",
            watch_kind="competitor",
            watches=["rival"],
        ),
        make(
            "p3",
            at(1, PREVIOUS_START),
            primary_intent="complaint",
            state="escalated",
            priority="P1",
            escalation_level=2,
            owner="U4",
            claimed_at=at(2, PREVIOUS_START),
        ),
        # outside both periods (the ends are exclusive)
        make("x1", END, primary_intent="complaint"),
        make("x2", PREVIOUS_START - timedelta(microseconds=1), primary_intent="complaint"),
    ]


async def seeded(db: Database) -> dict[str, int]:
    async with db.session() as session:
        session.add(Watch(name="acme", query="acme", kind="brand", interval_seconds=300))
        session.add(Watch(name="rival", query="rival", kind="competitor", interval_seconds=300))
        session.add(Watch(name="widget", query="widget", kind="product", interval_seconds=300))
        stored = await mention_store.add_mentions(session, mentions=seed())
    return {m.external_id: m.id for m in stored if m.id is not None}


async def digest(db: Database, **kwargs: Any) -> DigestData:
    async with db.session() as session:
        return await collect(
            session,
            start=START,
            end=END,
            previous_start=PREVIOUS_START,
            previous_end=PREVIOUS_END,
            **kwargs,
        )


async def listed(db: Database, drill: DrillDown) -> set[str]:
    async with db.session() as session:
        found = await drill_down(session, drill, limit=1000)
        assert await drill_down_count(session, drill) == len(found)
    return {m.external_id for m in found}


async def test_volumes_by_department_intent_and_source_with_the_previous_period(
    db: Database,
) -> None:
    await seeded(db)
    data = await digest(db)

    # Muted m5 and the rows outside the periods are not counted; merged m4 is.
    assert (data.total.count, data.total.previous) == (6, 5)
    assert {v.key: (v.count, v.previous) for v in data.by_department} == {
        "support": (4, 4),
        "sales": (1, 1),
        "pr": (1, 0),
    }
    assert [v.key for v in data.by_department] == ["support", "sales", "pr"]
    assert {v.key: (v.count, v.previous) for v in data.by_intent} == {
        "complaint": (2, 2),
        "purchase_intent": (1, 1),
        "press": (1, 0),
        "question": (1, 2),
        "": (1, 0),
    }
    assert {v.key: (v.count, v.previous) for v in data.by_source} == {
        "hn": (3, 4),
        "rss": (1, 1),
        "reddit": (2, 0),
    }
    question = next(v for v in data.by_intent if v.key == "question")
    assert (question.change, question.change_percent) == (-1, -50.0)
    press = next(v for v in data.by_intent if v.key == "press")
    assert press.change_percent is None


async def test_every_volume_drills_down_to_exactly_its_mentions(db: Database) -> None:
    await seeded(db)
    data = await digest(db)

    assert await listed(db, data.total.drill) == {"m1", "m2", "m3", "m4", "m6", "m7"}
    assert await listed(db, data.total.previous_drill) == {"m8", "m9", "p1", "p2", "p3"}
    by_source = {v.key: v for v in data.by_source}
    assert await listed(db, by_source["reddit"].drill) == {"m2", "m4"}
    by_intent = {v.key: v for v in data.by_intent}
    assert await listed(db, by_intent[""].drill) == {"m4"}
    assert await listed(db, by_intent["question"].previous_drill) == {"m8", "m9"}
    for volume in (*data.by_department, *data.by_intent, *data.by_source):
        assert len(await listed(db, volume.drill)) == volume.count, volume.key
        assert len(await listed(db, volume.previous_drill)) == volume.previous, volume.key


async def test_sentiment_trend_is_hourly_for_a_day_with_empty_hours(db: Database) -> None:
    await seeded(db)
    data = await digest(db)

    assert data.bucket == "hour"
    assert len(data.sentiment) == 24 and len(data.previous_sentiment) == 24
    assert data.sentiment[0].start == START and data.sentiment[-1].end == END
    by_hour = {p.start.hour: p for p in data.sentiment if p.count}
    assert set(by_hour) == {1, 5, 23}
    one = by_hour[1]
    assert (one.count, one.mean_compound, one.negative, one.positive) == (2, -0.4, 2, 0)
    assert (by_hour[5].count, by_hour[5].mean_compound, by_hour[5].positive) == (2, 0.3, 1)
    # m6 was found a millisecond before midnight: still the last hour of the day.
    assert (by_hour[23].count, by_hour[23].mean_compound) == (2, 0.2)
    assert data.sentiment[2].mean_compound is None and data.sentiment[2].count == 0
    assert await listed(db, by_hour[23].drill) == {"m6", "m7"}
    assert sum(p.count for p in data.previous_sentiment) == 5


async def test_buckets_start_with_the_period_even_off_the_whole_hour(db: Database) -> None:
    await seeded(db)
    start = at(0.5)  # 08:00 in a +07:30 zone
    async with db.session() as session:
        data = await collect(
            session,
            start=start,
            end=start + timedelta(days=1),
            previous_start=start - timedelta(days=1),
            previous_end=start,
        )
    counts = {n: p.count for n, p in enumerate(data.sentiment) if p.count}
    # m1 01:10 and m2 01:40 fall either side of 01:30; m6, m7 and x1 (00:00 the next day)
    # share the last bucket, 23:30-00:30.
    assert counts == {0: 1, 1: 1, 4: 1, 5: 1, 23: 3}
    assert [p.start for p in data.sentiment[:2]] == [start, start + timedelta(hours=1)]
    assert await listed(db, data.sentiment[23].drill) == {"m6", "m7", "x1"}


async def test_sentiment_trend_is_daily_for_a_week(db: Database) -> None:
    await seeded(db)
    async with db.session() as session:
        data = await collect(
            session,
            start=START - timedelta(days=6),
            end=END,
            previous_start=START - timedelta(days=13),
            previous_end=START - timedelta(days=6),
        )
    assert data.bucket == "day"
    assert [p.count for p in data.sentiment] == [0, 0, 0, 0, 1, 5, 6]
    assert data.sentiment[-2].mean_compound == round((-0.7 + 0 + 0 + 0 + 0) / 5, 4)
    assert data.total.previous == 0


async def test_share_of_voice_counts_every_brand_and_competitor_watch_matched(
    db: Database,
) -> None:
    await seeded(db)
    data = await digest(db)

    voices = {v.watch_name: v for v in data.share_of_voice}
    # acme: m1, m4, m6, m7 as primary and m3 as a second watch; widget is a product watch.
    assert set(voices) == {"acme", "rival"}
    assert [v.watch_name for v in data.share_of_voice] == ["acme", "rival"]
    acme, rival = voices["acme"], voices["rival"]
    assert (acme.count, acme.previous, acme.negative) == (5, 4, 1)
    assert (rival.count, rival.previous) == (1, 1)
    assert (acme.share_percent, rival.share_percent) == (83.3, 16.7)
    assert (acme.previous_share_percent, rival.previous_share_percent) == (80.0, 20.0)
    assert acme.mean_compound == round((-0.5 + 0.6 + 0 + 0.4 + 0) / 5, 4)
    assert await listed(db, acme.drill) == {"m1", "m3", "m4", "m6", "m7"}
    assert await listed(db, rival.drill) == {"m3"}


async def test_attention_lists_top_items_escalations_and_sla_breaches(db: Database) -> None:
    ids = await seeded(db)
    data = await digest(db, top_n=2)

    top = data.attention.top
    # P1 first, then P2 by reach (unknown reach last); merged and muted ones never.
    assert top.total == 4
    assert [s.id for s in top.items] == [ids["m1"], ids["m2"]]
    assert await listed(db, top.drill) == {"m1", "m2", "m7", "m6"}
    async with db.session() as session:
        page = await drill_down(session, top.drill, limit=2, offset=2)
    assert [m.external_id for m in page] == ["m7", "m6"]

    escalated = data.attention.escalated
    assert escalated.total == 2  # open escalations whenever found
    assert [s.id for s in escalated.items] == [ids["p3"], ids["m6"]]
    assert await listed(db, escalated.drill) == {"p3", "m6"}

    # At the end of the day: m1 (P1, unclaimed since 01:10) is late; m7 (P2, 23:30) is not.
    breaches = data.attention.sla_breaches
    assert [s.id for s in breaches.items] == [ids["m1"]] and breaches.total == 1
    assert await listed(db, breaches.drill) == {"m1"}
    later = await digest(db, now=END + timedelta(hours=1))
    assert await listed(db, later.attention.sla_breaches.drill) == {"m1", "m7"}
    strict = await digest(db, claim_deadlines={"P2": timedelta(minutes=10)})
    assert strict.attention.sla_breaches.total == 1
    assert strict.attention.sla_breaches.items[0].id == ids["m7"]


async def test_response_times_per_department_with_interpolated_percentiles(
    db: Database,
) -> None:
    await seeded(db)
    data = await digest(db)

    response = {r.department: r for r in data.response}
    support = response["support"]
    # Claimed in the period: m2 after 10 min, m9 after 20 min, m8 after 5 h (found the day
    # before). Median 20 min; 90th percentile 20 min + 0.8 × (300 − 20) min.
    assert support.to_claim.count == 3
    assert support.to_claim.median_seconds == 1200.0
    assert support.to_claim.p90_seconds == pytest.approx(1200 + 0.8 * (18000 - 1200))
    assert support.to_resolve.count == 0 and support.to_resolve.median_seconds is None
    assert (support.previous_to_claim.count, support.previous_to_claim.median_seconds) == (
        2,
        pytest.approx((1800 + 3600) / 2),
    )
    assert support.previous_to_resolve.median_seconds == 7200.0
    sales = response["sales"]
    assert (sales.to_claim.count, sales.to_claim.median_seconds) == (1, 1800.0)
    assert (sales.to_resolve.median_seconds, sales.to_resolve.p90_seconds) == (7200.0, 7200.0)
    assert await listed(db, support.claim_drill) == {"m2", "m8", "m9"}
    assert await listed(db, sales.resolve_drill) == {"m3"}


async def test_a_department_scope_narrows_every_number(db: Database) -> None:
    await seeded(db)
    data = await digest(db, departments=("sales",))

    assert (data.total.count, data.total.previous) == (1, 1)
    assert [v.key for v in data.by_department] == ["sales"]
    assert {v.watch_name: v.count for v in data.share_of_voice} == {"rival": 1, "acme": 1}
    assert data.attention.escalated.total == 0
    assert [r.department for r in data.response] == ["sales"]
    assert await listed(db, data.total.drill) == {"m3"}


async def test_spikes_of_the_period_with_their_examples(db: Database) -> None:
    ids = await seeded(db)
    async with db.session() as session:
        for started, ended, kind in [
            (at(1), at(3), "negative"),  # in the period
            (at(20, PREVIOUS_START), None, "volume"),  # still open
            (at(1, PREVIOUS_START), at(2, PREVIOUS_START), "volume"),  # over before
        ]:
            session.add(
                Spike(
                    watch_name="acme",
                    kind=kind,
                    started_at=started,
                    ended_at=ended,
                    observed=9,
                    expected=1.5,
                    p_value=0.0001,
                    example_mention_ids=[ids["m1"], 999_999],
                )
            )
    data = await digest(db)

    assert [(s.kind, s.started_at) for s in data.spikes] == [
        ("volume", at(20, PREVIOUS_START)),
        ("negative", at(1)),
    ]
    negative = data.spikes[1]
    assert [e.id for e in negative.examples] == [ids["m1"]]  # a deleted example is skipped
    assert await listed(db, negative.drill) == {"m1"}
    # The open spike lasts to the end of the period: all of acme's mentions since 20:00.
    # (m3's primary watch is rival, m2's widget.)
    assert await listed(db, data.spikes[0].drill) == {"m8", "m9", "m1", "m4", "m6", "m7"}


async def test_response_times_come_from_the_workflow(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        [stored] = await mention_store.add_mentions(
            session, mentions=[make("w1", now - timedelta(minutes=30), priority="P1")]
        )
    assert stored.id is not None
    workflow = Workflow(db, admins=["UADMIN"])
    await workflow.apply(mention_id=stored.id, action=Action.CLAIM, actor="U1")
    await workflow.apply(mention_id=stored.id, action=Action.RESOLVE, actor="U1")
    async with db.session() as session:
        data = await collect(
            session,
            start=now - timedelta(hours=1),
            end=now + timedelta(hours=1),
            previous_start=now - timedelta(hours=3),
            previous_end=now - timedelta(hours=1),
        )
    [support] = data.response
    assert support.to_claim.count == 1 and support.to_resolve.count == 1
    assert support.to_claim.median_seconds is not None
    assert 29 * 60 <= support.to_claim.median_seconds < 35 * 60
    assert data.attention.sla_breaches.total == 0


def test_a_drill_down_survives_a_button_value() -> None:
    drill = DrillDown(
        start=START,
        end=END + timedelta(microseconds=500_000),
        time_field="claimed_at",
        departments=("support", "sales"),
        intent="",
        source="reddit",
        matched_watch="acme",
        priorities=("P1",),
        overdue=(("P1", at(3)),),
        mention_ids=(1, 2, 3),
    )
    value = drill.to_value()
    assert len(value) < 2000
    assert DrillDown.from_value(value) == drill
    assert DrillDown.from_value(DrillDown().to_value()) == DrillDown()
    for broken in ("", "[]", '{"zz": 1}', '{"s": "x"}', '{"o": [1]}'):
        with pytest.raises(ValueError):
            DrillDown.from_value(broken)


async def test_like_wildcards_in_names_are_literal(db: Database) -> None:
    async with db.session() as session:
        await mention_store.add_mentions(
            session,
            mentions=[
                make("a", at(1), source="rss:x", watches=["a_b"], watch_name="a_b"),
                make("b", at(2), source="rssx:y", watches=["axb"], watch_name="axb"),
            ],
        )
    base = DrillDown(start=START, end=END)
    assert await listed(db, base.narrowed(source="rss")) == {"a"}
    assert await listed(db, base.narrowed(matched_watch="a_b")) == {"a"}
    assert digest_data.SUMMARY_TEXT > 0
