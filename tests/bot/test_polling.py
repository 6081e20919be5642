"""The poller: fetch, match every watch of the source in one pass, store, queue alerts."""

from __future__ import annotations

from sqlalchemy import select

from bot.polling import Poller
from bot.scoring import Scorer
from storage import watches as watch_store
from storage.db import Database
from storage.models import FetchedPost, Mention, OutboxItem
from tests.support.feeds import FeedItem, FeedServer, rss
from tests.support.local_http import local_policy
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
