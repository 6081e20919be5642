"""Spike detection over stored mentions, and the crisis alert it sends to PR and executives."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlmodel import col

from bot.cards import CrisisCard, CrisisExample, crisis_blocks
from bot.delivery import Delivery
from bot.spikes import SpikeDetector
from storage import routes as route_store
from storage import stats
from storage import watches as watch_store
from storage.db import Database
from storage.models import Cluster, Mention, OutboxItem, OutboxKind, OutboxStatus, Spike
from tests.fakes.slack_api import FakeSlackApi, block_kit_problems

NOW = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)
HOSTILE = "<!channel> Acme is down <@U0ALICE> <https://evil.example|acme.com> &amp;"
_ids = itertools.count(1)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def mention(watch: str, found_at: datetime, **changes: Any) -> Mention:
    number = next(_ids)
    values: dict[str, Any] = {
        "watch_name": watch,
        "watch_kind": "brand",
        "watches": [watch],
        "source": "reddit:r/acme",
        "origin": "reddit",
        "external_id": f"post-{number}",
        "url": f"https://www.reddit.com/r/acme/comments/{number}",
        "text": f"post {number} about {watch}",
        "found_at": found_at,
        "department": "support",
        "priority": "P3",
        "updated_at": found_at,
    }
    values.update(changes)
    return Mention(**values)


async def seed_week(
    db: Database, watch: str, *, per_hour: int, end: datetime = NOW, negative_every: int = 0
) -> None:
    """A flat week before the hour that ends at ``end``; every ``negative_every``-th negative."""
    rows = []
    for hour in range(1, 7 * 24 + 1):
        start = end - timedelta(hours=hour + 1)
        for i in range(per_hour):
            negative = negative_every and (hour * per_hour + i) % negative_every == 0
            rows.append(
                mention(
                    watch,
                    start + timedelta(minutes=5 + 50 * i / per_hour),
                    sentiment_label="negative" if negative else "neutral",
                )
            )
    async with db.session() as session:
        session.add_all(rows)


async def seed_burst(
    db: Database, watch: str, count: int, *, end: datetime = NOW, **changes: Any
) -> list[int]:
    """``count`` mentions in the hour before ``end``; returns their ids."""
    rows = [
        mention(watch, end - timedelta(minutes=55) + timedelta(seconds=60 * i), **changes)
        for i in range(count)
    ]
    async with db.session() as session:
        session.add_all(rows)
        await session.flush()
        return [m.id for m in rows if m.id is not None]


async def crisis_items(db: Database) -> list[OutboxItem]:
    async with db.session() as session:
        stmt = select(OutboxItem).where(col(OutboxItem.kind) == OutboxKind.CRISIS)
        return list((await session.execute(stmt.order_by(col(OutboxItem.id)))).scalars())


async def all_spikes(db: Database) -> list[Spike]:
    async with db.session() as session:
        return list((await session.execute(select(Spike).order_by(col(Spike.id)))).scalars())


# ---------------------------------------------------------------- storage aggregates


async def test_hourly_buckets_count_from_the_start_on_both_engines(db: Database) -> None:
    start = NOW - timedelta(hours=3)
    async with db.session() as session:
        session.add_all(
            [
                mention("acme", start - timedelta(seconds=1)),  # before the range
                mention("acme", start),
                mention("acme", start + timedelta(minutes=59, seconds=59)),
                mention("acme", start + timedelta(hours=1), sentiment_label="negative"),
                mention("acme", NOW - timedelta(microseconds=1), sentiment_label="negative"),
                mention("acme", NOW),  # the end is excluded
                mention("rival", start + timedelta(hours=2, minutes=30)),
            ]
        )
    async with db.session() as session:
        rows = await stats.hourly_counts(session, start=start, end=NOW)
    assert sorted((r.watch_name, r.hour, r.total, r.negative) for r in rows) == [
        ("acme", 0, 2, 0),
        ("acme", 1, 1, 1),
        ("acme", 2, 1, 1),
        ("rival", 2, 1, 0),
    ]


async def test_top_examples_by_priority_then_reach(db: Database) -> None:
    ids = {}
    async with db.session() as session:
        examples: dict[str, dict[str, Any]] = {
            "p3_big": {"priority": "P3", "author_reach": 10_000},
            "p1_unknown": {"priority": "P1", "author_reach": None},
            "p1_small": {"priority": "P1", "author_reach": 5},
            "p2": {"priority": "P2", "author_reach": 100},
            "other_watch": {"priority": "P1", "watch_name": "rival"},
        }
        for key, changes in examples.items():
            row = mention(changes.pop("watch_name", "acme"), NOW - timedelta(minutes=10), **changes)
            session.add(row)
            await session.flush()
            ids[key] = row.id
        old = mention("acme", NOW - timedelta(hours=2), priority="P1")
        session.add(old)
    async with db.session() as session:
        top = await stats.top_examples(
            session, watch_name="acme", start=NOW - timedelta(hours=1), end=NOW, limit=3
        )
    assert [m.id for m in top] == [ids["p1_small"], ids["p1_unknown"], ids["p2"]]


# ---------------------------------------------------------------- the detector


async def test_a_burst_opens_one_spike_and_alerts_pr_and_exec_once(db: Database) -> None:
    await seed_week(db, "acme", per_hour=3)
    await seed_week(db, "rival", per_hour=3)
    await seed_burst(db, "rival", 4)  # an ordinary hour for the competitor
    burst = await seed_burst(db, "acme", 40)
    async with db.session() as session:
        cluster = Cluster(lead_mention_id=burst[0], size=12, sources=["reddit:r/acme"])
        session.add(cluster)
        await session.flush()
        for mention_id in burst[:12]:
            row = await session.get(Mention, mention_id)
            assert row is not None
            row.cluster_id = cluster.id
        important = await session.get(Mention, burst[-1])
        assert important is not None
        important.priority = "P1"
    kicks: list[None] = []
    clock = Clock()
    detector = SpikeDetector(db, clock=clock, on_outbox=lambda: kicks.append(None))

    [spike] = await detector.check()

    assert (spike.watch_name, spike.kind, spike.ended_at) == ("acme", "volume", None)
    assert spike.observed == 40 and spike.expected == 3.0 and spike.p_value < 1e-10
    assert spike.started_at == NOW and not spike.alerted
    assert len(spike.example_mention_ids) == 5 and spike.example_mention_ids[0] == burst[-1]
    assert set(spike.example_mention_ids) <= set(burst)
    assert spike.cluster_id == cluster.id
    items = await crisis_items(db)
    assert sorted(i.payload["department"] for i in items) == ["exec", "pr"]
    assert {i.payload["spike_id"] for i in items} == {spike.id}
    assert all(i.mention_id is None and i.status == OutboxStatus.PENDING for i in items)
    assert kicks == [None]

    # Five minutes on, and after a restart: the open spike is remembered, nothing is sent.
    clock.advance(minutes=5)
    assert await detector.check() == []
    assert await SpikeDetector(db, clock=clock).check() == []
    assert len(await all_spikes(db)) == 1 and len(await crisis_items(db)) == 2
    assert kicks == [None]


async def test_a_spike_closes_when_it_subsides_and_a_later_burst_is_new(db: Database) -> None:
    await seed_week(db, "acme", per_hour=3)
    await seed_burst(db, "acme", 40)
    clock = Clock()
    detector = SpikeDetector(db, clock=clock)
    [first] = await detector.check()

    clock.advance(hours=2)
    await seed_burst(db, "acme", 3, end=clock.now)  # back to normal
    assert await detector.check() == []
    [closed] = await all_spikes(db)
    assert closed.id == first.id and closed.ended_at == clock.now

    clock.advance(hours=3)
    await seed_burst(db, "acme", 45, end=clock.now)
    [second] = await detector.check()
    assert second.id != first.id and second.started_at == clock.now
    assert len(await crisis_items(db)) == 4


async def test_a_spike_with_no_mentions_left_in_the_window_closes(db: Database) -> None:
    await seed_week(db, "acme", per_hour=3)
    await seed_burst(db, "acme", 40)
    clock = Clock()
    detector = SpikeDetector(db, clock=clock)
    await detector.check()
    clock.advance(minutes=70)  # nothing new at all: the watch is only checked for its spike
    await detector.check()
    [spike] = await all_spikes(db)
    assert spike.ended_at == clock.now


async def test_a_shift_in_negative_share_opens_a_negative_spike(db: Database) -> None:
    await seed_week(db, "acme", per_hour=6, negative_every=10)
    await seed_burst(db, "acme", 2)
    negative = await seed_burst(db, "acme", 8, sentiment_label="negative")
    [spike] = await SpikeDetector(db, clock=Clock()).check()
    assert spike.kind == "negative"  # 10 mentions against 6 expected: no volume spike
    # The seeded week is 101 negative of 1008 (10.02 %), so 10 mentions expect 1.002.
    assert spike.observed == 8 and spike.expected == pytest.approx(10 * 101 / 1008)
    # The examples are negative only; with equal priority and reach, the newest first.
    assert spike.example_mention_ids == negative[::-1][:5]


async def test_the_statistics_run_in_a_worker_process_when_given_one(db: Database) -> None:
    """Earful passes its scoring pool, so scipy never loads in the process serving Slack."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    await seed_week(db, "acme", per_hour=6, negative_every=10)
    await seed_burst(db, "acme", 2)
    await seed_burst(db, "acme", 8, sentiment_label="negative")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        [spike] = await SpikeDetector(db, clock=Clock(), executor=pool).check()
    assert spike.kind == "negative" and spike.observed == 8


async def test_an_angry_burst_is_one_spike_until_every_test_is_back_to_normal(
    db: Database,
) -> None:
    await seed_week(db, "acme", per_hour=3, negative_every=10)
    await seed_burst(db, "acme", 30, sentiment_label="negative")
    clock = Clock()
    detector = SpikeDetector(db, clock=clock)
    # Both tests fire (30 against 3 an hour, all of them negative): one spike, one alert each.
    [spike] = await detector.check()
    assert spike.kind == "negative" and spike.observed == 30
    assert len(await crisis_items(db)) == 2

    # An hour on, the talk is no longer angry but still loud: the same spike goes on.
    clock.advance(hours=1)
    await seed_burst(db, "acme", 20, end=clock.now)
    assert await detector.check() == []
    [still] = await all_spikes(db)
    assert still.ended_at is None

    # Loud and angry again before it ended: still the same spike, nothing new is sent.
    clock.advance(minutes=30)
    await seed_burst(db, "acme", 25, end=clock.now, sentiment_label="negative")
    assert await detector.check() == []
    assert len(await all_spikes(db)) == 1 and len(await crisis_items(db)) == 2

    clock.advance(hours=2)
    await seed_burst(db, "acme", 3, end=clock.now)
    await detector.check()
    [over] = await all_spikes(db)
    assert over.ended_at == clock.now


async def test_a_new_watch_has_no_baseline_to_spike_against(db: Database) -> None:
    async with db.session() as session:
        watch = await watch_store.create_watch(
            session,
            name="newco",
            query='"newco"',
            kind="brand",
            department=None,
            sources=["hn"],
            interval_seconds=300,
            created_by=None,
        )
        watch.created_at = NOW - timedelta(hours=5)
    # Its first polls bring in a backlog, all found within the last hour.
    await seed_burst(db, "newco", 60)
    assert await SpikeDetector(db, clock=Clock()).check() == []


async def test_concurrent_checks_open_a_spike_once(db: Database) -> None:
    await seed_week(db, "acme", per_hour=3)
    await seed_burst(db, "acme", 40)
    other = Database(db.url)
    try:
        results = await asyncio.gather(
            SpikeDetector(db, clock=Clock()).check(), SpikeDetector(other, clock=Clock()).check()
        )
    finally:
        await other.dispose()
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(await all_spikes(db)) == 1 and len(await crisis_items(db)) == 2


# ---------------------------------------------------------------- the crisis alert


def test_crisis_blocks_escape_source_text_and_stay_valid() -> None:
    card = CrisisCard(
        watch_name="acme",
        kind="negative",
        reason="18 of 25 mentions negative in the last hour (72%) vs 10% usually (p < 0.001)",
        started_at=NOW,
        examples=tuple(
            CrisisExample(
                source="rss:https://news.example/feed.xml",
                priority="P1",
                title=None,
                text=HOSTILE * 40,
                url="javascript:alert(1)",
                alert_url=None,
            )
            for _ in range(5)
        ),
        cluster_size=12,
        cluster_url="https://earful-test.slack.com/archives/C0SUPPORT/p1",
    )
    blocks, text = crisis_blocks(card)
    assert block_kit_problems(blocks) == []
    assert blocks[0]["text"]["text"] == "🚨 Possible crisis: acme — negative-sentiment spike"
    dumped = json.dumps(blocks) + text
    for live in ("<!channel>", "<@U0ALICE>", "<https://evil.example", "javascript:"):
        assert live not in dumped
    assert "&lt;!channel&gt;" in dumped and "p &lt; 0.001" in dumped
    assert "<https://earful-test.slack.com/archives/C0SUPPORT/p1|the lead alert>" in dumped
    assert len(text) <= 300


async def delivery_setup(
    db: Database, fake: FakeSlackApi, *, client_timeout: int = 15
) -> tuple[Delivery, Clock, Spike, str]:
    """A spike on "acme" whose top example was already alerted in #support."""
    client = AsyncWebClient(token="xoxb-test", base_url=fake.url, timeout=client_timeout)
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="the original alert")
    await seed_week(db, "acme", per_hour=3)
    burst = await seed_burst(db, "acme", 40, text=HOSTILE)
    async with db.session() as session:
        top = await session.get(Mention, burst[0])
        assert top is not None
        top.priority, top.channel, top.ts = "P1", "C0SUPPORT", str(posted["ts"])
        cluster = Cluster(lead_mention_id=top.id, size=9, sources=["reddit:r/acme"])
        session.add(cluster)
        await session.flush()
        top.cluster_id = cluster.id
        await route_store.set_route(
            session, department="pr", channel_id="C0PRCOMMS", updated_by=None
        )
        await route_store.set_route(
            session, department="exec", channel_id="C0EXECS", updated_by=None
        )
    clock = Clock()
    [spike] = await SpikeDetector(db, clock=clock).check()
    permalink = (await client.chat_getPermalink(channel="C0SUPPORT", message_ts=posted["ts"]))[
        "permalink"
    ]
    fake.calls.clear()
    delivery = Delivery(
        db, client=client, posting_client=client, clock=clock, per_channel_interval=0
    )
    return delivery, clock, spike, str(permalink)


async def test_crisis_is_posted_to_pr_and_exec(db: Database, fake_slack: FakeSlackApi) -> None:
    delivery, _, spike, permalink = await delivery_setup(db, fake_slack)
    assert await delivery.flush() == 2
    for channel in ("C0PRCOMMS", "C0EXECS"):
        [message] = fake_slack.messages(channel)
        blocks = message["blocks"]
        assert blocks[0]["text"]["text"] == "🚨 Possible crisis: acme — volume spike"
        dumped = json.dumps(blocks) + message["text"]
        assert "40 mentions in the last hour vs 3.0 expected (p &lt; 0.001)" in dumped
        assert (
            "About 13× the usual rate for this time of day" in message["blocks"][1]["text"]["text"]
        )
        assert "<!channel>" not in dumped and "<@U0ALICE>" not in dumped
        assert "&lt;!channel&gt; Acme is down" in dumped
        assert f"<{permalink}|alert>" in dumped  # the example's own alert
        assert f"<{permalink}|the lead alert>" in dumped  # the biggest story
        assert "9 mentions" in dumped
        assert message["metadata"]["event_payload"]["spike_id"] == spike.id
    assert await all_spikes(db) and (await all_spikes(db))[0].alerted
    assert all(i.status == OutboxStatus.DONE for i in await crisis_items(db))
    # Nothing else in any other channel, and a second flush has nothing to do.
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    assert await delivery.flush() == 0


async def test_crisis_retried_after_server_errors_is_posted_once(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    delivery, clock, _, _ = await delivery_setup(db, fake_slack)
    fake_slack.fail("chat.postMessage", status=500, times=2)
    assert await delivery.flush() == 0
    assert all(i.status == OutboxStatus.PENDING and i.attempts == 1 for i in await crisis_items(db))
    assert not (await all_spikes(db))[0].alerted
    clock.advance(minutes=5)
    assert await delivery.flush() == 2
    assert len(fake_slack.messages("C0PRCOMMS")) == 1
    assert len(fake_slack.messages("C0EXECS")) == 1
    assert (await all_spikes(db))[0].alerted


async def test_crisis_rate_limited_waits_as_long_as_slack_asks(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    delivery, clock, _, _ = await delivery_setup(db, fake_slack)
    fake_slack.fail("chat.postMessage", status=429, retry_after=30, times=2)
    assert await delivery.flush() == 0
    items = await crisis_items(db)
    assert all(i.status == OutboxStatus.PENDING and i.last_error for i in items)
    clock.advance(seconds=10)
    assert await delivery.flush() == 0  # Slack asked for 30 s
    clock.advance(seconds=25)
    assert await delivery.flush() == 2
    assert len(fake_slack.messages("C0PRCOMMS")) == 1
    assert len(fake_slack.messages("C0EXECS")) == 1


async def test_crisis_timeout_after_slack_posted_does_not_post_twice(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    delivery, clock, _, _ = await delivery_setup(db, fake_slack, client_timeout=1)
    fake_slack.fail("chat.postMessage", delay=2)  # posted, but answered too late
    assert await delivery.flush() == 1  # the other department's went through
    await fake_slack.wait_for("chat.postMessage", count=2)
    clock.advance(minutes=5)
    assert await delivery.flush() == 1
    assert len(fake_slack.messages("C0PRCOMMS")) == 1
    assert len(fake_slack.messages("C0EXECS")) == 1
    assert fake_slack.calls_to("conversations.history")
    assert all(i.status == OutboxStatus.DONE for i in await crisis_items(db))


async def test_crisis_waits_for_a_route(db: Database, fake_slack: FakeSlackApi) -> None:
    delivery, _, _, _ = await delivery_setup(db, fake_slack)
    async with db.session() as session:
        route = await session.get(route_store.Route, "exec")
        await session.delete(route)
    assert await delivery.flush() == 1
    [waiting] = [i for i in await crisis_items(db) if i.status == OutboxStatus.PENDING]
    assert waiting.payload["department"] == "exec" and waiting.attempts == 0
    assert "no channel routed for exec" in (waiting.last_error or "")
    assert fake_slack.messages("C0EXECS") == []
