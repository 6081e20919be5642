from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.errors import AlreadyClaimed, IllegalTransition, NotAllowed
from bot.workflow import Action, Workflow
from storage import mentions as mention_store
from storage.db import Database
from storage.models import Event, Mention, OutboxItem, OutboxKind
from storage.types import utcnow


async def make_mention(db: Database, *, external_id: str = "p1") -> int:
    mention = Mention(
        watch_name="acme",
        watch_kind="brand",
        source="rss:https://example.com/feed.xml",
        origin="rss:https://example.com/feed.xml",
        external_id=external_id,
        text="Acme support is terrible",
        department="support",
        priority="P2",
        found_at=utcnow(),
        updated_at=utcnow(),
    )
    async with db.session() as session:
        stored = await mention_store.add_mentions(session, mentions=[mention])
    assert stored and stored[0].id is not None
    return stored[0].id


async def test_full_lifecycle_is_audited(db: Database) -> None:
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins={"UADMIN"})
    await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor="UALICE")
    await workflow.apply(mention_id=mention_id, action=Action.ESCALATE, actor="UALICE")
    await workflow.apply(mention_id=mention_id, action=Action.RESOLVE, actor="UALICE")
    await workflow.apply(mention_id=mention_id, action=Action.REOPEN, actor="UBOB")
    outcome = await workflow.apply(
        mention_id=mention_id, action=Action.REROUTE, actor="UBOB", department="product"
    )
    assert outcome.mention.department == "product"
    async with db.session() as session:
        events = await mention_store.events_for(session, mention_id=mention_id)
        kinds = (await session.execute(select(OutboxItem.kind).order_by(OutboxItem.id))).scalars()
        kinds = list(kinds)
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in events] == [
        ("claim", "new", "claimed", "UALICE"),
        ("escalate", "claimed", "escalated", "UALICE"),
        ("resolve", "escalated", "resolved", "UALICE"),
        ("reopen", "resolved", "new", "UBOB"),
        ("reroute", "new", "new", "UBOB"),
    ]
    assert events[-1].note == "support → product"
    # Each change updates the card and says so in the thread; a reroute posts a new alert.
    assert kinds.count(OutboxKind.CARD_UPDATE) == 4
    assert kinds.count(OutboxKind.THREAD_REPLY) == 4
    assert kinds[-1] == OutboxKind.ALERT


async def test_rules(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins={"UADMIN"})
    await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor="UALICE")
    with pytest.raises(AlreadyClaimed) as caught:
        await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor="UBOB")
    assert caught.value.owner == "UALICE"
    with pytest.raises(NotAllowed):
        await workflow.apply(mention_id=mention_id, action=Action.RESOLVE, actor="UBOB")
    with pytest.raises(IllegalTransition):
        await workflow.apply(mention_id=mention_id, action=Action.REOPEN, actor="UBOB")
    with pytest.raises(IllegalTransition):
        await workflow.apply(
            mention_id=mention_id, action=Action.REROUTE, actor="UALICE", department="nowhere"
        )
    # An admin may close someone else's item.
    await workflow.apply(mention_id=mention_id, action=Action.DISMISS, actor="UADMIN")
    with pytest.raises(IllegalTransition):
        await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor="UBOB")
    await db.dispose()


async def test_twenty_concurrent_claims_have_one_winner(db: Database) -> None:
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins=set())
    users = [f"U{n:04d}XYZ" for n in range(20)]
    results = await asyncio.gather(
        *(workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=u) for u in users),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyClaimed) for r in losers), losers
    winner = winners[0].mention.owner
    assert all(r.owner == winner for r in losers if isinstance(r, AlreadyClaimed))
    async with db.session() as session:
        mention = await mention_store.get_mention(session, mention_id=mention_id)
        claims = (
            await session.execute(select(Event).where(Event.action == "claim"))
        ).scalars().all()
    assert mention is not None and mention.owner == winner and mention.state == "claimed"
    assert len(claims) == 1
