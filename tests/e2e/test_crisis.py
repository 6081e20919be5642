"""A burst of angry posts, found by the real poller, becomes one crisis alert in PR and exec."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from storage import watches as watch_store
from storage.models import Mention, OutboxItem, OutboxKind, OutboxStatus, Spike
from tests.bot.test_spikes import seed_week
from tests.e2e.test_alert_flow import wait_until
from tests.fakes.slack_api import FakeSlackApi, block_kit_problems
from tests.support.earful import Earful
from tests.support.feeds import FeedItem, FeedServer, rss

COMPLAINTS = [
    "<!channel> Acme is down again and I lost a whole day of work, this is awful",
    "Acme support is useless, I hate waiting and nobody answers",
    "Terrible: Acme charged me twice and refuses the refund",
    "Acme deleted my files. Worst service ever, I am furious",
    "Acme outage ruined our launch, what a disaster",
    "Angry at Acme: broken login, broken app, broken promises",
    "Acme is a scam, horrible billing and awful support",
    "Disgusted with Acme, the app crashes and data is lost",
    "Acme failed us badly today, horrible experience, never again",
    "So frustrated with Acme, everything is broken and slow",
    "Acme ignored my complaint for a week, pathetic and sad",
    "Awful update from Acme, it destroyed my settings, I hate it",
]
CHANNELS = {"support": "C0SUPPORT", "product": "C0PRODUCT", "pr": "C0PRCOMMS", "exec": "C0EXECS"}


async def crisis_outbox(earful: Earful) -> list[OutboxItem]:
    async with earful.runtime.db.session() as session:
        stmt = select(OutboxItem).where(col(OutboxItem.kind) == OutboxKind.CRISIS)
        return list((await session.execute(stmt)).scalars())


async def test_a_burst_of_complaints_alerts_pr_and_exec_once(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    for department, channel in CHANNELS.items():
        await earful.command(f"route {department} <#{channel}|{department}>")
    feed_url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem(f"angry-{i}", f"Acme complaint {i}", text, f"https://example.com/a/{i}")
                for i, text in enumerate(COMPLAINTS)
            ]
        ),
    )
    reply = await earful.command(f'watch add acme "acme" sources=rss:{feed_url} kind=brand')
    assert "saved" in reply["text"], reply

    # The poller finds the burst, and each post is alerted in #support or #product as usual.
    async def all_alerted() -> bool:
        async with earful.runtime.db.session() as session:
            found = (await session.execute(select(Mention))).scalars().all()
        return len(found) == len(COMPLAINTS) and all(m.ts for m in found)

    await wait_until(all_alerted, within=20)
    async with earful.runtime.db.session() as session:
        negative = (
            await session.execute(select(Mention).where(col(Mention.sentiment_label) == "negative"))
        ).scalars()
        assert len(list(negative)) == len(COMPLAINTS)
        # The watch has a week of ordinary history: 3 mentions an hour, 1 in 10 negative.
        watch = await watch_store.get_watch(session, name="acme")
        assert watch is not None
        watch.created_at = datetime.now(UTC) - timedelta(days=8)
    await seed_week(
        earful.runtime.db,
        "acme",
        per_hour=3,
        end=datetime.now(UTC).replace(microsecond=0),
        negative_every=10,
    )

    # The runtime's detector checks (now, rather than at its next five-minute run) and the
    # outbox delivers.
    opened = await earful.runtime.spikes.check()
    assert [(s.watch_name, s.kind) for s in opened] == [("acme", "negative")]

    async def crisis_posted() -> bool:
        return all(fake_slack.messages(CHANNELS[d]) for d in ("pr", "exec"))

    await wait_until(crisis_posted, within=20)
    await wait_until(lambda: _all_done(earful))
    async with earful.runtime.db.session() as session:
        [spike] = (await session.execute(select(Spike))).scalars().all()
    assert (spike.watch_name, spike.kind, spike.ended_at) == ("acme", "negative", None)
    assert spike.alerted and spike.observed == len(COMPLAINTS)
    for department in ("pr", "exec"):
        [message] = fake_slack.messages(CHANNELS[department])
        assert block_kit_problems(message["blocks"]) == []
        dumped = json.dumps(message["blocks"], ensure_ascii=False)
        assert message["blocks"][0]["text"]["text"] == (
            "🚨 Possible crisis: acme — negative-sentiment spike"
        )
        assert "12 negative mentions in the last hour vs" in dumped
        assert "by chance alone" in dumped
        assert "<!channel>" not in dumped + message["text"]
        # Each example links to its alert in #support and to the original post.
        assert dumped.count("|alert>") == 5 and "https://example.com/a/" in dumped
        assert message["metadata"]["event_payload"]["spike_id"] == spike.id

    # The next check sees the same spike still going: nothing new is queued or posted.
    assert await earful.runtime.spikes.check() == []
    assert len(await crisis_outbox(earful)) == 2
    assert await earful.runtime.services.delivery.flush() == 0
    assert len(fake_slack.messages(CHANNELS["pr"])) == 1
    assert len(fake_slack.messages(CHANNELS["exec"])) == 1


async def _all_done(earful: Earful) -> bool:
    items = await crisis_outbox(earful)
    return len(items) == 2 and all(i.status == OutboxStatus.DONE for i in items)
