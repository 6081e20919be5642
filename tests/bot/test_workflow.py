from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from sqlalchemy import select

from bot.errors import AlreadyClaimed, EarfulError, IllegalTransition, NotAllowed
from bot.workflow import Action, Outcome, Workflow, plan, standing
from storage import leads as lead_store
from storage import mentions as mention_store
from storage.db import Database
from storage.models import DismissReason, Event, Mention, MentionState, OutboxItem, OutboxKind
from storage.types import utcnow

OWNER = "U0OWNER"
LEAD = "U0LEAD"
ADMIN = "U0ADMIN"
OTHER = "U0OTHER"


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


def mention_in(state: str, owner: str | None = None, level: int = 0) -> Mention:
    return Mention(
        id=1,
        watch_name="acme",
        watch_kind="brand",
        source="hn",
        origin="hn",
        external_id="1",
        text="acme",
        department="support",
        priority="P2",
        state=state,
        owner=owner,
        escalation_level=level,
    )


def who(actor: str) -> dict[str, Any]:
    return {"actor": actor, "is_admin": actor == ADMIN, "lead": LEAD}


# --- the rules, without a database ---------------------------------------------------------

OPEN = ("new", "claimed", "answered", "escalated")


@pytest.mark.parametrize(
    ("state", "owner", "action", "kwargs", "expected"),
    [
        # claim: anyone, once; escalated and answered mentions keep their state
        ("new", None, Action.CLAIM, {}, ("claimed", OTHER, 0)),
        ("escalated", None, Action.CLAIM, {}, ("escalated", OTHER, 1)),
        # answer: the claimer, the lead, an admin, or anyone on an unclaimed mention
        ("new", None, Action.ANSWER, {}, ("answered", OTHER, 0)),
        ("claimed", OTHER, Action.ANSWER, {}, ("answered", OTHER, 0)),
        ("escalated", OTHER, Action.ANSWER, {}, ("answered", OTHER, 1)),
        # escalate: anyone, from any open state; again raises the level
        ("new", None, Action.ESCALATE, {}, ("escalated", None, 1)),
        ("claimed", OWNER, Action.ESCALATE, {}, ("escalated", OWNER, 1)),
        ("answered", OWNER, Action.ESCALATE, {}, ("escalated", OWNER, 1)),
        ("escalated", OWNER, Action.ESCALATE, {}, ("escalated", OWNER, 2)),
        # resolve / dismiss / reroute from every open state
        *[(s, OTHER, Action.RESOLVE, {}, ("resolved", OTHER, None)) for s in OPEN],
        *[
            (s, OTHER, Action.DISMISS, {"reason": DismissReason.SPAM}, ("dismissed", OTHER, None))
            for s in OPEN
        ],
        *[(s, OTHER, Action.REROUTE, {"department": "pr"}, ("new", None, 0)) for s in OPEN],
        # reopen: anyone, from a closed state, back to new and unclaimed
        ("resolved", OWNER, Action.REOPEN, {}, ("new", None, 0)),
        ("dismissed", OWNER, Action.REOPEN, {}, ("new", None, 0)),
    ],
)
def test_allowed_transitions(
    state: str, owner: str | None, action: Action, kwargs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    level = 1 if state == "escalated" else 0
    change = plan(mention_in(state, owner, level), action, **who(OTHER), **kwargs)

    new_state, new_owner, new_level = expected
    assert (change.state.value, change.owner) == (new_state, new_owner)
    if new_level is not None:
        assert change.escalation_level == new_level


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (state, action)
        for state in ("claimed", "answered", "escalated")
        for action in (Action.ANSWER, Action.RESOLVE, Action.DISMISS, Action.REROUTE)
        # Answering twice is refused for everyone (see the refused transitions below).
        if (state, action) != ("answered", Action.ANSWER)
    ],
)
def test_only_claimer_lead_or_admin_may_close_someone_elses_mention(
    state: str, action: Action
) -> None:
    kwargs: dict[str, Any] = {"reason": DismissReason.NOISE, "department": "pr"}
    mention = mention_in(state, OWNER, 1 if state == "escalated" else 0)
    for allowed in (OWNER, LEAD, ADMIN):
        plan(mention, action, **who(allowed), **kwargs)
    with pytest.raises(NotAllowed) as refused:
        plan(mention, action, **who(OTHER), **kwargs)
    message = str(refused.value)
    # Says where the mention stands, who holds it, and who could act instead.
    assert f"*{state}*" in message and f"<@{OWNER}>" in message
    assert "support lead" in message and "admin" in message and action.value in message


def test_without_a_lead_the_refusal_says_department_lead() -> None:
    with pytest.raises(NotAllowed, match="the department lead or an admin"):
        plan(mention_in("claimed", OWNER), Action.RESOLVE, actor=OTHER, is_admin=False)


def test_a_lead_of_another_department_is_nobody_special() -> None:
    # The workflow passes the lead of the mention's own department; anyone else is refused.
    with pytest.raises(NotAllowed):
        plan(mention_in("claimed", OWNER), Action.RESOLVE, actor=OTHER, is_admin=False, lead=LEAD)


@pytest.mark.parametrize(
    ("state", "owner", "action", "kwargs", "error", "words"),
    [
        ("claimed", OWNER, Action.CLAIM, {}, AlreadyClaimed, ["*claimed*", f"<@{OWNER}>"]),
        ("escalated", OWNER, Action.CLAIM, {}, AlreadyClaimed, ["*escalated*", f"<@{OWNER}>"]),
        ("claimed", OTHER, Action.CLAIM, {}, IllegalTransition, ["already claimed"]),
        ("answered", OTHER, Action.ANSWER, {}, IllegalTransition, ["*answered*", f"<@{OTHER}>"]),
        ("new", None, Action.DISMISS, {}, IllegalTransition, ["noise", "not ours", "spam"]),
        ("new", None, Action.REROUTE, {"department": "support"}, IllegalTransition, ["already"]),
        ("new", None, Action.REROUTE, {"department": "mars"}, IllegalTransition, ["Unknown"]),
        ("new", None, Action.REOPEN, {}, IllegalTransition, ["still open", "*new* and unclaimed"]),
        *[
            (
                closed,
                OWNER,
                action,
                {"reason": DismissReason.NOISE, "department": "pr"},
                IllegalTransition,
                [f"*{closed}*", f"<@{OWNER}>", "Reopen it first"],
            )
            for closed in ("resolved", "dismissed")
            for action in Action
            if action is not Action.REOPEN
        ],
    ],
)
def test_refused_transitions_say_the_state_and_who_holds_it(
    state: str,
    owner: str | None,
    action: Action,
    kwargs: dict[str, Any],
    error: type[EarfulError],
    words: list[str],
) -> None:
    with pytest.raises(error) as refused:
        plan(mention_in(state, owner), action, **who(OTHER), **kwargs)
    for word in words:
        assert word in str(refused.value), str(refused.value)


def test_a_state_outside_the_machine_accepts_nothing() -> None:
    # A merged mention lives on its lead's card: nothing here may act on it, not even reopen.
    merged = mention_in(MentionState.MERGED.value)
    for action in Action:
        with pytest.raises(IllegalTransition, match=r"\*merged\*"):
            plan(merged, action, **who(ADMIN), reason=DismissReason.NOISE, department="pr")


def test_standing() -> None:
    assert standing(mention_in("new")) == "*new* and unclaimed"
    assert standing(mention_in("claimed", OWNER)) == f"*claimed* by <@{OWNER}>"
    assert (
        standing(mention_in("escalated", OWNER, 3)) == f"*escalated* (level 3), held by <@{OWNER}>"
    )
    assert standing(mention_in("resolved")) == "*resolved*"


# --- through the database --------------------------------------------------------------------


async def test_full_lifecycle_is_audited(db: Database) -> None:
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins={ADMIN})
    steps: list[tuple[Action, str, dict[str, Any]]] = [
        (Action.CLAIM, "UALICE", {}),
        (Action.ESCALATE, "UBOB", {}),
        (Action.ESCALATE, "UBOB", {}),
        (Action.ANSWER, "UALICE", {}),
        (Action.RESOLVE, "UALICE", {}),
        (Action.REOPEN, "UBOB", {}),
        (Action.REROUTE, "UBOB", {"department": "product"}),
        (Action.DISMISS, "UCAROL", {"reason": DismissReason.NOT_OURS}),
    ]
    outcomes: list[Outcome] = []
    for action, actor, kwargs in steps:
        outcomes.append(
            await workflow.apply(mention_id=mention_id, action=action, actor=actor, **kwargs)
        )
    assert outcomes[2].message == "Escalated (level 2)."
    assert outcomes[-1].message == "You dismissed this mention as not ours."
    async with db.session() as session:
        events = await mention_store.events_for(session, mention_id=mention_id)
        mention = await mention_store.get_mention(session, mention_id=mention_id)
        kinds = list(
            (await session.execute(select(OutboxItem.kind).order_by(OutboxItem.id))).scalars()
        )
    assert [(e.action, e.from_state, e.to_state, e.actor, e.note, e.reason) for e in events] == [
        ("claim", "new", "claimed", "UALICE", None, None),
        ("escalate", "claimed", "escalated", "UBOB", "level 1", None),
        ("escalate", "escalated", "escalated", "UBOB", "level 2", None),
        ("answer", "escalated", "answered", "UALICE", None, None),
        ("resolve", "answered", "resolved", "UALICE", None, None),
        ("reopen", "resolved", "new", "UBOB", None, None),
        ("reroute", "new", "new", "UBOB", "support → product", None),
        ("dismiss", "new", "dismissed", "UCAROL", "not ours", "not_ours"),
    ]
    assert all(e.created_at is not None and e.created_at.tzinfo is not None for e in events)
    assert mention is not None
    assert (mention.state, mention.owner, mention.department) == ("dismissed", None, "product")
    # Every change says so in the thread; every change but the reroute updates the card in
    # place, and the reroute posts a new alert instead (retiring the old card once posted).
    assert kinds.count(OutboxKind.THREAD_REPLY) == len(steps)
    assert kinds.count(OutboxKind.CARD_UPDATE) == len(steps) - 1
    assert kinds.count(OutboxKind.ALERT) == 1


async def test_a_refused_transition_changes_nothing(db: Database) -> None:
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins={ADMIN})
    await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=OWNER)
    with pytest.raises(NotAllowed):
        await workflow.apply(mention_id=mention_id, action=Action.RESOLVE, actor=OTHER)
    async with db.session() as session:
        mention = await mention_store.get_mention(session, mention_id=mention_id)
        events = await mention_store.events_for(session, mention_id=mention_id)
        outbox_items = (await session.execute(select(OutboxItem))).scalars().all()
    assert mention is not None and mention.state == "claimed" and mention.owner == OWNER
    assert [e.action for e in events] == ["claim"]
    assert len(outbox_items) == 2  # the claim's card update and thread reply only


async def test_the_department_lead_comes_from_the_database(db: Database) -> None:
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins={ADMIN})
    await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=OWNER)
    with pytest.raises(NotAllowed, match="the department lead"):
        await workflow.apply(mention_id=mention_id, action=Action.RESOLVE, actor=LEAD)
    async with db.session() as session:
        await lead_store.set_lead(session, department="product", user_id=LEAD, updated_by=ADMIN)
    with pytest.raises(NotAllowed):  # leading product says nothing about support
        await workflow.apply(mention_id=mention_id, action=Action.RESOLVE, actor=LEAD)
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id=LEAD, updated_by=ADMIN)
    outcome = await workflow.apply(mention_id=mention_id, action=Action.RESOLVE, actor=LEAD)
    assert outcome.mention.state == "resolved" and outcome.mention.owner == OWNER
    assert outcome.event.actor == LEAD


async def test_unknown_mention(db: Database) -> None:
    workflow = Workflow(db, admins=set())
    with pytest.raises(EarfulError, match="no longer exists"):
        await workflow.apply(mention_id=999_999, action=Action.CLAIM, actor=OTHER)


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
            (await session.execute(select(Event).where(Event.action == "claim"))).scalars().all()
        )
    assert mention is not None and mention.owner == winner and mention.state == "claimed"
    assert len(claims) == 1


async def test_concurrent_mixed_transitions_leave_one_consistent_history(db: Database) -> None:
    """Claims, answers, escalations, resolutions, dismissals and reopenings, all at once."""
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins={ADMIN})
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id=LEAD, updated_by=ADMIN)
    await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=OWNER)
    rng = random.Random(5)
    attempts: list[tuple[Action, str]] = [
        (action, actor)
        for action in (Action.ANSWER, Action.ESCALATE, Action.RESOLVE, Action.DISMISS)
        for actor in (OWNER, LEAD, ADMIN, OTHER)
    ] + [(Action.CLAIM, OTHER), (Action.REOPEN, OTHER), (Action.REOPEN, LEAD)]
    attempts = attempts * 2
    rng.shuffle(attempts)
    results = await asyncio.gather(
        *(
            workflow.apply(
                mention_id=mention_id, action=action, actor=actor, reason=DismissReason.NOISE
            )
            for action, actor in attempts
        ),
        return_exceptions=True,
    )
    unexpected = [r for r in results if isinstance(r, BaseException)]
    assert [r for r in unexpected if not isinstance(r, EarfulError)] == []

    async with db.session() as session:
        mention = await mention_store.get_mention(session, mention_id=mention_id)
        events = await mention_store.events_for(session, mention_id=mention_id)
    assert mention is not None
    succeeded = [r for r in results if isinstance(r, Outcome)]
    assert len(events) == 1 + len(succeeded)
    # Replay the trail: each event starts where the previous one ended, every guarded action
    # was taken by the holder, the lead or an admin, and the replay ends where the mention is.
    state, owner, level = "new", None, 0
    for event in events:
        assert event.from_state == state, [(e.action, e.from_state, e.to_state) for e in events]
        if event.action in ("answer", "resolve", "dismiss") and owner is not None:
            assert event.actor in (owner, LEAD, ADMIN), (event.action, event.actor, owner)
        if event.action == "claim":
            assert owner is None
            owner = event.actor
        elif event.action == "answer":
            owner = owner or event.actor
        elif event.action == "escalate":
            level += 1
        elif event.action == "reopen":
            owner, level = None, 0
        assert event.to_state is not None
        state = event.to_state
    assert (mention.state, mention.owner, mention.escalation_level) == (state, owner, level)


async def test_earful_itself_escalates_but_never_claims(db: Database) -> None:
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins=set())
    outcome = await workflow.apply(
        mention_id=mention_id, action=Action.ESCALATE, actor=None, note="SLA: unclaimed for 15m"
    )
    assert (outcome.event.actor, outcome.event.note) == (None, "SLA: unclaimed for 15m")
    assert outcome.mention.escalation_level == 1
    for action in (Action.CLAIM, Action.ANSWER):
        with pytest.raises(IllegalTransition, match="Only a person"):
            await workflow.apply(mention_id=mention_id, action=action, actor=None)
    # A person still claims the escalated mention from the card.
    claimed = await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=OWNER)
    assert (claimed.mention.state, claimed.mention.owner) == ("escalated", OWNER)


async def test_a_refusal_never_waits_for_the_writers(db: Database) -> None:
    # A flood of clicks on an alert someone already claimed must not queue up behind writers
    # (on SQLite, one at a time; on PostgreSQL, behind the row's lock).
    mention_id = await make_mention(db)
    workflow = Workflow(db, admins=set())
    await workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=OWNER)
    writing = asyncio.Event()
    done_writing = asyncio.Event()

    async def long_writer() -> None:
        async with db.session() as session:
            await mention_store.get_mention(session, mention_id=mention_id, lock=True)
            writing.set()
            await done_writing.wait()

    writer = asyncio.create_task(long_writer())
    await writing.wait()
    try:
        refused = asyncio.create_task(
            workflow.apply(mention_id=mention_id, action=Action.CLAIM, actor=OTHER)
        )
        finished, _ = await asyncio.wait({refused}, timeout=30)
        assert finished, "the refused claim waited for the writer"
        with pytest.raises(AlreadyClaimed):
            refused.result()
    finally:
        done_writing.set()
        await writer
