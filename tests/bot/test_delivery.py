"""The outbox delivers through Slack faults: delayed, never dropped, never posted twice."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.delivery import GROUP_THRESHOLD, Delivery
from bot.ids import ActionId
from bot.queues import ListKind, PageRef, Queues
from bot.workflow import Action, Workflow
from storage import alert_groups, outbox
from storage import mentions as mention_store
from storage import routes as route_store
from storage.db import Database
from storage.models import Mention, OutboxItem, OutboxKind, OutboxStatus
from storage.types import utcnow
from tests.bot.test_workflow import make_mention
from tests.fakes.slack_api import FakeSlackApi, block_kit_problems


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


async def setup(
    db: Database, fake: FakeSlackApi, *, client_timeout: int = 15
) -> tuple[Delivery, Clock, int]:
    mention_id = await make_mention(db)
    async with db.session() as session:
        await route_store.set_route(
            session, department="support", channel_id="C0SUPPORT", updated_by=None
        )
        outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=mention_id)
    clock = Clock()
    client = AsyncWebClient(token="xoxb-test", base_url=fake.url, timeout=client_timeout)
    # As bot/app.py builds it: no rate-limit retries in the call, the outbox pauses the channel.
    posting = AsyncWebClient(token="xoxb-test", base_url=fake.url, timeout=client_timeout)
    delivery = Delivery(
        db, client=client, posting_client=posting, clock=clock, per_channel_interval=0
    )
    return delivery, clock, mention_id


async def statuses(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(select(OutboxItem.status))).scalars())


async def test_rate_limit_is_waited_out(db: Database, fake_slack: FakeSlackApi) -> None:
    delivery, clock, _ = await setup(db, fake_slack)
    fake_slack.fail("chat.postMessage", status=429, retry_after=30)
    assert await delivery.flush() == 0
    assert await statuses(db) == [OutboxStatus.PENDING]
    clock.advance(seconds=29)
    assert await delivery.flush() == 0, "Slack asked for 30 s"
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    clock.advance(seconds=2)
    assert await delivery.flush() == 1
    assert len(fake_slack.messages("C0SUPPORT")) == 1
    assert await statuses(db) == [OutboxStatus.DONE]


async def test_server_errors_delay_but_do_not_drop(db: Database, fake_slack: FakeSlackApi) -> None:
    delivery, clock, mention_id = await setup(db, fake_slack)
    fake_slack.fail("chat.postMessage", status=500, times=3)
    for _ in range(3):
        assert await delivery.flush() == 0
        clock.advance(minutes=5)
    assert await statuses(db) == [OutboxStatus.PENDING]
    assert await delivery.flush() == 1
    assert len(fake_slack.messages("C0SUPPORT")) == 1
    async with db.session() as session:
        mention = await session.get(Mention, mention_id)
    assert mention is not None and mention.ts == fake_slack.messages("C0SUPPORT")[0]["ts"]


async def test_timeout_after_slack_posted_does_not_post_twice(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    delivery, clock, mention_id = await setup(db, fake_slack, client_timeout=1)
    # Slack posts the message but answers after the client gave up.
    fake_slack.fail("chat.postMessage", delay=2)
    assert await delivery.flush() == 0
    await fake_slack.wait_for("chat.postMessage")
    assert len(fake_slack.messages("C0SUPPORT")) == 1
    clock.advance(minutes=5)
    assert await delivery.flush() == 1
    assert len(fake_slack.messages("C0SUPPORT")) == 1, "the retry must find the first post"
    async with db.session() as session:
        mention = await session.get(Mention, mention_id)
    assert mention is not None and mention.ts == fake_slack.messages("C0SUPPORT")[0]["ts"]
    assert fake_slack.calls_to("conversations.history")


async def test_missing_route_waits_without_counting_attempts(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    delivery, _, _ = await setup(db, fake_slack)
    async with db.session() as session:
        route = await session.get(route_store.Route, "support")
        await session.delete(route)
    assert await delivery.flush() == 0
    async with db.session() as session:
        [item] = (await session.execute(select(OutboxItem))).scalars().all()
    assert item.status == OutboxStatus.PENDING and item.attempts == 0
    assert "no channel routed for support" in (item.last_error or "")
    assert not fake_slack.calls_to("chat.postMessage")


async def test_a_route_set_while_an_alert_looks_for_one_releases_it(
    db: Database, fake_slack: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `/earful route` releases the waiting alerts; an alert whose attempt found no route just
    # before, and is only now being put off for a minute, must not miss that release.
    delivery, clock, _ = await setup(db, fake_slack)
    async with db.session() as session:
        await session.delete(await session.get(route_store.Route, "support"))
    put_off = delivery._reschedule

    async def route_set_in_between(item: OutboxItem, *args: Any, **kwargs: Any) -> None:
        if not await support_routed(db):
            async with db.session() as session:  # what CommandService._route_set does
                await route_store.set_route(
                    session, department="support", channel_id="C0SUPPORT", updated_by=None
                )
                await outbox.release_waiting(session, now=clock())
        await put_off(item, *args, **kwargs)

    monkeypatch.setattr(delivery, "_reschedule", route_set_in_between)
    assert await delivery.flush() == 0  # the attempt that found no route
    assert await delivery.flush() == 1  # due again at once, not in a minute
    assert len(fake_slack.messages("C0SUPPORT")) == 1


async def support_routed(db: Database) -> bool:
    async with db.session() as session:
        return await route_store.channel_for(session, department="support") is not None


# --------------------------------------------------------------- rate limits, lanes, bursts


def low(external_id: str, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "reddit:r/acme",
        "origin": "reddit",
        "external_id": external_id,
        "url": f"https://example.com/{external_id}",
        "title": f"Post {external_id}",
        "text": "<!channel> acme is fine I guess",
        "author": "carol",
        "department": "support",
        "priority": "P4",
        "primary_intent": "praise",
        "found_at": utcnow(),
        "updated_at": utcnow(),
    }
    values.update(fields)
    return Mention(**values)


async def queue_alerts(db: Database, *mentions: Mention) -> list[int]:
    """Store mentions and their alerts in one transaction, as the poller does."""
    async with db.session() as session:
        stored = await mention_store.add_mentions(session, mentions=list(mentions))
        for mention in stored:
            outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=mention.id)
    return [m.id for m in stored if m.id is not None]


async def route(db: Database, department: str, channel: str) -> None:
    async with db.session() as session:
        await route_store.set_route(
            session, department=department, channel_id=channel, updated_by=None
        )


def delivery_for(db: Database, fake: FakeSlackApi, clock: Clock, **kwargs: Any) -> Delivery:
    client = AsyncWebClient(token="xoxb-test", base_url=fake.url, timeout=1)
    return Delivery(
        db,
        client=client,
        posting_client=client,
        clock=clock,
        **{"per_channel_interval": 0, **kwargs},
    )


def alerted_ids(fake: FakeSlackApi, channel: str) -> list[int]:
    """Every mention Slack shows as alerted in ``channel``: one per card, one per summary line."""
    ids: list[int] = []
    for message in fake.messages(channel):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == "earful_alert" and "mention_id" in payload:
            ids.append(payload["mention_id"])
        if metadata.get("event_type") == "earful_grouped":
            ids.extend(payload["mention_ids"])
    return ids


def summaries(fake: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [
        m
        for m in fake.messages(channel, include_replies=False)
        if "group_id" in ((m.get("metadata") or {}).get("event_payload") or {})
    ]


def thread(fake: FakeSlackApi, channel: str, ts: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages(channel) if m.get("thread_ts") == ts and m["ts"] != ts]


async def test_a_429_pauses_only_that_channel(db: Database, fake_slack: FakeSlackApi) -> None:
    await route(db, "support", "C0SUPPORT")
    await route(db, "product", "C0PRODUCT")
    support = await queue_alerts(db, low("s1", priority="P2"))
    product = await queue_alerts(
        db, *[low(f"p{n}", priority="P2", department="product") for n in range(3)]
    )
    clock = Clock()
    delivery = delivery_for(db, fake_slack, clock)
    fake_slack.fail("chat.postMessage", status=429, retry_after=30, channel="C0SUPPORT")
    assert await delivery.flush() == 3  # product's, while support waits
    assert sorted(alerted_ids(fake_slack, "C0PRODUCT")) == product
    # More for support during the pause: queued, not sent; Slack sees no call to support.
    support += await queue_alerts(db, low("s2", priority="P2"))
    clock.advance(seconds=10)
    await release_all(db, clock)
    assert await delivery.flush() == 0
    to_support = [
        c for c in fake_slack.calls_to("chat.postMessage") if c.args["channel"] == "C0SUPPORT"
    ]
    assert len(to_support) == 1 and to_support[0].status == 429
    clock.advance(seconds=21)
    assert await delivery.flush() == 2
    assert sorted(alerted_ids(fake_slack, "C0SUPPORT")) == support
    assert await statuses(db) == [OutboxStatus.DONE] * 5


async def release_all(db: Database, clock: Clock) -> None:
    """Make every waiting item due, as a new route does: only the pause may hold them back."""
    async with db.session() as session:
        await outbox.release_waiting(session, now=clock())


async def test_posts_to_one_channel_are_paced_and_channels_go_side_by_side(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    await route(db, "support", "C0SUPPORT")
    await route(db, "product", "C0PRODUCT")
    await queue_alerts(db, *[low(f"s{n}", priority="P2") for n in range(4)])
    await queue_alerts(db, *[low(f"p{n}", priority="P2", department="product") for n in range(4)])
    interval = 0.4
    delivery = delivery_for(db, fake_slack, Clock(), per_channel_interval=interval)
    assert await delivery.flush() == 8
    calls = fake_slack.calls_to("chat.postMessage")
    for channel in ("C0SUPPORT", "C0PRODUCT"):
        times = [c.at for c in calls if c.args["channel"] == channel]
        assert len(times) == 4
        # Never two posts to one channel closer than the interval (a little slack for the
        # request's own travel time): about one a second with Slack's interval.
        assert all(b - a >= interval * 0.5 for a, b in itertools.pairwise(times))
    # Side by side: product's first post did not wait for support's last one.
    support_last = max(c.at for c in calls if c.args["channel"] == "C0SUPPORT")
    product_first = min(c.at for c in calls if c.args["channel"] == "C0PRODUCT")
    assert product_first < support_last


async def test_a_burst_of_low_priority_alerts_becomes_one_summary(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    await route(db, "support", "C0SUPPORT")
    burst = await queue_alerts(db, *[low(f"b{n}", title=None) for n in range(45)])
    [urgent] = await queue_alerts(db, low("fire", priority="P1", title="Lawsuit filed"))
    delivery = delivery_for(db, fake_slack, Clock())
    await delivery.flush()
    top = fake_slack.messages("C0SUPPORT", include_replies=False)
    # The P1 first, on a card of its own; then one summary, not 45 cards.
    assert top[0]["metadata"]["event_payload"]["mention_id"] == urgent
    [summary] = summaries(fake_slack, "C0SUPPORT")
    assert len(top) == 2
    assert "45 low-priority mentions" in summary["text"]
    dumped = json.dumps(summary["blocks"], ensure_ascii=False)
    assert "/earful queue support" in dumped
    assert "By watch" in dumped and "acme: 45" in dumped
    assert "Reddit · r/acme: 45" in dumped and "praise: 45" in dumped
    assert "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped  # examples escaped
    # The thread lists every one of them, 40 to a reply, each exactly once.
    replies = thread(fake_slack, "C0SUPPORT", summary["ts"])
    assert len(replies) == 2
    assert "Mentions 1–40 of 45" in replies[0]["text"]
    assert "Mentions 41–45 of 45" in replies[1]["text"]
    assert sorted(alerted_ids(fake_slack, "C0SUPPORT")) == sorted([*burst, urgent])
    for reply in replies:
        assert not block_kit_problems(reply["blocks"])
        assert "<!channel>" not in json.dumps(reply["blocks"])
    # Nothing is lost from the queue: grouped mentions stay new and unclaimed, with no card.
    async with db.session() as session:
        grouped = [await session.get(Mention, i) for i in burst]
    assert all(m is not None and m.state == "new" and m.ts is None for m in grouped)
    assert await delivery.flush() == 0
    # In /earful queue, a grouped mention's Open button leads to its summary.
    page = await Queues(db, client=AsyncWebClient(token="xoxb-test", base_url=fake_slack.url)).show(
        PageRef(kind=ListKind.QUEUE, department="support"), user_id="U0ALICE"
    )
    summary_link = (
        await AsyncWebClient(token="xoxb-test", base_url=fake_slack.url).chat_getPermalink(
            channel="C0SUPPORT", message_ts=summary["ts"]
        )
    )["permalink"]
    opened = [
        element["url"]
        for block in page.blocks
        for element in [*block.get("elements", []), block.get("accessory") or {}]
        if element.get("action_id") == ActionId.QUEUE_OPEN.value
    ]
    assert opened and opened.count(summary_link) == len(opened) - 1  # all but the P1's card


async def test_a_few_low_priority_alerts_still_get_cards(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    await route(db, "support", "C0SUPPORT")
    ids = await queue_alerts(db, *[low(f"b{n}") for n in range(GROUP_THRESHOLD)])
    delivery = delivery_for(db, fake_slack, Clock())
    assert await delivery.flush() == GROUP_THRESHOLD
    assert not summaries(fake_slack, "C0SUPPORT")
    assert sorted(alerted_ids(fake_slack, "C0SUPPORT")) == ids


async def test_a_burst_that_goes_on_joins_its_summary(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    await route(db, "support", "C0SUPPORT")
    first = await queue_alerts(db, *[low(f"a{n}") for n in range(25)])
    clock = Clock()
    delivery = delivery_for(db, fake_slack, clock)
    await delivery.flush()
    [summary] = summaries(fake_slack, "C0SUPPORT")
    clock.advance(minutes=2)
    more = await queue_alerts(db, *[low(f"b{n}") for n in range(3)])
    await delivery.flush()
    assert len(summaries(fake_slack, "C0SUPPORT")) == 1, "no second summary while it goes on"
    [update] = fake_slack.calls_to("chat.update")
    assert update.args["ts"] == summary["ts"] and "28 low-priority" in update.args["text"]
    assert sorted(alerted_ids(fake_slack, "C0SUPPORT")) == sorted(first + more)
    # Once it is over, a few low-priority alerts get their own cards again.
    clock.advance(minutes=11)
    later = await queue_alerts(db, low("later"))
    await delivery.flush()
    assert alerted_ids(fake_slack, "C0SUPPORT")[-1] == later[0]
    assert len(summaries(fake_slack, "C0SUPPORT")) == 1


async def test_a_summary_answered_too_late_is_not_posted_twice(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    await route(db, "support", "C0SUPPORT")
    ids = await queue_alerts(db, *[low(f"b{n}") for n in range(25)])
    clock = Clock()
    delivery = delivery_for(db, fake_slack, clock)
    # The summary, then its thread reply: Slack takes each but answers after the client gave up.
    fake_slack.fail("chat.postMessage", delay=2, times=1)
    await delivery.flush()
    await fake_slack.wait_for("chat.postMessage")
    clock.advance(minutes=5)
    fake_slack.fail("chat.postMessage", delay=2, times=1)
    await delivery.flush()
    await fake_slack.wait_for("chat.postMessage", count=2)
    clock.advance(minutes=5)
    await delivery.flush()
    assert len(summaries(fake_slack, "C0SUPPORT")) == 1
    assert sorted(alerted_ids(fake_slack, "C0SUPPORT")) == ids
    assert fake_slack.calls_to("conversations.history")
    assert fake_slack.calls_to("conversations.replies")
    assert await delivery.flush() == 0
    async with db.session() as session:
        pending = await outbox.pending_count(session)
    assert pending == 0


async def test_notes_about_a_grouped_mention_go_to_its_summary_thread(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    await route(db, "support", "C0SUPPORT")
    ids = await queue_alerts(db, *[low(f"b{n}") for n in range(25)])
    clock = Clock()
    delivery = delivery_for(db, fake_slack, clock)
    await delivery.flush()
    [summary] = summaries(fake_slack, "C0SUPPORT")
    workflow = Workflow(db, admins=frozenset({"U0ADMIN"}))
    await workflow.apply(mention_id=ids[3], action=Action.CLAIM, actor="U0BOB")
    clock.advance(seconds=1)
    await delivery.flush()
    # The summary is never overwritten by a card; the claim is noted in its thread.
    assert not fake_slack.calls_to("chat.update")
    [note] = [m for m in thread(fake_slack, "C0SUPPORT", summary["ts"]) if "claimed" in m["text"]]
    assert note["text"].startswith(f"*#{ids[3]}* <https://example.com/b3|Post b3>: 👀 <@U0BOB>")
    async with db.session() as session:
        claimed = await session.get(Mention, ids[3])
    assert claimed is not None and claimed.state == "claimed" and claimed.ts is None


async def test_a_grouped_alert_is_never_also_posted(db: Database) -> None:
    """The race between a lane about to post an alert and a summary taking it over."""
    async with db.session() as session:
        await route_store.set_route(
            session, department="support", channel_id="C0SUPPORT", updated_by=None
        )
    await queue_alerts(db, *[low(f"b{n}") for n in range(22)])
    async with db.session() as session:
        items = list((await session.execute(select(OutboxItem).order_by(OutboxItem.id))).scalars())
        # A poster claims the first one (it records its attempt before calling Slack).
        assert await outbox.mark_attempt(session, item_id=items[0].id or 0)
    now = utcnow()
    async with db.session() as session:
        grouped = await alert_groups.group_waiting(
            session,
            department="support",
            now=now,
            threshold=20,
            open_since=now,
            max_size=5000,
            lines_per_reply=40,
        )
    assert grouped is not None
    # The attempted one stays the poster's; every other one is the summary's, and a poster
    # holding one of those may no longer post it.
    assert items[0].mention_id not in grouped.mention_ids and len(grouped.mention_ids) == 21
    async with db.session() as session:
        assert not await outbox.mark_attempt(session, item_id=items[1].id or 0)
        again = await alert_groups.group_waiting(
            session,
            department="support",
            now=now,
            threshold=0,
            open_since=now,
            max_size=5000,
            lines_per_reply=40,
        )
    assert again is None, "a mention is listed in one summary at most"


async def test_the_loop_and_a_flush_side_by_side_post_each_item_once(
    db: Database, fake_slack: FakeSlackApi
) -> None:
    """Both read the due lanes; reading and marking a lane busy must be one step, or both
    deliver the same items (seen as a doubled SLA DM when a test flushed beside the loop)."""
    delivery, clock, _ = await setup(db, fake_slack)
    for n in range(5):
        mention_id = await make_mention(db, external_id=f"burst-{n}")
        async with db.session() as session:
            outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=mention_id)
    clock.advance(seconds=1)  # the delivery's clock stands still; these are due now too
    # Slow answers keep each post in flight while another reader could take the same item.
    fake_slack.fail("chat.postMessage", delay=0.2, times=6)
    loop = asyncio.create_task(delivery.run())
    try:
        await asyncio.gather(*(delivery.flush() for _ in range(3)))
        deadline = asyncio.get_running_loop().time() + 10
        while set(await statuses(db)) != {OutboxStatus.DONE}:
            assert asyncio.get_running_loop().time() < deadline, await statuses(db)
            await asyncio.sleep(0.02)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    outbox_ids = [
        message["metadata"]["event_payload"]["outbox_id"]
        for message in fake_slack.messages("C0SUPPORT")
    ]
    assert sorted(outbox_ids) == sorted(set(outbox_ids)), "an alert was posted twice"
    assert len(outbox_ids) == 6
