"""A source is untrusted: absurd field sizes are capped before anything is stored."""

from __future__ import annotations

from sqlalchemy import select

from bot.polling import Poller
from bot.scoring import Scorer
from storage import watches as watch_store
from storage.db import Database
from storage.models import FetchedPost, Mention, SourceState
from tests.support.feeds import FeedItem, FeedServer, rss
from tests.support.local_http import local_policy
from watchers.base import MAX_EXTERNAL_ID, MAX_TEXT, MAX_TITLE, Post, stable_id
from watchers.http import HttpFetcher


def test_post_caps_every_field_it_stores() -> None:
    post = Post(
        source="rss:https://example.com/feed.xml",
        external_id="g" * 100_000,
        url="https://example.com/" + "a" * 10_000,
        author="x" * 10_000,
        title="t" * 1_000_000,
        text="acme " * 1_000_000,
        published_at=None,
        language="en-" + "x" * 100,
        raw="r" * 1_000_000,
    )
    assert len(post.external_id) <= MAX_EXTERNAL_ID
    assert post.external_id == stable_id("g" * 100_000), "the same post gets the same id"
    assert stable_id("g" * 100_000) != stable_id("g" * 99_999)
    assert post.url is None, "a cut URL would link somewhere else; none is better"
    assert len(post.title or "") == MAX_TITLE and (post.title or "").endswith("…")
    assert len(post.text) == MAX_TEXT
    assert post.language is None
    assert post.author is not None and len(post.author) <= 200
    assert post.raw is not None and len(post.raw) <= 16_384


def test_ordinary_posts_are_untouched() -> None:
    post = Post("rss:x", "guid-1", "https://e.com/1", "carol", "Title", "Acme is down", None, "en")
    assert (post.external_id, post.url, post.title, post.text, post.language) == (
        "guid-1",
        "https://e.com/1",
        "Title",
        "Acme is down",
        "en",
    )


async def test_a_feed_with_giant_fields_is_stored_once_and_keeps_polling(
    db: Database, feed_server: FeedServer
) -> None:
    giant_guid = "urn:giant:" + "g" * 50_000  # past PostgreSQL's unique-index row limit
    url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem(giant_guid, "Acme " + "t" * 200_000, "acme " * 100_000, "https://e.com/1"),
                FeedItem("ok-1", "Acme pricing", "Acme raised prices", "https://e.com/2"),
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
            sources=[f"rss:{url}"],
            interval_seconds=300,
            created_by="U0ALICE",
        )
    async with HttpFetcher(local_policy(max_bytes=5_000_000)) as fetcher:
        poller = Poller(db, fetcher=fetcher, scorer=Scorer(0))
        first = await poller.tick(everything=True)
        again = await poller.tick(everything=True)
    assert [o.error for o in first] == [None], first
    assert sum(o.new_mentions for o in first) == 2
    assert sum(o.new_mentions for o in again) == 0, "the capped id is stable across polls"
    async with db.session() as session:
        mentions = (await session.execute(select(Mention))).scalars().all()
        kept = (await session.execute(select(FetchedPost))).scalars().all()
        state = (await session.execute(select(SourceState))).scalars().one()
    assert sorted(m.external_id for m in mentions) == sorted([stable_id(giant_guid), "ok-1"])
    assert all(len(m.text) <= MAX_TEXT for m in mentions)
    assert len(kept) == 2
    assert state.last_error is None
