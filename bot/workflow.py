"""The life of a mention: one state machine, every change audited and shown in Slack.

Each transition runs in one transaction that locks the mention, checks the rule, writes the
new state, an event row and the outbox items that update Slack. Concurrent clicks on the same
alert therefore resolve to one consistent state on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum

from bot.errors import AlreadyClaimed, IllegalTransition, NotAllowed, NotFound
from storage import mentions as mention_store
from storage import outbox
from storage.db import Database
from storage.models import OPEN_STATES, Event, Mention, MentionState, OutboxKind
from storage.types import utcnow
from watchers.departments import Department


class Action(StrEnum):
    CLAIM = "claim"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    DISMISS = "dismiss"
    REOPEN = "reopen"
    REROUTE = "reroute"


_PAST_TENSE = {
    Action.CLAIM: "claimed",
    Action.ESCALATE: "escalated",
    Action.RESOLVE: "resolved",
    Action.DISMISS: "dismissed",
    Action.REOPEN: "reopened",
    Action.REROUTE: "rerouted",
}


@dataclass(frozen=True, slots=True)
class Change:
    state: MentionState
    owner: str | None
    escalation_level: int
    department: str
    note: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    mention: Mention
    event: Event
    message: str  # what to tell the person who acted


def plan(
    mention: Mention,
    action: Action,
    *,
    actor: str,
    is_admin: bool,
    department: str | None = None,
    note: str | None = None,
) -> Change:
    """Decide what ``action`` by ``actor`` does to ``mention``, or raise why it may not."""
    state = MentionState(mention.state)
    owner = mention.owner
    is_open = state in OPEN_STATES

    def closed_error() -> IllegalTransition:
        return IllegalTransition(f"This mention is already {state.value}; reopen it first.")

    def require_owner_or_admin(verb: str) -> None:
        if owner and owner != actor and not is_admin:
            raise NotAllowed(f"<@{owner}> has claimed this; only they or an admin can {verb} it.")

    if action is Action.CLAIM:
        if not is_open:
            raise closed_error()
        if owner == actor:
            raise IllegalTransition("You have already claimed this.")
        if owner:
            raise AlreadyClaimed(owner)
        new_state = (
            MentionState.ESCALATED if state is MentionState.ESCALATED else MentionState.CLAIMED
        )
        return Change(new_state, actor, mention.escalation_level, mention.department, note)
    if action is Action.ESCALATE:
        if not is_open:
            raise closed_error()
        level = mention.escalation_level + 1
        return Change(MentionState.ESCALATED, owner, level, mention.department, note)
    if action in (Action.RESOLVE, Action.DISMISS):
        if not is_open:
            raise closed_error()
        require_owner_or_admin(action.value)
        target = MentionState.RESOLVED if action is Action.RESOLVE else MentionState.DISMISSED
        return Change(target, owner, mention.escalation_level, mention.department, note)
    if action is Action.REOPEN:
        if is_open:
            raise IllegalTransition(f"This mention is still open ({state.value}).")
        return Change(MentionState.NEW, None, 0, mention.department, note)
    if action is Action.REROUTE:
        if not is_open:
            raise closed_error()
        try:
            target_department = Department(department or "")
        except ValueError:
            names = ", ".join(d.value for d in Department)
            raise IllegalTransition(
                f"Unknown department {department!r}; use one of {names}."
            ) from None
        if target_department.value == mention.department:
            raise IllegalTransition(f"This mention is already routed to {mention.department}.")
        require_owner_or_admin("reroute")
        routed_note = f"{mention.department} → {target_department.value}"
        return Change(MentionState.NEW, None, 0, target_department.value, note or routed_note)
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
        actor: str,
        department: str | None = None,
        note: str | None = None,
    ) -> Outcome:
        async with self._db.session() as session:
            mention = await mention_store.get_mention(session, mention_id=mention_id, lock=True)
            if mention is None:
                raise NotFound("That mention no longer exists.")
            change = plan(
                mention,
                action,
                actor=actor,
                is_admin=self.is_admin(actor),
                department=department,
                note=note,
            )
            from_state = mention.state
            old_channel, old_ts = mention.channel, mention.ts
            mention.state = change.state
            mention.owner = change.owner
            mention.escalation_level = change.escalation_level
            mention.department = change.department
            mention.updated_at = utcnow()
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
                outbox.enqueue(
                    session,
                    kind=OutboxKind.THREAD_REPLY,
                    mention_id=mention_id,
                    payload={"event_id": event.id},
                )
        self._on_outbox()
        return Outcome(mention=mention, event=event, message=_confirmation(action, change))


def _confirmation(action: Action, change: Change) -> str:
    if action is Action.REROUTE:
        return f"Rerouted to *{change.department}*."
    if action is Action.ESCALATE:
        return f"Escalated (level {change.escalation_level})."
    return f"You {_PAST_TENSE[action]} this mention."
