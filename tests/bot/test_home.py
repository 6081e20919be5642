from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.home import MAX_VIEW_BLOCKS, Home, HomeData, home_blocks, home_view, sla_deadlines
from bot.sla import PolicyTable
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import queries
from storage.db import Database
from storage.models import Mention, SlaPolicy
from tests.fakes.slack_api import FakeSlackApi, view_problems

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC)
HOSTILE = "<!channel> <@U0ADMIN> " + "x" * 4000


def make(external_id: str, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "hn",
        "origin": "hn",
        "external_id": external_id,
        "url": f"https://example.com/{external_id}",
        "title": HOSTILE,
        "text": HOSTILE,
        "author": "<!here>",
        "department": "support",
        "priority": "P1",
        "found_at": NOW - timedelta(hours=1),
        "updated_at": NOW,
    }
    values.update(fields)
    return Mention(**values)


def _numbers() -> queries.DayNumbers:
    return queries.DayNumbers(new=3, claimed=2, resolved=1, median_to_claim=timedelta(minutes=7))


def test_a_full_home_stays_within_slack_limits_and_escapes_source_text() -> None:
    data = HomeData(
        now=NOW,
        numbers=_numbers(),
        mine=[make(f"m{n}", id=n + 1, owner="U0BOB", state="claimed") for n in range(10)],
        queues={
            department: [make(f"{department}{n}", id=100 + n) for n in range(8)]
            for department in ("support", "pr", "legal")
        },
        open_counts={("support", "P1"): 40, ("support", "P3"): 2},
        breaches=[make(f"b{n}", id=200 + n) for n in range(10)],
        breach_scope="support, pr, legal",
    )
    view = home_view(data)
    assert view_problems(view, expected_type="home") == []
    text = json.dumps(view, ensure_ascii=False)
    assert "<!channel>" not in text and "<@U0ADMIN>" not in text and "<!here>" not in text
    assert "*Median time to claim*\\n7m" in text
    assert "*Open in support* — P1: 40, P3: 2" in text


def test_more_than_fits_is_cut_at_the_view_limit_with_a_pointer() -> None:
    data = HomeData(
        now=NOW,
        numbers=_numbers(),
        queues={
            f"dept{d}": [make(f"{d}-{n}", id=d * 100 + n + 1) for n in range(8)] for d in range(20)
        },
    )
    blocks = home_blocks(data)
    assert len(blocks) == MAX_VIEW_BLOCKS
    assert "`/earful queue` lists the rest" in json.dumps(blocks[-1])
    assert view_problems({"type": "home", "blocks": blocks}, expected_type="home") == []


def test_sla_deadlines_follow_the_policy_table() -> None:
    edited = SlaPolicy(department="support", priority="P2", ping_seconds=600)
    off = SlaPolicy(department="*", priority="P1", ping_seconds=0)
    deadlines = sla_deadlines(PolicyTable.of([edited, off]), ["support", "pr"])
    assert deadlines[("support", "P2")] == timedelta(minutes=10)
    assert deadlines[("pr", "P2")] == timedelta(hours=1)
    assert ("support", "P1") not in deadlines  # turned off for every department
    assert ("pr", "P4") not in deadlines  # P4 has no ping by default


async def test_day_numbers_count_today_only(db: Database) -> None:
    async with db.session() as session:
        stored = await mention_store.add_mentions(
            session,
            mentions=[
                make("a", found_at=MIDNIGHT + timedelta(hours=1)),
                make("b", found_at=MIDNIGHT + timedelta(hours=2)),
                make("c", found_at=MIDNIGHT + timedelta(hours=3), state="merged"),
                make("d", found_at=MIDNIGHT + timedelta(hours=3), state="muted"),
                make("e", found_at=MIDNIGHT - timedelta(hours=1)),
            ],
        )
        a, b, _, _, e = (m.id or 0 for m in stored)
        for mention_id, action, at in (
            (a, "claim", MIDNIGHT + timedelta(hours=1, minutes=10)),
            (b, "claim", MIDNIGHT + timedelta(hours=2, minutes=30)),
            (e, "claim", MIDNIGHT + timedelta(minutes=20)),
            (a, "resolve", MIDNIGHT + timedelta(hours=4)),
            (e, "resolve", MIDNIGHT - timedelta(minutes=1)),  # yesterday
        ):
            event = await mention_store.add_event(
                session,
                mention_id=mention_id,
                actor="U1",
                action=action,
                from_state=None,
                to_state=None,
            )
            event.created_at = at
    async with db.session() as session:
        numbers = await queries.day_numbers(
            session, since=MIDNIGHT, until=MIDNIGHT + timedelta(days=1)
        )
    assert (numbers.new, numbers.claimed, numbers.resolved) == (2, 3, 1)
    # Claims took 10 minutes, 30 minutes and 80 minutes: the median is 30.
    assert numbers.median_to_claim == timedelta(minutes=30)


async def test_home_shows_my_departments_and_their_breaches(db: Database) -> None:
    async with db.session() as session:
        await lead_store.set_lead(session, department="pr", user_id="U0BOB", updated_by=None)
        stored = await mention_store.add_mentions(
            session,
            mentions=[
                make("mine", owner="U0BOB", state="claimed"),
                make("late-pr", department="pr", found_at=NOW - timedelta(hours=1)),
                make("fresh-pr", department="pr", found_at=NOW - timedelta(minutes=5)),
                make("late-legal", department="legal", found_at=NOW - timedelta(hours=1)),
                make("acted", department="product", priority="P4"),
            ],
        )
        await mention_store.add_event(
            session,
            mention_id=stored[4].id or 0,
            actor="U0BOB",
            action="escalate",
            from_state="new",
            to_state="escalated",
        )
    home = Home(db, client=AsyncWebClient(token="xoxb-unused"), clock=lambda: NOW)
    data = await home.gather(user_id="U0BOB")
    assert list(data.queues) == ["pr", "product"]
    assert [m.external_id for m in data.mine] == ["mine"]
    assert [m.external_id for m in data.queues["pr"]] == ["late-pr", "fresh-pr"]
    # P1 waits 15 minutes by default; legal is not Bob's department.
    assert [m.external_id for m in data.breaches] == ["late-pr"]
    assert data.breach_scope == "pr, product"
    nobody = await home.gather(user_id="U0NOBODY")
    assert nobody.queues == {} and nobody.breach_scope == "every department"
    assert {m.external_id for m in nobody.breaches} == {"late-pr", "late-legal"}


async def test_publishes_asked_for_during_a_build_fold_into_one_more(
    sqlite_url: str, fake_slack: FakeSlackApi
) -> None:
    db = Database(sqlite_url)
    home = Home(db, client=AsyncWebClient(token="xoxb-test", base_url=fake_slack.url))
    # The first publish is answered late: the clicks below arrive while it is in progress.
    fake_slack.fail("views.publish", delay=0.5)
    try:
        first = asyncio.create_task(home.publish(user_id="U0ALICE"))
        # Recorded on arrival, answered later (wait_for waits for answers).
        async with asyncio.timeout(30):
            while not fake_slack.calls_to("views.publish"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        async with db.session() as session:
            await mention_store.add_mentions(
                session, mentions=[make("late", owner="U0ALICE", state="claimed", title="Late")]
            )
        await asyncio.gather(*(home.publish(user_id="U0ALICE") for _ in range(10)))
        await asyncio.wait_for(first, timeout=30)
    finally:
        await db.dispose()
    published = fake_slack.calls_to("views.publish")
    assert len(published) == 2
    # The second build shows what changed while the first was being published.
    assert "Late" in json.dumps(published[-1].args["view"])
    assert "Late" not in json.dumps(published[0].args["view"])
