"""SLAs: ping whoever is on call about unclaimed mentions, escalate them, remind owners.

Every mention is in one SLA *phase*: unclaimed (open, nobody owns it), claimed (open, owned)
or closed. Each phase has its steps, due a set time after the phase began:

- unclaimed: *ping* (a thread reply naming whoever is on call now, or the department lead,
  plus a DM to them) and *escalate* (the workflow's escalation, audited like a person's,
  plus a post in the exec channel linking the alert and naming the lead);
- claimed: *remind* the owner by DM, again every interval while it stays unresolved.

The timers are rows (storage/sla.py), so they survive restarts. A scheduler job syncs phases
from the mentions (any change moves ``updated_at``), then fires due timers: it leases them in
one atomic UPDATE, re-checks the mention, and closes the timer in the same transaction that
writes the Slack messages to the outbox, so each step happens once even with two processes.
A step of a phase that has ended (the mention was claimed, resolved, dismissed, rerouted) is
cancelled, never fired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot import mrkdwn
from bot.errors import IllegalTransition, NotFound
from bot.oncall import Shift, on_call_now
from bot.workflow import Action, Workflow
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import oncall as oncall_store
from storage import outbox
from storage import sla as sla_store
from storage.db import Database
from storage.models import (
    OPEN_STATES,
    Event,
    Mention,
    OutboxKind,
    SlaPhase,
    SlaPolicy,
    SlaTimer,
)
from storage.types import utcnow
from watchers.departments import Department, Priority

log = logging.getLogger(__name__)

TICK_SECONDS = 20
LEASE = timedelta(minutes=2)  # a firer that dies mid-step is retried after this
MAX_REMINDERS = 6
# A mention first seen long after it was found (Earful was just upgraded, or was down for
# days) gets no timers: pinging about every old open item at once helps nobody.
CATCH_UP_LIMIT = timedelta(hours=24)
ALL_DEPARTMENTS = "*"
EXEC_ROUTE = Department.EXEC.value


class Phase(StrEnum):
    UNCLAIMED = "unclaimed"
    CLAIMED = "claimed"
    CLOSED = "closed"


class Step(StrEnum):
    PING = "ping"
    ESCALATE = "escalate"
    REMIND = "remind"

    @property
    def phase(self) -> Phase:
        return Phase.CLAIMED if self is Step.REMIND else Phase.UNCLAIMED

    @property
    def column(self) -> str:
        return f"{self.value}_seconds"


@dataclass(frozen=True, slots=True)
class Sla:
    """Seconds after the phase begins for each step; None means the step is off."""

    ping: int | None = None
    escalate: int | None = None
    remind: int | None = None

    def after(self, step: Step) -> int | None:
        value: int | None = getattr(self, step.value)
        return value


DEFAULT_SLAS: Mapping[str, Sla] = {
    Priority.P1: Sla(ping=15 * 60, escalate=30 * 60, remind=4 * 3600),
    Priority.P2: Sla(ping=60 * 60, escalate=240 * 60, remind=4 * 3600),
    Priority.P3: Sla(ping=8 * 3600, escalate=None, remind=24 * 3600),
    Priority.P4: Sla(ping=None, escalate=None, remind=24 * 3600),
}


@dataclass(frozen=True, slots=True)
class PolicyTable:
    """The built-in SLAs overlaid with admins' edits: per department, then for all."""

    edits: Mapping[tuple[str, str], SlaPolicy]

    @classmethod
    def of(cls, edits: Iterable[SlaPolicy]) -> PolicyTable:
        return cls({(e.department, e.priority): e for e in edits})

    def resolve(self, department: str, priority: str) -> tuple[Sla, frozenset[Step]]:
        """The SLA that applies, and which of its steps differ from the defaults by an edit."""
        base = DEFAULT_SLAS.get(priority, DEFAULT_SLAS[Priority.P4])
        values: dict[str, int | None] = {s.value: base.after(s) for s in Step}
        edited: set[Step] = set()
        for key in ((ALL_DEPARTMENTS, priority), (department, priority)):
            edit = self.edits.get(key)
            if edit is None:
                continue
            for step in Step:
                seconds = getattr(edit, step.column)
                if seconds is not None:
                    values[step.value] = seconds or None  # 0 turns the step off
                    edited.add(step)
        return Sla(**values), frozenset(edited)

    def sla(self, department: str, priority: str) -> Sla:
        return self.resolve(department, priority)[0]


def phase_of(mention: Mention) -> Phase:
    if mention.state not in OPEN_STATES:
        return Phase.CLOSED
    return Phase.CLAIMED if mention.owner else Phase.UNCLAIMED


def planned_steps(phase: Phase, sla: Sla, started_at: datetime) -> list[tuple[Step, datetime]]:
    """The steps of a phase that is just beginning, with when each is due."""
    steps = [s for s in Step if s.phase is phase and sla.after(s) is not None]
    return [(s, started_at + timedelta(seconds=sla.after(s) or 0)) for s in steps]


def format_duration(seconds: int | None) -> str:
    """900 → "15m", 14400 → "4h", 5400 → "1h30m", None → "off"."""
    if not seconds:
        return "off"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else ""]
    parts += [f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)


def _in_words(seconds: int) -> str:
    units = format_duration(seconds)
    return units.replace("d", " d ").replace("h", " h ").replace("m", " min ").strip()


def _same_phase(mention: Mention, known: SlaPhase | None) -> bool:
    return (
        known is not None
        and known.phase == phase_of(mention)
        and known.department == mention.department
        and known.priority == mention.priority
    )


def _phase_row(
    mention: Mention, phase: str, seq: int, started_at: datetime, known: SlaPhase | None
) -> dict[str, Any]:
    """A row for :func:`storage.sla.save_phases`; ``known``: the phase kept as it was."""
    return {
        "mention_id": mention.id,
        "phase": phase,
        "department": known.department if known is not None else mention.department,
        "priority": known.priority if known is not None else mention.priority,
        "seq": seq,
        "started_at": started_at,
        "seen_updated_at": mention.updated_at,
    }


@dataclass(frozen=True, slots=True)
class Notices:
    """What firing one step sends: outbox kinds with their payloads."""

    items: tuple[tuple[OutboxKind, dict[str, object]], ...]


class SlaEngine:
    def __init__(
        self,
        db: Database,
        *,
        workflow: Workflow,
        clock: Callable[[], datetime] = utcnow,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._workflow = workflow
        self._clock = clock
        self._on_outbox = on_outbox

    async def tick(self) -> int:
        """Catch up with mention changes, then fire what is due; returns how many fired."""
        await self.sync()
        return await self.fire_due()

    # ------------------------------------------------------------ phases → timers

    async def sync(self, *, batch: int = 200) -> int:
        """Bring every changed mention's phase and timers up to date; returns how many."""
        synced = 0
        for _ in range(50):  # bounded, so one tick can't run forever on a huge backlog
            async with self._db.session() as session:
                changed = await sla_store.changed_mentions(session, limit=batch)
                if not changed:
                    break
                policy = PolicyTable.of(await sla_store.policy_edits(session))
                await self._sync_batch(session, changed, policy)
            synced += len(changed)
            if len(changed) < batch:
                break
        return synced

    async def _sync_batch(
        self,
        session: AsyncSession,
        changed: Sequence[tuple[Mention, SlaPhase | None]],
        policy: PolicyTable,
    ) -> None:
        """The phases and timers of a batch of changed mentions, decided in memory and written
        in a few statements: a burst of thousands of new mentions must not hold the writer
        for a handful of statements each."""
        now = self._clock()
        moved = [(m, known) for m, known in changed if not _same_phase(m, known)]
        last_change = await sla_store.last_change_times(
            session, mention_ids=[m.id for m, _ in moved if m.id is not None]
        )
        phases: list[dict[str, Any]] = []
        cancel_below: dict[int, int] = {}
        timers: list[dict[str, Any]] = []
        for mention, known in changed:
            assert mention.id is not None
            if known is not None and _same_phase(mention, known):
                # Nothing the timers depend on changed (for example an escalation, an answer).
                phases.append(_phase_row(mention, known.phase, known.seq, known.started_at, known))
                continue
            phase = phase_of(mention)
            seq = known.seq + 1 if known is not None else 1
            # When the phase began: the mention's last change, or when it was found.
            started_at = last_change.get(mention.id)
            if started_at is None:
                started_at = mention.found_at if known is None else now
            started_at = min(started_at, now)
            cancel_below[mention.id] = seq
            phases.append(_phase_row(mention, phase, seq, started_at, None))
            if phase is Phase.CLOSED or (known is None and now - started_at > CATCH_UP_LIMIT):
                continue
            sla = policy.sla(mention.department, mention.priority)
            timers += [
                {"mention_id": mention.id, "kind": step, "seq": seq, "level": 1, "due_at": due_at}
                for step, due_at in planned_steps(phase, sla, started_at)
            ]
        await sla_store.cancel_pending_below(session, below_seq=cancel_below, now=now)
        await sla_store.save_phases(session, phases=phases)
        await sla_store.add_timers(session, timers=timers)

    # ------------------------------------------------------------ firing

    async def fire_due(self, *, limit: int = 50) -> int:
        now = self._clock()
        async with self._db.session() as session:
            timers = await sla_store.claim_due(
                session, now=now, lease_until=now + LEASE, limit=limit
            )
        fired = 0
        for timer in timers:
            try:
                if await self._fire(timer):
                    fired += 1
            except Exception:
                # The lease runs out and another tick retries; other timers still fire.
                log.exception(
                    "SLA timer %s (%s) failed; retrying after its lease", timer.id, timer.kind
                )
        if fired:
            self._on_outbox()
        return fired

    async def _fire(self, timer: SlaTimer) -> bool:
        assert timer.id is not None
        step = Step(timer.kind)
        if step is Step.ESCALATE and await self._still_due(timer, step):
            await self._escalate(timer)
        async with self._db.session() as session:
            mention = await mention_store.get_mention(
                session, mention_id=timer.mention_id, lock=True
            )
            phase = await sla_store.get_phase(session, mention_id=timer.mention_id)
            now = self._clock()
            current = (
                mention is not None
                and phase is not None
                and phase.seq == timer.seq
                and phase_of(mention) is step.phase
            )
            if step is Step.ESCALATE and mention is not None and phase is not None:
                # Once escalated, the exec post goes out even if someone claimed it meanwhile.
                current = phase.seq == timer.seq and await self._escalated_by_earful(session, timer)
            if not current or mention is None or phase is None:
                await sla_store.finish(
                    session, timer_id=timer.id, now=now, outcome=sla_store.CANCELLED
                )
                return False
            if not await sla_store.finish(
                session, timer_id=timer.id, now=now, outcome=sla_store.FIRED
            ):
                return False
            policy = PolicyTable.of(await sla_store.policy_edits(session))
            sla = policy.sla(phase.department, phase.priority)
            shifts = [
                Shift(s.user_id, s.start_minute, s.end_minute, s.tz, s.days)
                for s in await oncall_store.rota(session, department=mention.department)
            ]
            lead = await lead_store.lead_for(session, department=mention.department)
            notices = build_notices(
                step,
                mention,
                sla=sla,
                on_call=on_call_now(shifts, now),
                lead=lead,
                reminder=timer.level,
            )
            for kind, payload in notices.items:
                outbox.enqueue(session, kind=kind, mention_id=mention.id, payload=dict(payload))
            every = sla.after(Step.REMIND)
            if step is Step.REMIND and every and timer.level < MAX_REMINDERS:
                await sla_store.add_timer(
                    session,
                    mention_id=timer.mention_id,
                    kind=Step.REMIND,
                    seq=timer.seq,
                    level=timer.level + 1,
                    due_at=now + timedelta(seconds=every),
                )
        return True

    async def _still_due(self, timer: SlaTimer, step: Step) -> bool:
        """Whether the escalation is still wanted and not yet done (a retried firing)."""
        async with self._db.session() as session:
            mention = await mention_store.get_mention(session, mention_id=timer.mention_id)
            phase = await sla_store.get_phase(session, mention_id=timer.mention_id)
            if mention is None or phase is None or phase.seq != timer.seq:
                return False
            if phase_of(mention) is not step.phase:
                return False
            return not await self._escalated_by_earful(session, timer)

    @staticmethod
    async def _escalated_by_earful(session: AsyncSession, timer: SlaTimer) -> bool:
        """Whether Earful escalated the mention since this timer was set (a retried firing).

        Both timestamps come from the wall clock of the processes writing them, so they are
        comparable; an escalation of an earlier phase predates the timer of this one.
        """
        stmt = (
            select(col(Event.id))
            .where(
                col(Event.mention_id) == timer.mention_id,
                col(Event.action) == Action.ESCALATE.value,
                col(Event.actor).is_(None),
                col(Event.created_at) >= timer.created_at,
            )
            .limit(1)
        )
        return (await session.execute(stmt)).first() is not None

    async def _escalate(self, timer: SlaTimer) -> None:
        async with self._db.session() as session:
            phase = await sla_store.get_phase(session, mention_id=timer.mention_id)
        assert phase is not None
        sla = await self._sla(phase.department, phase.priority)
        waited = _in_words(sla.escalate or int((timer.due_at - phase.started_at).total_seconds()))
        try:
            await self._workflow.apply(
                mention_id=timer.mention_id,
                action=Action.ESCALATE,
                # None: Earful itself acted, as the audit trail and the card show it.
                actor=None,
                note=f"SLA: unclaimed for {waited} ({phase.priority})",
            )
        except (IllegalTransition, NotFound) as exc:
            # Closed or deleted between the check and the escalation: nothing to escalate.
            log.info("SLA escalation of mention %s skipped: %s", timer.mention_id, exc)

    async def _sla(self, department: str, priority: str) -> Sla:
        async with self._db.session() as session:
            return PolicyTable.of(await sla_store.policy_edits(session)).sla(department, priority)


def build_notices(
    step: Step,
    mention: Mention,
    *,
    sla: Sla,
    on_call: list[str],
    lead: str | None,
    reminder: int = 1,
) -> Notices:
    """The Slack messages one step sends; links to the alert are added at delivery."""
    department = mrkdwn.escape(mention.department)
    what = f"{mention.priority} {department} mention"
    items: list[tuple[OutboxKind, dict[str, object]]] = []
    if step is Step.PING:
        waited = _in_words(sla.ping or 0)
        targets = on_call or ([lead] if lead else [])
        people = " ".join(f"<@{u}>" for u in targets)
        if on_call:
            line = f"{people}: you're on call for {department}. Please claim it or hand it over."
        elif lead:
            line = f"Nobody is on call for {department} right now, so over to the lead {people}."
        else:
            line = (
                f"Nobody is on call for {department} and it has no lead: set them with "
                f"`/earful oncall {department} @someone` and `/earful lead {department} @someone`."
            )
        items.append((OutboxKind.THREAD_NOTE, {"text": f"⏰ Unclaimed for {waited}. {line}"}))
        for user in targets:
            items.append(
                (
                    OutboxKind.DIRECT_MESSAGE,
                    {
                        "user": user,
                        "text": f"⏰ A {what} has been unclaimed for {waited}.",
                        "link": True,
                    },
                )
            )
    elif step is Step.ESCALATE:
        waited = _in_words(sla.escalate or 0)
        who = f"Lead: <@{lead}>." if lead else f"{department} has no lead (`/earful lead`)."
        if on_call:
            who += " On call: " + " ".join(f"<@{u}>" for u in on_call) + "."
        title = mrkdwn.truncate(mrkdwn.escape(mention.title or mention.text), 200)
        items.append(
            (
                OutboxKind.ROUTE_POST,
                {
                    "department": EXEC_ROUTE,
                    "text": f"🚨 *{what} unclaimed for {waited}*, escalated: {title}\n{who}",
                    "link": True,
                },
            )
        )
        if lead:
            items.append(
                (
                    OutboxKind.DIRECT_MESSAGE,
                    {
                        "user": lead,
                        "text": f"🚨 A {what} is still unclaimed after {waited} and was "
                        "escalated to you and the exec channel.",
                        "link": True,
                    },
                )
            )
    elif step is Step.REMIND and mention.owner:
        every = sla.remind or 0
        waited = _in_words(every * reminder)
        items.append(
            (
                OutboxKind.DIRECT_MESSAGE,
                {
                    "user": mention.owner,
                    "text": f"⏳ Still yours: a {what} you claimed about {waited} ago is not "
                    "resolved yet. Resolve it, or hand it over.",
                    "link": True,
                },
            )
        )
    return Notices(tuple(items))
