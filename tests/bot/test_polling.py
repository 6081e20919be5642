"""The poller: fetch, match every watch of the source in one pass, store, queue alerts."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlmodel import col

from bot.polling import MENTIONS_PER_TRANSACTION, Poller
from bot.scoring import SCORE_CHUNK, Scorer
from storage import mentions as mention_store
from storage import watches as watch_store
from storage.db import Database
from storage.models import (
    Cluster,
    Event,
    FetchedPost,
    Mention,
    MentionState,
    OutboxItem,
    OutboxKind,
)
from tests.support.feeds import FeedItem, FeedServer, rss
from tests.support.local_http import local_policy
from watchers.departments import WatchKind
from watchers.enrich import enrich
from watchers.http import HttpFetcher


async def add(
    db: Database, name: str, query: str, kind: str, source: str, exclude: str | None = None
) -> None:
    async with db.session() as session:
        watch = await watch_store.create_watch(
            session,
            name=name,
            query=query,
            kind=kind,
            department=None,
            sources=[source],
            interval_seconds=300,
            created_by="U0ALICE",
        )
        watch.exclude = exclude


async def test_one_post_many_watches_one_mention(db: Database, feed_server: FeedServer) -> None:
    url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem(
                    "1", "Switching", "We are switching from Globex to Acme", "https://e.com/1"
                ),
                FeedItem("2", "Globex", "Globex raised prices again", "https://e.com/2"),
                FeedItem("3", "Acme careers", "Acme is hiring in Acmeville", "https://e.com/3"),
                FeedItem("4", "Weather", "Sunny all week", "https://e.com/4"),
            ]
        ),
    )
    source = f"rss:{url}"
    await add(db, "globex", "globex", "competitor", source)
    await add(db, "acme", "acme", "brand", source, exclude="acmeville")
    async with HttpFetcher(local_policy()) as fetcher:
        poller = Poller(db, fetcher=fetcher, scorer=Scorer(0))
        outcomes = await poller.tick()
        again = await poller.tick(everything=True)
    assert sum(o.new_mentions for o in outcomes) == 2
    assert sum(o.new_mentions for o in again) == 0, "a post is never alerted twice"
    async with db.session() as session:
        mentions = {m.external_id: m for m in (await session.execute(select(Mention))).scalars()}
        kept = (await session.execute(select(FetchedPost))).scalars().all()
        alerts = (await session.execute(select(OutboxItem))).scalars().all()
    assert set(mentions) == {"1", "2"}
    assert mentions["1"].watch_name == "acme" and mentions["1"].watches == ["acme", "globex"]
    assert set(mentions["1"].matched_terms) == {"acme", "globex"}
    assert mentions["2"].watch_name == "globex" and mentions["2"].watch_kind == "competitor"
    assert mentions["2"].department in ("competitive", "sales")
    assert len(alerts) == 2
    # Every fetched post is kept for `watch test`, matched or not, once.
    assert sorted(p.external_id for p in kept) == ["1", "2", "3", "4"]


OUTAGE = (
    "Acme Cloud is down again: dashboards and the public API have been failing for three hours "
    "and support has not answered a single ticket"
)


async def test_one_story_on_two_feeds_is_one_alert(db: Database, feed_server: FeedServer) -> None:
    article = "https://www.news.example/acme-outage"
    first = feed_server.serve(
        "/a.xml",
        rss(
            [
                FeedItem("a1", "Acme outage", OUTAGE, article + "?utm_source=rss&utm_medium=feed"),
                FeedItem("a2", "Acme pricing", "Acme raised prices for teams", "https://e.com/p"),
            ]
        ),
    )
    second = feed_server.serve(
        "/b.xml",
        rss(
            [
                # The same page, shared with other tracking parameters.
                FeedItem("b1", "Outage at Acme", "Read this: " + OUTAGE, article + "/?fbclid=Z"),
                # Not the same page, but the same text retold (the feeds are polled in parallel,
                # so b1 carries the text too: whichever copy is stored first leads).
                FeedItem("b2", "Acme", "UPDATE: " + OUTAGE + " #acme", "https://blog.example/x"),
            ]
        ),
    )
    async with db.session() as session:
        await watch_store.create_watch(
            session,
            name="acme",
            query="acme",
            kind="brand",
            department=None,
            sources=[f"rss:{first}", f"rss:{second}"],
            interval_seconds=300,
            created_by="U0ALICE",
        )
    async with HttpFetcher(local_policy()) as fetcher:
        poller = Poller(db, fetcher=fetcher, scorer=Scorer(0))
        await poller.tick(everything=True)
        again = await poller.tick(everything=True)
    assert sum(o.new_mentions for o in again) == 0
    async with db.session() as session:
        mentions = {m.external_id: m for m in (await session.execute(select(Mention))).scalars()}
        items = (await session.execute(select(OutboxItem))).scalars().all()
        clusters = (await session.execute(select(Cluster))).scalars().all()
    assert set(mentions) == {"a1", "a2", "b1", "b2"}, "every copy is stored"
    alerted = {item.mention_id for item in items if item.kind == OutboxKind.ALERT}
    lead = next(m for m in mentions.values() if m.id in alerted and m.external_id != "a2")
    assert alerted == {lead.id, mentions["a2"].id}, "one alert per story"
    [cluster] = clusters
    assert cluster.lead_mention_id == lead.id and cluster.size == 3
    merged = [m for m in mentions.values() if m.state == MentionState.MERGED]
    assert len(merged) == 2 and all(m.cluster_id == cluster.id for m in merged)
    assert lead.canonical_url == "https://news.example/acme-outage" or lead.external_id == "b2"
    assert all(m.minhash for m in mentions.values() if m.external_id in ("a1", "b2"))
    updates = [i for i in items if i.kind == OutboxKind.CARD_UPDATE]
    assert updates and {i.mention_id for i in updates} == {lead.id}


async def test_a_burst_of_one_story_raises_the_priority(
    db: Database, feed_server: FeedServer
) -> None:
    retold = [f"{prefix} {OUTAGE}" for prefix in ("Ugh.", "Again!", "Seriously:", "FYI", "PSA:")]
    url = feed_server.serve(
        "/feed.xml",
        rss([FeedItem(str(i), "", text, f"https://e.com/{i}") for i, text in enumerate(retold)]),
    )
    await add(db, "acme", "acme", "brand", f"rss:{url}")
    async with HttpFetcher(local_policy()) as fetcher:
        await Poller(db, fetcher=fetcher, scorer=Scorer(0)).tick()
    async with db.session() as session:
        mentions = (await session.execute(select(Mention))).scalars().all()
    [lead] = [m for m in mentions if m.state == MentionState.NEW]
    assert len(mentions) == 5
    assert "spreading (5 similar posts)" in lead.priority_reason, lead.priority_reason
    # The same text without the burst: one level lower.
    alone = enrich(title=None, text=retold[0], kind=WatchKind.BRAND)
    assert lead.priority < alone.priority.value, (lead.priority, alone.priority)


async def test_a_burst_filed_in_several_transactions_is_one_poll(
    db: Database, feed_server: FeedServer
) -> None:
    """A burst is stored in several short transactions (MENTIONS_PER_TRANSACTION each), part
    by part as the pool scores it (SCORE_CHUNK each), yet the poll stays one batch: copies of
    a story started earlier in the same poll join it without a traction note, as they would
    in a single transaction."""
    rng = random.Random(3)
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]

    def unrelated() -> str:
        return "Acme " + " ".join(rng.choice(words) + str(rng.randrange(10**6)) for _ in range(12))

    first_part = max(MENTIONS_PER_TRANSACTION, SCORE_CHUNK)
    items = [FeedItem("lead", "", OUTAGE, "https://e.com/lead")]
    items += [FeedItem(f"f{i}", "", unrelated(), f"https://e.com/f{i}") for i in range(first_part)]
    # Three copies, filed in the next transaction: the story reaches 4 posts, past the first
    # traction threshold (3), which would post a "spreading" note if they were a later poll.
    items += [FeedItem(f"c{i}", "", f"{OUTAGE} {i}", f"https://e.com/c{i}") for i in range(3)]
    url = feed_server.serve("/feed.xml", rss(items))
    await add(db, "acme", "acme", "brand", f"rss:{url}")
    async with HttpFetcher(local_policy()) as fetcher:
        [outcome] = await Poller(db, fetcher=fetcher, scorer=Scorer(0)).tick()
    assert outcome.error is None and outcome.new_mentions == len(items)
    async with db.session() as session:
        mentions = {m.external_id: m for m in (await session.execute(select(Mention))).scalars()}
        [cluster] = (await session.execute(select(Cluster))).scalars().all()
        traction = await session.execute(
            select(Event).where(col(Event.action) == mention_store.TRACTION_ACTION)
        )
        replies = await session.execute(
            select(OutboxItem).where(col(OutboxItem.kind) == OutboxKind.THREAD_REPLY)
        )
        assert traction.scalars().all() == [] and replies.scalars().all() == []
    lead = mentions["lead"]
    assert cluster.lead_mention_id == lead.id and cluster.size == 4
    assert all(mentions[f"c{i}"].state == MentionState.MERGED for i in range(3))
    assert all(mentions[f"c{i}"].cluster_id == cluster.id for i in range(3))
    assert sum(1 for m in mentions.values() if m.state == MentionState.NEW) == 1 + first_part
