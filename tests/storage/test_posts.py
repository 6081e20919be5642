from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from storage import posts as post_store
from storage.db import Database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _post(source: str, n: int, *, minutes_ago: int = 0) -> dict[str, Any]:
    return {
        "source": source,
        "origin": source,
        "external_id": f"{source}-{n}",
        "url": None,
        "author": None,
        "author_reach": None,
        "title": None,
        "text": f"post {n} on {source}",
        "language": None,
        "published_at": None,
        "fetched_at": NOW - timedelta(minutes=minutes_ago),
    }


async def test_source_filters_apply_before_the_limit(db: Database) -> None:
    # A busy feed fetched recently must not crowd a quiet source out of `watch test`.
    async with db.session() as session:
        await post_store.add_posts(session, posts=[_post("hn", n) for n in range(30)])
        await post_store.add_posts(
            session,
            posts=[
                _post("reddit:r/acme", 1, minutes_ago=60),
                _post("reddit", 2, minutes_ago=61),
                _post("rss:https://example.com/feed", 3, minutes_ago=62),
                _post("redditx", 4, minutes_ago=63),  # not a reddit spec
                _post("re_dit:zz", 5, minutes_ago=64),  # "_" must not act as a wildcard
            ],
        )
    since = NOW - timedelta(days=1)
    async with db.session() as session:
        by_kind = await post_store.recent_posts(
            session, since=since, source_kinds=["reddit"], limit=10
        )
        exact = await post_store.recent_posts(
            session, since=since, sources=["rss:https://example.com/feed"], limit=10
        )
        both = await post_store.recent_posts(
            session,
            since=since,
            sources=["rss:https://example.com/feed"],
            source_kinds=["re_dit"],
            limit=10,
        )
        unfiltered = await post_store.recent_posts(session, since=since, limit=10)
    assert [p.source for p in by_kind] == ["reddit:r/acme", "reddit"]
    assert [p.external_id for p in exact] == ["rss:https://example.com/feed-3"]
    assert sorted(p.source for p in both) == ["re_dit:zz", "rss:https://example.com/feed"]
    assert {p.source for p in unfiltered} == {"hn"}
