"""One story on a blog's feed, Hacker News and Reddit: one alert, "also seen on", one note.

The real Earful (runtime, poller, clustering, delivery, Bolt app over HTTP) reads a local
server that plays the three public APIs, and posts to the fake Slack. The blog and Hacker News
link the same article with different tracking parameters; Reddit retells the text in its own
words. Then Earful restarts on the same database and must repeat nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from storage.db import Database
from storage.models import Cluster, Mention, MentionState, SourceState
from storage.types import utcnow

# The deployment (real runtime + local public APIs, restartable) is the all-sources test's.
from tests.e2e.test_all_sources import ROUTES, Deployment, wait_until
from tests.fakes.slack_api import FakeSlackApi
from tests.support.earful import Earful
from tests.support.feeds import FeedItem
from tests.support.public_apis import PublicApis, base36, iso_z

ARTICLE = "https://www.news.example.com/2026/11/acme-cloud-outage"
STORY = (
    "Acme Cloud went down this morning and took customer dashboards, the public API and the "
    "billing portal with it for almost three hours. The status page stayed green the whole "
    "time, support tickets went unanswered, and engineers only restored service after rolling "
    "back a configuration change to the load balancers in the European region."
)
RETOLD = (
    "Anyone else hit by this? "
    + STORY.replace("this morning", "today").replace("Acme Cloud", "acme cloud")
    + " Not impressed."
)


def sources(apis: PublicApis) -> list[str]:
    return [apis.specs["rss"], "hn", "reddit"]


def blog_post(apis: PublicApis) -> None:
    apis.feed_items.append(
        FeedItem(
            "https://news.example.com/p/1",
            "Acme Cloud outage takes down dashboards",
            STORY,
            ARTICLE + "?utm_source=rss&utm_medium=feed",
            published=datetime.fromtimestamp(apis.t0, UTC),
        )
    )


def hn_story(apis: PublicApis) -> None:
    at = apis.t0 + 30
    apis.hn_hits.append(
        {
            "created_at": iso_z(at),
            "title": "Acme Cloud was down for three hours",
            "url": ARTICLE + "/?utm_source=hackernews&ref=hn",
            "author": "jdoe",
            "points": 42,
            "story_text": None,
            "comment_text": None,
            "num_comments": 3,
            "created_at_i": at,
            "_tags": ["story", "author_jdoe", "story_41999001"],
            "objectID": "41999001",
        }
    )


def reddit_post(apis: PublicApis, serial: int, sub: str = "sysadmin") -> None:
    at = apis.t0 + 60 + serial
    id36 = base36(1_950_000_000 + serial)
    permalink = f"/r/{sub}/comments/{id36}/acme_cloud_down/"
    apis.reddit_things.append(
        {
            "kind": "t3",
            "data": {
                "subreddit": sub,
                "selftext": RETOLD,
                "title": "Acme Cloud down for three hours?",
                "name": f"t3_{id36}",
                "score": 17,
                "is_self": True,
                "created": float(at),
                "created_utc": float(at),
                "id": id36,
                "author": "throwaway_ops",
                "num_comments": 4,
                "permalink": permalink,
                "url": f"https://www.reddit.com{permalink}",
            },
        }
    )


async def mentions(earful: Earful) -> list[Mention]:
    async with earful.runtime.db.session() as session:
        return list((await session.execute(select(Mention).order_by(Mention.id))).scalars())  # type: ignore[arg-type]


def top_level_cards(fake_slack: FakeSlackApi) -> list[tuple[str, dict[str, Any]]]:
    return [
        (channel, message)
        for channel in sorted({channel for channel, _ in ROUTES.values()})
        for message in fake_slack.messages(channel, include_replies=False)
        if "metadata" in message
    ]


def replies(fake_slack: FakeSlackApi, channel: str, ts: str) -> list[str]:
    return [
        m["text"]
        for m in fake_slack.messages(channel)
        if m.get("thread_ts") == ts and m["ts"] != ts
    ]


async def set_up(earful: Earful, apis: PublicApis) -> None:
    for department, (channel, name) in ROUTES.items():
        reply = await earful.command(f"route {department} <#{channel}|{name}>")
        assert department in reply["text"], reply
    reply = await earful.command(
        f'watch add acme "acme" sources={",".join(sources(apis))} kind=brand every=1m'
    )
    assert "saved" in reply["text"], reply


async def restart(deployment: Deployment) -> Earful:
    await deployment.stop()
    db = Database(deployment.settings.database_url)
    try:
        async with db.session() as session:
            await session.execute(update(SourceState).values(next_poll_at=utcnow()))
    finally:
        await db.dispose()
    return await deployment.start()


async def polled_since(earful: Earful, at: datetime) -> bool:
    async with earful.runtime.db.session() as session:
        states = list((await session.execute(select(SourceState))).scalars())
    return len(states) == 3 and all(s.last_poll_at and s.last_poll_at >= at for s in states)


async def test_one_story_on_three_sources_is_one_card_that_grows(
    deployment: Deployment, apis: PublicApis, fake_slack: FakeSlackApi
) -> None:
    blog_post(apis)
    hn_story(apis)
    reddit_post(apis, 1)
    earful = await deployment.start()
    await set_up(earful, apis)

    async def story_told() -> bool:
        stored = await mentions(earful)
        lead = [m for m in stored if m.state != MentionState.MERGED]
        return (
            len(stored) == 3
            and len(lead) == 1
            and lead[0].ts is not None
            and bool(replies(fake_slack, lead[0].channel or "", lead[0].ts))
            and "(+2)" in json.dumps(top_level_cards(fake_slack), ensure_ascii=False)
        )

    await wait_until(story_told, within=20)
    stored = await mentions(earful)
    [lead] = [m for m in stored if m.state != MentionState.MERGED]
    assert {m.source for m in stored} == set(sources(apis))
    assert lead.channel is not None and lead.ts is not None
    [(channel, card)] = top_level_cards(fake_slack)
    assert (channel, card["ts"]) == (lead.channel, lead.ts), "exactly one alert card"
    blocks = json.dumps(card["blocks"], ensure_ascii=False)
    [story] = [line for line in _texts(card["blocks"]) if "Also seen on" in line]
    head = story.split(" (+2)")[0]
    others = {"RSS", "Hacker News", "Reddit"} - {_label(lead.source)}
    prefix = "🧵 *Also seen on* "
    assert head.startswith(prefix) and set(head.removeprefix(prefix).split(", ")) == others, story
    assert story.count("<https://") == 2, "links to the other two posts"
    assert "Watches: acme" in blocks and "Rule:" in blocks, blocks
    assert "spreading: now on 3 sources, 3 posts" in blocks, "the priority says why it rose"
    assert fake_slack.calls_to("chat.update"), "the card was updated in place"
    assert replies(fake_slack, lead.channel, lead.ts) == ["📈 Spreading: now on 3 sources, 3 posts"]
    async with earful.runtime.db.session() as session:
        [cluster] = (await session.execute(select(Cluster))).scalars().all()
    assert cluster.lead_mention_id == lead.id and cluster.size == 3
    posted = len(fake_slack.calls_to("chat.postMessage"))

    # A restart: every source is polled again, the feed repeats its item, and nothing is said
    # twice.
    restarted_at = utcnow()
    earful = await restart(deployment)
    await wait_until(lambda: polled_since(earful, restarted_at), within=20)
    await earful.runtime.services.delivery.flush()
    assert len(await mentions(earful)) == 3
    assert len(fake_slack.calls_to("chat.postMessage")) == posted

    # A fourth copy after the restart joins the story from the rebuilt index: the card counts
    # it, and four posts cross no new threshold, so the thread stays as it was.
    reddit_post(apis, 2, sub="acmeusers")
    async with earful.runtime.db.session() as session:
        await session.execute(update(SourceState).values(next_poll_at=utcnow()))

    async def counted() -> bool:
        [(_, card)] = top_level_cards(fake_slack)
        return "(+3)" in json.dumps(card["blocks"], ensure_ascii=False)

    await wait_until(counted, within=20)
    stored = await mentions(earful)
    assert len(stored) == 4 and stored[-1].state == MentionState.MERGED
    assert len(fake_slack.calls_to("chat.postMessage")) == posted
    assert replies(fake_slack, lead.channel, lead.ts) == ["📈 Spreading: now on 3 sources, 3 posts"]
    assert len(top_level_cards(fake_slack)) == 1
    assert not fake_slack.violations, fake_slack.violations


def _label(source: str) -> str:
    return {"rss": "RSS", "hn": "Hacker News", "reddit": "Reddit"}[source.partition(":")[0]]


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        element["text"]
        for block in blocks
        if block["type"] == "context"
        for element in block["elements"]
        if "text" in element
    ]
