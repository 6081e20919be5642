"""The outbox delivers through Slack faults: delayed, never dropped, never posted twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.delivery import Delivery
from storage import outbox
from storage import routes as route_store
from storage.db import Database
from storage.models import Mention, OutboxItem, OutboxKind, OutboxStatus
from storage.types import utcnow
from tests.bot.test_workflow import make_mention
from tests.fakes.slack_api import FakeSlackApi


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
    posting = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.url,
        timeout=client_timeout,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    delivery = Delivery(
        db, client=client, posting_client=posting, clock=clock, per_channel_interval=0
    )
    return delivery, clock, mention_id


async def statuses(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(select(OutboxItem.status))).scalars())


async def test_rate_limit_is_waited_out(db: Database, fake_slack: FakeSlackApi) -> None:
    delivery, _, _ = await setup(db, fake_slack)
    fake_slack.fail("chat.postMessage", status=429, retry_after=1)
    assert await delivery.flush() == 1
    assert len(fake_slack.messages("C0SUPPORT")) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 2  # the 429, then the post
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
