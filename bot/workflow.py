"""The life of a mention: one state machine, every change audited and shown in Slack.

    new ──claim──▶ claimed ──answer──▶ answered ──resolve──▶ resolved
     │  ▲             │                                        │
     │  └──reroute────┤ (to another department, as a new alert)│
     ├──escalate──▶ escalated (level 1, 2, …; escalating again raises the level)
     └──dismiss (noise, duplicate, not ours, spam)──▶ dismissed ──reopen──▶ new

Every open state (new, claimed, answered, escalated) can be escalated, answered, resolved,
dismissed or rerouted; resolved and dismissed mentions can only be reopened. Anyone may claim,
escalate or reopen; answering, resolving, dismissing or rerouting a mention somebody else has
claimed takes that person, the department's lead or an admin. Earful itself (``actor=None``,
for example an SLA escalation) acts with an admin's rights but never claims or answers.

Each transition runs in one transaction that locks the mention, checks the rule, writes the
new state, an event row and the outbox items that update Slack. Concurrent clicks on the same
alert therefore resolve to one consistent state on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import AlreadyClaimed, IllegalTransition, NotAllowed, NotFound
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import outbox
from storage.db import Database
from storage.models import OPEN_STATES, DismissReason, Event, Mention, MentionState, OutboxKind
from storage.types import utcnow
from watchers.departments import Department


class Action(StrEnum):
    CLAIM = "claim"
    ANSWER = "answer"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    DISMISS = "dismiss"
    REOPEN = "reopen"
    REROUTE = "reroute"


# Closed states a mention can be brought back from. A state that is neither open nor here
# (such as merged) accepts no action from the card at all.
REOPENABLE_STATES = frozenset({MentionState.RESOLVED, MentionState.DISMISSED})

_PAST_TENSE = {
    Action.CLAIM: "claimed",
    Action.ANSWER: "marked answered",
    Action.ESCALATE: "escalated",
    Action.RESOLVE: "resolved",
    Action.DISMISS: "dismissed",
    Action.REOPEN: "reopened",
    Action.REROUTE: "rerouted",
}
# Acting on a mention somebody else claimed takes them, the department lead or an admin.
_GUARDED = frozenset({Action.ANSWER, Action.RESOLVE, Action.DISMISS, Action.REROUTE})
_REASONS = ", ".join(r.label for r in DismissReason)


@dataclass(frozen=True, slots=True)
class Change:
    state: MentionState
    owner: str | None
    escalation_level: int
    department: str
    note: str | None
    reason: DismissReason | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    mention: Mention
    event: Event
    message: str  # what to tell the person who acted


def standing(mention: Mention) -> str:
    """Where a mention stands and who holds it, for messages to people.

    "*claimed* by <@U1>", "*escalated* (level 2), held by <@U1>", "*new* and unclaimed".
    """
    state = mention.state
    label = f"*{state}*"
    if state == MentionState.ESCALATED:
        label += f" (level {mention.escalation_level})"
    if mention.owner:
        joiner = " by" if state == MentionState.CLAIMED else ", held by"
        return f"{label}{joiner} <@{mention.owner}>"
    return f"{label} and unclaimed" if state in OPEN_STATES else label


def plan(
    mention: Mention,
    action: Action,
    *,
    actor: str | None,
    is_admin: bool,
    lead: str | None = None,
    department: str | None = None,
    note: str | None = None,
    reason: DismissReason | None = None,
) -> Change:
    """Decide what ``action`` by ``actor`` does to ``mention``, or raise why it may not.

    ``lead`` is the Slack user id of the lead of the mention's department, if it has one.
    ``actor`` None is Earful itself.
    """
    state = MentionState(mention.state)
    owner = mention.owner
    level = mention.escalation_level
    here = mention.department

    if action is Action.REOPEN:
        if state in OPEN_STATES:
            raise IllegalTransition(
                f"This mention is still open: it is {standing(mention)}. Nothing to reopen."
            )
        if state not in REOPENABLE_STATES:
            raise IllegalTransition(f"This mention is {standing(mention)}; it can't be reopened.")
        return Change(MentionState.NEW, None, 0, here, note)

    if state not in OPEN_STATES:
        hint = " Reopen it first." if state in REOPENABLE_STATES else ""
        raise IllegalTransition(
            f"This mention is already {standing(mention)}, so it can't be "
            f"{_PAST_TENSE[action]}.{hint}"
        )
    if action in _GUARDED and owner and owner != actor and not is_admin and actor != lead:
        who = "the " + here + " lead" if lead else "the department lead"
        raise NotAllowed(
            f"This mention is {standing(mention)}; only they, {who} or an admin can "
            f"{action.value} it."
        )

    if actor is None and action in (Action.CLAIM, Action.ANSWER):
        raise IllegalTransition(f"Only a person can {action.value} a mention.")
    if action is Action.CLAIM:
        if owner == actor:
            raise IllegalTransition(f"You have already claimed this (it is *{state}*).")
        if owner:
            raise AlreadyClaimed(owner, state=state.value)
        # An escalated or answered mention keeps that state; claiming only gives it an owner.
        new_state = MentionState.CLAIMED if state is MentionState.NEW else state
        return Change(new_state, actor, level, here, note)
    if action is Action.ANSWER:
        if state is MentionState.ANSWERED:
            raise IllegalTransition(f"This mention is already {standing(mention)}.")
        # Whoever answers an unclaimed mention has taken it on.
        return Change(MentionState.ANSWERED, owner or actor, level, here, note)
    if action is Action.ESCALATE:
        return Change(MentionState.ESCALATED, owner, level + 1, here, note or f"level {level + 1}")
    if action is Action.RESOLVE:
        return Change(MentionState.RESOLVED, owner, level, here, note)
    if action is Action.DISMISS:
        if reason is None:
            raise IllegalTransition(f"Say why you dismiss it: {_REASONS}.")
        described = f"{reason.label} — {note}" if note else reason.label
        return Change(MentionState.DISMISSED, owner, level, here, described, reason)
    if action is Action.REROUTE:
        try:
            target = Department(department or "")
        except ValueError:
            names = ", ".join(d.value for d in Department)
            raise IllegalTransition(
                f"Unknown department {department!r}; use one of {names}."
            ) from None
        if target.value == here:
            raise IllegalTransition(f"This mention is already routed to {here}.")
        return Change(MentionState.NEW, None, 0, target.value, note or f"{here} → {target.value}")
    raise IllegalTransition(f"Unknown action {action!r}.")


class Workflow:
    def __init__(
        self,
        db: Database,
        *,
        admins: Collection[str],
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._admins = frozenset(admins)
        self._on_outbox = on_outbox

    def is_admin(self, user_id: str) -> bool:
        return user_id in self._admins

    async def apply(
        self,
        *,
        mention_id: int,
        action: Action,
        actor: str | None,
        department: str | None = None,
        note: str | None = None,
        reason: DismissReason | None = None,
    ) -> Outcome:
        """Apply ``action`` by ``actor`` (a Slack user id, or None for Earful itself)."""
        decide = partial(
            self._plan,
            mention_id=mention_id,
            action=action,
            actor=actor,
            department=department,
            note=note,
            reason=reason,
        )
        # What is refused (already claimed, already resolved, not yours) is refused on what a
        # snapshot shows, so a flood of repeated clicks on one alert never queues up with the
        # writers (on SQLite, one at a time). What is allowed is decided again under the lock.
        async with self._db.read() as session:
            await decide(session, lock=False)
        async with self._db.session() as session:
            mention, change = await decide(session, lock=True)
            from_state = mention.state
            old_channel, old_ts = mention.channel, mention.ts
            now = utcnow()
            # The digest's response times read these, not the audit trail (digest_data.py).
            if change.owner and not mention.owner:
                mention.claimed_at = now
            if change.state is MentionState.RESOLVED:
                mention.resolved_at = now
            mention.state = change.state
            mention.owner = change.owner
            mention.escalation_level = change.escalation_level
            mention.department = change.department
            mention.updated_at = now
            if action is Action.REROUTE:
                # The new department gets a fresh card; the old one is retired in place.
                mention.channel = None
                mention.ts = None
            event = await mention_store.add_event(
                session,
                mention_id=mention_id,
                actor=actor,
                action=action.value,
                from_state=from_state,
                to_state=change.state.value,
                note=change.note,
            )
            event.reason = change.reason.value if change.reason else None
            if action is Action.REROUTE:
                if old_channel and old_ts:
                    outbox.enqueue(
                        session,
                        kind=OutboxKind.RETIRE_CARD,
                        mention_id=mention_id,
                        payload={"channel": old_channel, "ts": old_ts, "event_id": event.id},
                    )
                outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=mention_id)
            else:
                outbox.enqueue(session, kind=OutboxKind.CARD_UPDATE, mention_id=mention_id)
            # After a reroute this waits for the new alert and says, in its thread, where the
            # mention came from.
            outbox.enqueue(
                session,
                kind=OutboxKind.THREAD_REPLY,
                mention_id=mention_id,
                payload={"event_id": event.id},
            )
        self._on_outbox()
        return Outcome(mention=mention, event=event, message=_confirmation(action, change))


    async def _plan(
        self,
        session: AsyncSession,
        *,
        lock: bool,
        mention_id: int,
        action: Action,
        actor: str | None,
        department: str | None,
        note: str | None,
        reason: DismissReason | None,
    ) -> tuple[Mention, Change]:
        mention = await mention_store.get_mention(session, mention_id=mention_id, lock=lock)
        if mention is None:
            raise NotFound("That mention no longer exists.")
        change = plan(
            mention,
            action,
            actor=actor,
            is_admin=actor is None or self.is_admin(actor),
            lead=await lead_store.lead_for(session, department=mention.department),
            department=department,
            note=note,
            reason=reason,
        )
        return mention, change


def _confirmation(action: Action, change: Change) -> str:
    if action is Action.REROUTE:
        return f"Rerouted to *{change.department}*."
    if action is Action.ESCALATE:
        return f"Escalated (level {change.escalation_level})."
    if action is Action.DISMISS and change.reason is not None:
        return f"You dismissed this mention as {change.reason.label}."
    return f"You {_PAST_TENSE[action]} this mention."
