"""Mrkdwn tricks in posts from a real (local) feed never become live markup anywhere in Slack.

The posts travel the whole way: polled over HTTP, matched, stored, alerted; then claimed and
resolved (card updates and thread replies), listed in the queue and in search, shown in App
Home and the digest, and quoted in a crisis alert. Everything the fake Slack received and every
answer the app gave is then read the way Slack reads it (see ``slack_markup``).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.ids import ActionId
from storage import watches as watch_store
from storage.models import Mention, MentionState
from tests.bot.test_spikes import seed_week
from tests.e2e.test_alert_flow import wait_until
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import app_home_opened
from tests.security.slack_markup import inspect
from tests.support.earful import ADMIN, Earful
from tests.support.feeds import FeedItem, FeedServer, rss

ZWSP, ZWNJ, ZWJ, WJ, BOM, RLO, PDF = (
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u202e",
    "\u202c",
)
TRICKS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0123|@team>",
    "<@U0123>",
    "<@U0ADMIN>",
    "<#C0123>",
    "<#C0EXECS|execs>",
    "<https://evil.example|https://good.example>",
    "<https://evil.example>",
    "<mailto:ceo@evil.example|Support>",
    "&lt;!channel&gt;",
    "&amp;lt;!here&amp;gt;",
    "&#60;!channel&#62;",
    f"<{ZWSP}!channel>",
    f"<!{ZWNJ}here>",
    f"{ZWJ}<!everyone>{ZWJ}",
    f"<{WJ}@U0123>",
    f"{BOM}<#C0123>{BOM}",
    f"{RLO}<!here>{PDF} moc.elgoog",
    "`<!here>` and ```<!channel>```",
    "*<!here>* _<@U0123>_ ~<#C0123>~",
    "[click](https://evil.example) <https://evil.example|[click](https://good.example)>",
    "<<!channel>> <!channel|channel> <!date^1^{date}|today>",
    "a long line " + "<!channel>&" * 600,
]
WORDS = [
    "login", "billing", "refund", "outage", "crash", "slow", "broken", "invoice", "export",
    "sync", "password", "upload", "mobile", "desktop", "update", "settings", "account", "team",
    "admin", "report", "dashboard", "search",
]  # fmt: skip
# Negative on purpose: together they are a spike, so the crisis alert quotes them too.
MOODS = ["awful", "terrible", "horrible", "furious", "hate", "worst", "disaster", "angry"]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Escaping happens in rendering, the same on every engine; SQLite keeps the test quick."""
    return sqlite_url


def corpus_items() -> list[FeedItem]:
    items = []
    for i, trick in enumerate(TRICKS):
        pick = random.Random(i)
        words = " ".join(pick.sample(WORDS, 8))
        mood = " ".join(pick.sample(MOODS, 3))
        items.append(
            FeedItem(
                guid=f"trick-{i}",
                title=f"Acme {trick} #{i}",
                description=f"{trick} Acme {mood}: {words} {trick}",
                link=f"https://example.com/t/{i}",
                author=f"{trick} (Mallory {i})",
            )
        )
    return items


def collect(fake_slack: FakeSlackApi, answers: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    shown = {
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "views.publish",
        "views.open",
        "views.update",
        "response_url",
    }
    sent: list[tuple[str, Any]] = [
        (c.method, c.args) for c in fake_slack.calls if c.method in shown
    ]
    return sent + [("http answer", a) for a in answers]


async def test_mrkdwn_tricks_from_a_feed_stay_inert_everywhere(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    routes = {
        "support": "C0SUPPORT",
        "product": "C0PRODUCT",
        "pr": "C0PRCOMMS",
        "sales": "C0SALES",
        "exec": "C0EXECS",
    }
    for department, channel in routes.items():
        await earful.command(f"route {department} <#{channel}|x>")
    for department in ("hr", "legal", "research", "competitive"):
        await earful.command(f"route {department} <#C0GENERAL|general>")
    feed_url = feed_server.serve("/tricks.xml", rss(corpus_items()))
    reply = await earful.command(f'watch add acme "acme" sources=rss:{feed_url} kind=brand')
    assert "saved" in reply["text"], reply

    async def all_alerted() -> bool:
        async with earful.runtime.db.session() as session:
            found = (await session.execute(select(Mention))).scalars().all()
        return len(found) == len(TRICKS) and all(
            m.ts or m.state == MentionState.MERGED for m in found
        )

    await wait_until(all_alerted, within=60)

    # Work one alert: claim and resolve update the card and reply in its thread.
    channel, alert = next(
        (c, m) for c in routes.values() for m in fake_slack.messages(c, include_replies=False)
    )
    assert await earful.click(channel, alert, ActionId.CLAIM, user_id=ADMIN) == 200
    await fake_slack.wait_for("chat.update")
    [claimed] = [m for m in fake_slack.messages(channel) if m["ts"] == alert["ts"]]
    assert await earful.click(channel, claimed, ActionId.RESOLVE, user_id=ADMIN) == 200
    await fake_slack.wait_for("chat.update", 2)

    answers = [
        await earful.command("queue"),
        await earful.command("queue support"),
        await earful.command("mine"),
        await earful.command("search acme"),
        await earful.command("search mallory"),
        await earful.command("digest preview"),
        await earful.command("status"),
        await earful.command("watch list"),
    ]
    assert await earful.event(app_home_opened(ADMIN)) == 200
    await fake_slack.wait_for("views.publish")

    # A week of calm, then this burst: the crisis alert quotes the posts.
    async with earful.runtime.db.session() as session:
        watch = await watch_store.get_watch(session, name="acme")
        assert watch is not None
        watch.created_at = datetime.now(UTC) - timedelta(days=8)
    end = datetime.now(UTC).replace(microsecond=0)
    await seed_week(earful.runtime.db, "acme", per_hour=3, end=end, negative_every=10)
    assert await earful.runtime.spikes.check()

    async def crisis_posted() -> bool:
        return any(
            "crisis" in m.get("text", "").lower()
            for c in ("C0PRCOMMS", "C0EXECS")
            for m in fake_slack.messages(c)
        )

    await wait_until(crisis_posted, within=40)

    sent = collect(fake_slack, answers)
    link_hosts = frozenset({"example.com", "127.0.0.1", "earful-test.slack.com"})
    problems = [
        f"{where}: {problem}"
        for where, payload in sent
        for problem in inspect(payload, link_hosts=link_hosts)
    ]
    assert problems == [], "\n".join(problems)
    # The tricks are shown, as text: the escaped forms reached Slack.
    everything = json.dumps([payload for _, payload in sent], ensure_ascii=False)
    for shown in ("&lt;!channel&gt;", "&lt;@U0123&gt;", "&amp;lt;!channel&amp;gt;", "Mallory"):
        assert shown in everything, shown
    assert any("crisis" in json.dumps(p).lower() for _, p in sent)
