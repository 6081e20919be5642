"""SLA timers against real SQLite and PostgreSQL, with a clock the test moves (no sleeping)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.errors import CommandError
from bot.oncall import ALL_DAYS
from bot.sla import PolicyTable, SlaEngine, Step
from bot.sla_commands import SlaEdit, parse_sla
from bot.workflow import Action, Workflow
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import oncall as oncall_store
from storage import sla as sla_store
from storage.db import Database
from storage.models import Event, Mention, OutboxItem, OutboxKind, SlaPolicy
from storage.types import utcnow

ADMIN = "U0ALICE"
BOB = "U0BOB"
LEAD = "U0DANA"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def add_mention(db: Database, *, priority: str = "P1", found_at: datetime) -> int:
    mention = Mention(
        watch_name="acme",
        watch_kind="brand",
        source="hn",
        origin="hn",
        external_id=f"p-{found_at.timestamp()}-{priority}",
        text="Acme is down for everyone",
        department="support",
        priority=priority,
        found_at=found_at,
        updated_at=found_at,
    )
    async with db.session() as session:
        [stored] = await mention_store.add_mentions(session, mentions=[mention])
    assert stored.id is not None
    return stored.id


async def outbox_items(db: Database) -> list[OutboxItem]:
    async with db.session() as session:
        result = await session.execute(select(OutboxItem).order_by(OutboxItem.id))  # type: ignore[arg-type]
        return list(result.scalars())


async def notices(db: Database) -> list[tuple[str, dict[str, object]]]:
    kinds = {OutboxKind.THREAD_NOTE, OutboxKind.DIRECT_MESSAGE, OutboxKind.ROUTE_POST}
    return [(i.kind, i.payload) for i in await outbox_items(db) if i.kind in kinds]


async def earful_escalations(db: Database, mention_id: int) -> list[Event]:
    async with db.session() as session:
        events = await mention_store.events_for(session, mention_id=mention_id)
    return [e for e in events if e.action == "escalate" and e.actor is None]


def engine(db: Database, clock: Clock) -> SlaEngine:
    return SlaEngine(db, workflow=Workflow(db, admins=[ADMIN]), clock=clock)


async def test_p1_pings_on_call_then_escalates_each_exactly_once(db: Database) -> None:
    clock = Clock()
    mention_id = await add_mention(db, found_at=clock.now)
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id=LEAD, updated_by=ADMIN)
        await oncall_store.replace_rota(
            session,
            department="support",
            shifts=[oncall_store.ShiftValues(BOB, 0, 1440, "Europe/Paris", ALL_DAYS)],
            updated_by=ADMIN,
        )
    sla = engine(db, clock)
    clock.advance(minutes=14, seconds=59)
    assert await sla.tick() == 0
    assert await notices(db) == []

    clock.advance(seconds=1)
    assert await sla.tick() == 1
    assert await sla.tick() == 0  # fired once, not again
    [(kind, thread), (dm_kind, dm)] = await notices(db)
    assert kind == OutboxKind.THREAD_NOTE and f"<@{BOB}>" in str(thread["text"])
    assert "Unclaimed for 15 min" in str(thread["text"])
    assert dm_kind == OutboxKind.DIRECT_MESSAGE and dm["user"] == BOB

    clock.advance(minutes=15)
    assert await sla.tick() == 1
    assert await sla.tick() == 0
    [escalation] = await earful_escalations(db, mention_id)
    assert escalation.to_state == "escalated" and "30 min" in (escalation.note or "")
    async with db.session() as session:
        mention = await mention_store.get_mention(session, mention_id=mention_id)
    assert mention is not None and mention.escalation_level == 1
    posts = [p for k, p in await notices(db) if k == OutboxKind.ROUTE_POST]
    assert len(posts) == 1 and posts[0]["department"] == "exec"
    assert f"<@{LEAD}>" in str(posts[0]["text"]) and f"<@{BOB}>" in str(posts[0]["text"])
    dms = [p["user"] for k, p in await notices(db) if k == OutboxKind.DIRECT_MESSAGE]
    assert dms == [BOB, LEAD]
    # The workflow's own card update and thread reply went out with the escalation.
    kinds = [i.kind for i in await outbox_items(db)]
    assert OutboxKind.CARD_UPDATE in kinds and OutboxKind.THREAD_REPLY in kinds


async def test_claimed_mentions_get_no_unclaimed_ping_but_a_reminder(db: Database) -> None:
    clock = Clock()
    mention_id = await add_mention(db, found_at=clock.now)
    sla = engine(db, clock)
    await sla.tick()  # the timers exist before the claim
    await Workflow(db, admins=[ADMIN]).apply(mention_id=mention_id, action=Action.CLAIM, actor=BOB)
    clock.advance(hours=1)  # well past ping and escalate, without another sync in between
    assert await sla.tick() == 0
    assert await notices(db) == [] and await earful_escalations(db, mention_id) == []
    async with db.session() as session:
        timers = await sla_store.timers_for(session, mention_id=mention_id)
    assert {(t.kind, t.outcome) for t in timers if t.seq == 1} == {
        ("ping", "cancelled"),
        ("escalate", "cancelled"),
    }
    clock.advance(hours=3, minutes=1)  # 4 h after the claim (made on the real clock)
    assert await sla.tick() == 1
    [(kind, payload)] = await notices(db)
    assert kind == OutboxKind.DIRECT_MESSAGE and payload["user"] == BOB
    assert "Still yours" in str(payload["text"])
    clock.advance(hours=4)
    assert await sla.tick() == 1  # reminders repeat while it stays unresolved
    await Workflow(db, admins=[ADMIN]).apply(
        mention_id=mention_id, action=Action.RESOLVE, actor=BOB
    )
    clock.advance(hours=4)
    assert await sla.tick() == 0
    assert len(await notices(db)) == 2


async def test_a_claim_after_the_ping_was_due_but_before_it_fired_wins(
    db: Database,
) -> None:
    # Claimed between two ticks but after the ping was due: the ping is still stale, since
    # firing re-checks the mention in the same transaction.
    clock = Clock()
    mention_id = await add_mention(db, found_at=clock.now)
    sla = engine(db, clock)
    await sla.sync()
    clock.advance(minutes=20)
    await Workflow(db, admins=[ADMIN]).apply(mention_id=mention_id, action=Action.CLAIM, actor=BOB)
    assert await sla.fire_due() == 0  # not synced yet, yet nothing fires for a claimed item
    assert await notices(db) == []


async def test_restart_in_the_middle_of_a_pending_escalation(database_url: str) -> None:
    clock = Clock()
    first = Database(database_url)
    mention_id = await add_mention(first, found_at=clock.now)
    clock.advance(minutes=16)
    assert await engine(first, clock).tick() == 1  # the ping; the escalation is pending
    await first.dispose()  # the process stops

    clock.advance(minutes=20)
    second = Database(database_url)  # a new process, new engine, same database
    try:
        assert await engine(second, clock).tick() == 1
        assert len(await earful_escalations(second, mention_id)) == 1
        third = engine(second, clock)
        assert await third.tick() == 0
        assert len(await earful_escalations(second, mention_id)) == 1
    finally:
        await second.dispose()


async def test_a_firer_that_died_mid_escalation_is_retried_once(db: Database) -> None:
    clock = Clock()
    mention_id = await add_mention(db, found_at=clock.now)
    sla = engine(db, clock)
    await sla.sync()
    clock.advance(minutes=31)
    # A firer leased both timers, escalated in the workflow, then died before recording it.
    async with db.session() as session:
        leased = await sla_store.claim_due(
            session, now=clock.now, lease_until=clock.now + timedelta(minutes=2)
        )
    assert {t.kind for t in leased} == {"ping", "escalate"}
    await Workflow(db, admins=[ADMIN]).apply(
        mention_id=mention_id,
        action=Action.ESCALATE,
        actor=None,
        note="SLA",  # type: ignore[arg-type]
    )
    assert await sla.tick() == 0  # still leased by the dead firer
    clock.advance(minutes=2)
    assert await sla.tick() == 2
    assert len(await earful_escalations(db, mention_id)) == 1  # not escalated a second time
    assert len([k for k, _ in await notices(db) if k == OutboxKind.ROUTE_POST]) == 1


async def test_two_concurrent_firers_fire_each_step_once(database_url: str) -> None:
    clock = Clock()
    setup = Database(database_url)
    ids = [await add_mention(setup, found_at=clock.now + timedelta(seconds=i)) for i in range(6)]
    await setup.dispose()
    clock.advance(minutes=40)
    one, two = Database(database_url), Database(database_url)
    try:
        fired = await asyncio.gather(
            engine(one, clock).tick(), engine(two, clock).tick(), engine(one, clock).tick()
        )
        assert sum(fired) == 12  # six pings and six escalations, however they were shared
        for mention_id in ids:
            assert len(await earful_escalations(one, mention_id)) == 1
        kinds = [k for k, _ in await notices(one)]
        assert kinds.count(OutboxKind.THREAD_NOTE) == 6
        assert kinds.count(OutboxKind.ROUTE_POST) == 6
    finally:
        await one.dispose()
        await two.dispose()


async def test_admin_edits_override_defaults_per_department(db: Database) -> None:
    clock = Clock()
    async with db.session() as session:
        await sla_store.edit_policy(
            session,
            department="*",
            priority="P3",
            steps={"ping_seconds": 600},
            updated_by=ADMIN,
        )
        await sla_store.edit_policy(
            session,
            department="support",
            priority="P3",
            steps={"ping_seconds": 0, "escalate_seconds": 1200},
            updated_by=ADMIN,
        )
        table = PolicyTable.of(await sla_store.policy_edits(session))
    assert table.sla("pr", "P3").ping == 600
    support, edited = table.resolve("support", "P3")
    assert support.ping is None and support.escalate == 1200 and support.remind == 86_400
    assert edited == {Step.PING, Step.ESCALATE}
    mention_id = await add_mention(db, priority="P3", found_at=clock.now)
    sla = engine(db, clock)
    clock.advance(minutes=19)
    assert await sla.tick() == 0
    clock.advance(minutes=1)
    assert await sla.tick() == 1
    assert len(await earful_escalations(db, mention_id)) == 1
    async with db.session() as session:
        rows = list((await session.execute(select(SlaPolicy))).scalars())
    assert len(rows) == 2


def test_sla_command_parsing() -> None:
    command = parse_sla(["all", "p2", "ping=1h30m", "escalate=off", "remind=default"])
    assert command == SlaEdit(
        department="*",
        priorities=("P2",),
        steps={Step.PING: 5400, Step.ESCALATE: 0, Step.REMIND: None},
    )
    assert parse_sla(["support", "all", "reset"]) == SlaEdit(
        department="support", priorities=("P1", "P2", "P3", "P4"), reset=True
    )
    for tokens, message in [
        (["support", "P1", "ping=soon"], "not a duration"),
        (["support", "P5", "ping=5m"], "not a priority"),
        (["support", "P1", "ping=10s"], "between 1 minute and 30 days"),
        (["support", "P1", "wait=5m"], "not a step"),
        (["support", "P1"], "takes a department"),
    ]:
        with pytest.raises(CommandError, match=message) as raised:
            parse_sla(tokens)
        assert raised.value.example and "ping=15m" in raised.value.example
