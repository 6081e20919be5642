from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlmodel import col

from storage import mentions as mention_store
from storage import outbox
from storage.db import Database
from storage.models import Event, Mention, MentionState, OutboxItem, OutboxKind, OutboxStatus
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


def mention_values(external_id: str) -> dict[str, object]:
    now = utcnow()
    return {
        "watch_id": None,
        "watch_name": "acme",
        "watch_kind": "brand",
        "watches": ["acme", "acme-exec"],
        "source": "rss:https://example.com/feed.xml",
        "origin": "rss:https://example.com/feed.xml",
        "external_id": external_id,
        "url": "https://example.com/a",
        "title": "Acme",
        "text": "acme is down",
        "found_at": now,
        "updated_at": now,
        "matched_terms": ["acme"],
        "intents": [{"intent": "complaint", "triggers": ["down"]}],
        "department": "support",
        "priority": "P2",
        "minhash": b"\x01\x02",
    }


async def test_a_mention_built_for_a_burst_is_the_constructors_mention(db: Database) -> None:
    values = mention_values("fast")
    fast = mention_store.new_mention(**values)
    slow = Mention(**values)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.state == MentionState.NEW and fast.cc == [] and fast.cc is not slow.cc
    # It is a real ORM object: changes are tracked, and the session stores it like any other.
    fast.priority = "P1"
    async with db.session() as session:
        session.add(fast)
    async with db.session() as session:
        stored = await mention_store.get_mention(session, mention_id=fast.id or 0)
    assert (
        stored is not None and stored.priority == "P1" and stored.watches == ["acme", "acme-exec"]
    )
    with pytest.raises(TypeError, match="unknown"):
        mention_store.new_mention(**mention_values("x"), colour="red")
    with pytest.raises(TypeError, match="external_id"):
        mention_store.new_mention(
            **{k: v for k, v in mention_values("x").items() if k != "external_id"}
        )


async def test_bulk_events_and_alerts_are_written_whole_and_in_order(db: Database) -> None:
    async with db.session() as session:
        stored = await mention_store.insert_new_mentions(
            session, mentions=[mention_store.new_mention(**mention_values(n)) for n in "abc"]
        )
        ids = [m.id or 0 for m in stored]
        await mention_store.insert_events(
            session,
            events=[
                mention_store.NewEvent(i, None, "found", None, MentionState.NEW, f"n{i}")
                for i in ids
            ],
        )
        await outbox.enqueue_many(session, kind=OutboxKind.ALERT, mention_ids=list(reversed(ids)))
    async with db.session() as session:
        events = list((await session.execute(select(Event).order_by(col(Event.id)))).scalars())
        items = list(
            (await session.execute(select(OutboxItem).order_by(col(OutboxItem.id)))).scalars()
        )
    assert [(e.mention_id, e.action, e.to_state, e.note) for e in events] == [
        (i, "found", "new", f"n{i}") for i in ids
    ]
    assert all(e.created_at.tzinfo is not None for e in events)
    assert [item.mention_id for item in items] == list(reversed(ids))
    assert all(
        item.kind == OutboxKind.ALERT
        and item.status == OutboxStatus.PENDING
        and item.attempts == 0
        and item.payload == {}
        and item.next_attempt_at <= utcnow()
        for item in items
    )
