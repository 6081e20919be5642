from __future__ import annotations

import asyncio

from storage import mentions as mention_store
from storage.db import Database
from storage.models import Mention
from storage.types import utcnow


def mention(external_id: str) -> Mention:
    return Mention(
        watch_name="acme",
        watch_kind="brand",
        source="rss:https://example.com/feed.xml",
        origin="rss:https://example.com/feed.xml",
        external_id=external_id,
        text="acme",
        department="support",
        priority="P3",
        found_at=utcnow(),
        updated_at=utcnow(),
    )


async def test_a_post_is_stored_once_even_when_pollers_race(db: Database) -> None:
    async def store() -> list[Mention]:
        async with db.session() as session:
            return await mention_store.add_mentions(session, mentions=[mention("a"), mention("b")])

    results = await asyncio.gather(*(store() for _ in range(5)))
    stored_ids = sorted(m.external_id for batch in results for m in batch)
    assert stored_ids == ["a", "b"]
    async with db.session() as session:
        assert await mention_store.count_mentions(session) == 2


async def test_times_come_back_timezone_aware(db: Database) -> None:
    now = utcnow()
    async with db.session() as session:
        [stored] = await mention_store.add_mentions(session, mentions=[mention("x")])
    async with db.session() as session:
        loaded = await mention_store.get_mention(session, mention_id=stored.id or 0)
    assert loaded is not None and loaded.found_at.tzinfo is not None
    assert abs((loaded.found_at - now).total_seconds()) < 5
