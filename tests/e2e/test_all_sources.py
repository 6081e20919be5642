"""Every source type at once: posts from each public API become alerts in the routed channels.

One local server plays Hacker News, Reddit, a Mastodon instance, Bluesky, Stack Exchange,
GitHub, the App Store and a blog's RSS feed; the real Earful (runtime, poller, delivery and
Bolt app over HTTP) is pointed at it through its base-URL settings and talks to the fake Slack.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from bot.settings import Settings
from storage.db import Database
from storage.models import Mention, SourceState
from storage.types import utcnow
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import SlackRequestSigner
from tests.support.earful import Earful, start_earful
from tests.support.public_apis import LABELS, PATHS, Expected, PublicApis

# Every department has a channel, so wherever triage sends a post, its alert goes out.
ROUTES = {
    "support": ("C0SUPPORT", "support"),
    "product": ("C0PRODUCT", "product"),
    "pr": ("C0PRCOMMS", "pr-comms"),
    "sales": ("C0SALES", "sales"),
    "hr": ("C0GENERAL", "general"),
    "legal": ("C0GENERAL", "general"),
    "exec": ("C0GENERAL", "general"),
    "research": ("C0GENERAL", "general"),
    "competitive": ("C0GENERAL", "general"),
}
GITHUB_LOGIN_WALL = (
    "<!DOCTYPE html><html lang='en'><head><title>Sign in to GitHub · GitHub</title></head>"
    "<body><form action='/session'><input name='login'></form></body></html>"
)
BLUESKY_REFUSAL = json.dumps(
    {"error": "Forbidden", "message": "searchPosts is not available to anonymous users"}
)


@dataclass
class Deployment:
    """Earful as an operator runs it: started, stopped and started again on one database."""

    settings: Settings
    slack: FakeSlackApi
    signer: SlackRequestSigner
    running: tuple[Earful, TestServer] | None = None

    async def start(self) -> Earful:
        assert self.running is None, "already running"
        self.running = await start_earful(self.settings, self.slack, self.signer)
        return self.running[0]

    async def stop(self) -> None:
        if self.running is None:
            return
        earful, server = self.running
        self.running = None
        await earful.http.close()
        await server.close()
        await earful.runtime.stop()


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def set_up_watch(earful: Earful, apis: PublicApis) -> None:
    for department, (channel, name) in ROUTES.items():
        reply = await earful.command(f"route {department} <#{channel}|{name}>")
        assert department in reply["text"], reply
    reply = await earful.command(
        f'watch add acme "acme" sources={apis.sources_option()} kind=brand every=1m'
    )
    assert "saved" in reply["text"], reply
    assert "9 source(s)" in reply["text"], reply


async def source_states(earful: Earful) -> dict[str, SourceState]:
    async with earful.runtime.db.session() as session:
        rows = (await session.execute(select(SourceState))).scalars().all()
    return {row.source: row for row in rows}


async def mentions(earful: Earful) -> list[Mention]:
    async with earful.runtime.db.session() as session:
        return list((await session.execute(select(Mention))).scalars().all())


async def wait_for_polls(earful: Earful, apis: PublicApis, *, after: datetime | None) -> None:
    """Until every source of the watch has been polled (since ``after``, if given)."""

    async def polled() -> bool:
        states = await source_states(earful)
        return set(states) == set(apis.specs.values()) and all(
            s.last_poll_at is not None and (after is None or s.last_poll_at >= after)
            for s in states.values()
        )

    await wait_until(polled, within=20)


async def wait_for_alerts(earful: Earful, expected: list[Expected]) -> list[Mention]:
    """Until every expected post is a mention and every mention is posted; returns them.

    Call it once polling is done: then every mention there will be is already stored.
    """

    async def posted() -> bool:
        stored = await mentions(earful)
        done = {(m.source, m.external_id) for m in stored}
        # A mention that joined a known story has no card of its own (bot/clustering.py).
        alerted = [m for m in stored if m.state != "merged"]
        return all(m.ts for m in alerted) and all(e.keys & done for e in expected)

    await wait_until(posted)
    return await mentions(earful)


def assert_found_exactly(stored: list[Mention], expected: list[Expected]) -> None:
    """Each expected post is a mention under (one of) the source(s) that return it, and
    nothing else is: the posts that don't mention Acme were matched and left out."""
    found = {(m.source, m.external_id) for m in stored}
    for post in expected:
        assert post.keys & found, f"no mention of {post}"
    assert found <= set().union(*(post.keys for post in expected)), "unexpected mentions"


def assert_alert_cards(fake_slack: FakeSlackApi, stored: list[Mention]) -> None:
    """One card per story, in its department's channel, naming its source: a mention that
    retells a story already alerted joins it instead (bot/clustering.py)."""
    stored = [m for m in stored if m.state != "merged"]
    for mention in stored:
        assert mention.channel == ROUTES[mention.department][0], mention
        [card] = [m for m in fake_slack.messages(mention.channel) if m["ts"] == mention.ts]
        assert card["blocks"], card
        blocks = json.dumps(card["blocks"], ensure_ascii=False)
        assert LABELS[mention.source.partition(":")[0]] in blocks, blocks
        assert card["metadata"]["event_payload"]["mention_id"] == mention.id
    cards = Counter(
        message["metadata"]["event_payload"]["mention_id"]
        for channel in {channel for channel, _ in ROUTES.values()}
        for message in fake_slack.messages(channel, include_replies=False)
        if "metadata" in message
    )
    assert cards == Counter(m.id for m in stored), "exactly one card per story"
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if "thread_ts" not in c.args]
    assert len(posts) == len(stored)
    assert not fake_slack.violations, fake_slack.violations


async def status_by_source(earful: Earful) -> tuple[str, dict[str, str]]:
    """The watch's line of ``/earful status`` and the line of each of its sources."""
    reply = await earful.command("status")
    [text] = [
        block["text"]["text"]
        for block in reply["blocks"]
        if block["type"] == "section" and block["text"]["text"].startswith("*acme*")
    ]
    head, *lines = text.split("\n   • ")
    return head, {line.split(": last poll", 1)[0]: line for line in lines}


def mention_count(line: str) -> int:
    match = re.search(r", (\d+) mention\(s\)", line)
    assert match, line
    return int(match.group(1))


async def test_every_source_type_alerts_in_the_routed_channel(
    deployment: Deployment, apis: PublicApis, fake_slack: FakeSlackApi
) -> None:
    apis.publish(0)
    earful = await deployment.start()
    await set_up_watch(earful, apis)

    await wait_for_polls(earful, apis, after=None)
    expected = apis.expected_in(0)
    stored = await wait_for_alerts(earful, expected)
    assert_found_exactly(stored, expected)
    assert {m.source for m in stored} == set(apis.specs.values())
    assert_alert_cards(fake_slack, stored)

    head, lines = await status_by_source(earful)
    assert ":large_green_circle: healthy" in head
    assert set(lines) == set(apis.specs.values())
    for source, line in lines.items():
        assert ":warning:" not in line, line
        assert mention_count(line) == len([m for m in stored if m.source == source]) > 0, line


async def test_broken_sources_fail_alone_and_say_why(
    deployment: Deployment, apis: PublicApis, fake_slack: FakeSlackApi
) -> None:
    apis.publish(0)
    apis.fail("github", 200, GITHUB_LOGIN_WALL, "text/html")
    apis.fail("bluesky", 403, BLUESKY_REFUSAL, "application/json")
    apis.fail("stackexchange", 500, "Internal Server Error", "text/plain")
    broken = {apis.specs[name] for name in ("github", "bluesky", "stackexchange")}
    earful = await deployment.start()
    await set_up_watch(earful, apis)

    await wait_for_polls(earful, apis, after=None)
    expected = [e for e in apis.expected_in(0) if e.source not in broken]
    stored = await wait_for_alerts(earful, expected)
    assert_found_exactly(stored, expected)
    assert {m.source for m in stored} == set(apis.specs.values()) - broken
    assert_alert_cards(fake_slack, stored)

    states = await source_states(earful)
    for source, state in states.items():
        assert (state.consecutive_failures == 1) == (source in broken), (source, state.last_error)

    head, lines = await status_by_source(earful)
    assert ":large_orange_circle: partly failing" in head
    for source, line in lines.items():
        assert (":warning:" in line) == (source in broken), line
    github, bluesky, stackexchange = (
        lines[apis.specs[name]] for name in ("github", "bluesky", "stackexchange")
    )
    assert "HTML page" in github and "login wall" in github, github
    assert "HTTP 403" in bluesky and "anonymous" in bluesky, bluesky
    assert "BLUESKY_IDENTIFIER" in bluesky, bluesky
    assert "HTTP 500" in stackexchange, stackexchange
    assert all("1 failure(s) in a row" in lines[source] for source in broken)


async def test_a_restart_resumes_where_polling_left_off(
    deployment: Deployment, apis: PublicApis, fake_slack: FakeSlackApi
) -> None:
    apis.publish(0)
    earful = await deployment.start()
    await set_up_watch(earful, apis)
    await wait_for_polls(earful, apis, after=None)
    before = await wait_for_alerts(earful, apis.expected_in(0))
    await deployment.stop()

    # While Earful is down, a new post appears on every source and the watch falls due.
    apis.publish(1)
    db = Database(deployment.settings.database_url)
    try:
        async with db.session() as session:
            await session.execute(update(SourceState).values(next_poll_at=utcnow()))
    finally:
        await db.dispose()
    apis.server.requests.clear()
    restarted_at = utcnow()

    earful = await deployment.start()
    await wait_for_polls(earful, apis, after=restarted_at)
    expected = apis.expected_in(0, 1)
    stored = await wait_for_alerts(earful, expected)
    assert_found_exactly(stored, expected)
    new = [m for m in stored if m.id not in {b.id for b in before}]
    assert {(m.source, m.external_id) for m in new} == {
        (e.source, e.external_id) for e in apis.expected_in(1)
    }, "one new mention per new post, none for the old ones"
    assert_alert_cards(fake_slack, stored)  # one card per mention: no old post twice

    # Each source asked only for what is newer than where it left off.
    def asked(name: str) -> dict[str, str]:
        [request, *_] = apis.server.seen(PATHS[name])
        return request.query

    assert asked("hn")["numericFilters"].startswith("created_at_i>=")
    assert "min_id" in asked("mastodon")
    assert "since" in asked("bluesky")
    assert "fromdate" in asked("stackexchange")
    assert "created:>=" in asked("github")["q"]


async def test_a_post_two_sources_return_gets_one_card(
    deployment: Deployment, apis: PublicApis, fake_slack: FakeSlackApi
) -> None:
    apis.publish(0)
    earful = await deployment.start()
    await set_up_watch(earful, apis)
    await wait_for_polls(earful, apis, after=None)
    stored = await wait_for_alerts(earful, apis.expected_in(0))
    reddit = Counter(m.external_id for m in stored if m.source.startswith("reddit"))
    assert reddit.most_common(1)[0][1] == 1, f"posted twice: {reddit.most_common(1)}"
