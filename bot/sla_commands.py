"""``/earful sla …`` and ``/earful oncall …``: parsing into typed commands, running, replies.

On-call syntax (times are 24-hour, local to each person; a range past midnight such as
22:00-06:00 is an overnight shift that belongs to the day it starts):

    /earful oncall                                     today's rota and who is on call now
    /earful oncall support @ana @ben hours=09:00-17:00 tz=Europe/Paris days=mon-fri
    /earful oncall support @ana:09:00-17:00@Europe/Paris @kai:09:00-17:00@Asia/Tokyo
    /earful oncall support @ana:22:00-06:00@America/New_York:fri-mon
    /earful oncall support add @lee:08:00-16:00@Australia/Sydney
    /earful oncall support remove @lee
    /earful oncall support clear

A person written alone takes ``hours=``, ``tz=`` and ``days=`` (defaults: all day, UTC,
every day); ``@person:HOURS@ZONE:DAYS`` sets any of the three for that person only.
Setting a department's people replaces its rota; ``add`` and ``remove`` change one person.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot import mrkdwn
from bot.errors import CommandError, NotAllowed
from bot.oncall import (
    ALL_DAYS,
    MINUTES_PER_DAY,
    Shift,
    format_days,
    format_hours,
    next_on_call,
    on_call_now,
    parse_days,
    parse_hours,
    parse_zone,
)
from bot.replies import Reply, text_reply
from bot.sla import ALL_DEPARTMENTS, PolicyTable, Step, format_duration
from storage import leads as lead_store
from storage import oncall as oncall_store
from storage import sla as sla_store
from storage.db import Database
from storage.types import utcnow
from watchers.departments import Department, Priority

SLA_EXAMPLE = "/earful sla support P1 ping=15m escalate=30m remind=4h"
ONCALL_EXAMPLE = "/earful oncall support @ana @ben hours=09:00-17:00 tz=Europe/Paris days=mon-fri"
ONCALL_PERSON_EXAMPLE = (
    "/earful oncall support @ana:09:00-17:00@Europe/Paris @kai:09:00-17:00@Asia/Tokyo"
)
MAX_STEP_SECONDS = 30 * 86_400
MIN_STEP_SECONDS = 60
MAX_PEOPLE = 30

_DURATION_PART = re.compile(r"(\d{1,6})\s*(s|sec|m|min|h|hr|d)", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86_400}
_PERSON = re.compile(
    r"^<@([UW][A-Z0-9]{2,})>"
    r"(?::(\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}))?"
    r"(?:@([A-Za-z0-9_+\-/]+))?"
    r"(?::([A-Za-z,\-]+))?$"
)
_STEP_KEYS = {"ping": Step.PING, "escalate": Step.ESCALATE, "remind": Step.REMIND}


@dataclass(frozen=True, slots=True)
class SlaShow:
    pass


@dataclass(frozen=True, slots=True)
class SlaEdit:
    """Set steps for a department (or "*" = all) and priorities; None in ``steps`` = default."""

    department: str
    priorities: tuple[str, ...]
    steps: dict[Step, int | None] = field(default_factory=dict)
    reset: bool = False


@dataclass(frozen=True, slots=True)
class OnCallShow:
    pass


@dataclass(frozen=True, slots=True)
class OnCallSet:
    department: Department
    shifts: tuple[Shift, ...]
    mode: str = "replace"  # "replace" the rota, or "add" (upsert) these people


@dataclass(frozen=True, slots=True)
class OnCallRemove:
    department: Department
    user_id: str


@dataclass(frozen=True, slots=True)
class OnCallClear:
    department: Department


SlaCommand = SlaShow | SlaEdit | OnCallShow | OnCallSet | OnCallRemove | OnCallClear
ADMIN_ONLY = (SlaEdit, OnCallSet, OnCallRemove, OnCallClear)


# ---------------------------------------------------------------- parsing


def parse_sla(tokens: list[str]) -> SlaShow | SlaEdit:
    if not tokens:
        return SlaShow()
    if len(tokens) < 3:
        raise CommandError(
            "`sla` takes a department (or `all`), a priority (P1–P4 or `all`) and the steps "
            "to change: `ping=`, `escalate=`, `remind=` (a duration such as 15m, 4h or 1d; "
            "`off` to turn a step off, `default` to undo an edit), or `reset`.",
            example=SLA_EXAMPLE,
        )
    word = tokens[0].strip().lower()
    if word in ("all", "*", "any"):
        department = ALL_DEPARTMENTS
    else:
        department = _department(tokens[0], SLA_EXAMPLE).value
    level = tokens[1].strip().upper()
    if level in ("ALL", "*"):
        priorities: tuple[str, ...] = tuple(p.value for p in Priority)
    elif level in {p.value for p in Priority}:
        priorities = (level,)
    else:
        raise CommandError(
            f"`{_show(tokens[1])}` is not a priority; use P1, P2, P3, P4 or `all`.",
            example=SLA_EXAMPLE,
        )
    rest = tokens[2:]
    if [t.lower() for t in rest] == ["reset"]:
        return SlaEdit(department=department, priorities=priorities, reset=True)
    steps: dict[Step, int | None] = {}
    for token in rest:
        key, sep, value = token.partition("=")
        step = _STEP_KEYS.get(key.strip().lower())
        if not sep or step is None:
            raise CommandError(
                f"`{_show(token)}` is not a step; use `ping=`, `escalate=` or `remind=` with a "
                "duration (15m, 4h, 1d), `off` or `default`; or `reset` alone.",
                example=SLA_EXAMPLE,
            )
        if step in steps:
            raise CommandError(f"`{step.value}=` is given twice.", example=SLA_EXAMPLE)
        steps[step] = parse_step(value, step)
    return SlaEdit(department=department, priorities=priorities, steps=steps)


def parse_step(value: str, step: Step) -> int | None:
    """Seconds; 0 for ``off``; None for ``default`` (inherit again)."""
    text = value.strip().lower()
    if text in ("off", "none", "never", "0"):
        return 0
    if text in ("default", "inherit"):
        return None
    position, total = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    if not text or position != len(text):
        raise CommandError(
            f"`{step.value}={_show(value)}` is not a duration; use a number and a unit like "
            "15m, 4h, 1h30m or 1d (or `off`, or `default`).",
            example=SLA_EXAMPLE,
        )
    if not MIN_STEP_SECONDS <= total <= MAX_STEP_SECONDS:
        raise CommandError(
            f"`{step.value}=` must be between 1 minute and 30 days.", example=SLA_EXAMPLE
        )
    return total


def parse_oncall(tokens: list[str]) -> OnCallShow | OnCallSet | OnCallRemove | OnCallClear:
    if not tokens:
        return OnCallShow()
    department = _department(tokens[0], ONCALL_EXAMPLE)
    rest = tokens[1:]
    verb = rest[0].lower() if rest else ""
    if verb == "clear":
        if len(rest) != 1:
            raise CommandError(
                f"Unexpected `{_show(' '.join(rest[1:]))}` after `clear`.",
                example=f"/earful oncall {department.value} clear",
            )
        return OnCallClear(department=department)
    if verb == "remove":
        example = f"/earful oncall {department.value} remove @ana"
        match = re.fullmatch(r"<@([UW][A-Z0-9]{2,})>", rest[1]) if len(rest) == 2 else None
        if match is None:
            raise CommandError("`oncall … remove` takes one person, with @.", example=example)
        return OnCallRemove(department=department, user_id=match.group(1))
    mode = "replace"
    if verb == "add":
        mode, rest = "add", rest[1:]
    if not rest:
        raise CommandError(
            f"Say who is on call for {department.value}: mention people with @, then "
            "optionally `hours=`, `tz=` and `days=` (or per person "
            "`@ana:09:00-17:00@Europe/Paris`)."
            f" `/earful oncall {department.value} clear` empties the rota.",
            example=ONCALL_EXAMPLE,
        )
    return _parse_people(department, rest, mode)


def _parse_people(department: Department, tokens: Sequence[str], mode: str) -> OnCallSet:
    options: dict[str, str] = {}
    people: list[re.Match[str]] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep and key.lower() in ("hours", "tz", "days", "zone", "timezone"):
            name = {"zone": "tz", "timezone": "tz"}.get(key.lower(), key.lower())
            if name in options:
                raise CommandError(f"`{name}=` is given twice.", example=ONCALL_EXAMPLE)
            options[name] = value
            continue
        match = _PERSON.match(token)
        if match is None:
            if token.startswith("@") or token.startswith("<@"):
                problem = (
                    f"I can't read `{_show(token)}`. Mention people with @ so Slack sends who "
                    "they are; for one person's hours write `@ana:09:00-17:00@Europe/Paris` "
                    "(optionally `:mon-fri` after the zone)."
                )
            else:
                problem = (
                    f"`{_show(token)}` is neither a person (@ana) nor an option (`hours=`, "
                    "`tz=`, `days=`)."
                )
            raise CommandError(problem, example=ONCALL_PERSON_EXAMPLE)
        people.append(match)
    if not people:
        raise CommandError("Mention at least one person with @.", example=ONCALL_EXAMPLE)
    if len(people) > MAX_PEOPLE:
        raise CommandError(f"At most {MAX_PEOPLE} people per rota.", example=ONCALL_EXAMPLE)
    default_hours = (
        parse_hours(options["hours"], example=ONCALL_EXAMPLE)
        if "hours" in options
        else (0, MINUTES_PER_DAY)
    )
    default_zone = parse_zone(options["tz"], example=ONCALL_EXAMPLE) if "tz" in options else "UTC"
    default_days = (
        parse_days(options["days"], example=ONCALL_EXAMPLE) if "days" in options else ALL_DAYS
    )
    shifts: dict[str, Shift] = {}
    for match in people:
        user_id, hours, zone, days = match.groups()
        if user_id in shifts:
            raise CommandError(
                f"<@{user_id}> is listed twice; give each person one shift.",
                example=ONCALL_PERSON_EXAMPLE,
            )
        start, end = parse_hours(hours, example=ONCALL_PERSON_EXAMPLE) if hours else default_hours
        shifts[user_id] = Shift(
            user_id=user_id,
            start_minute=start,
            end_minute=end,
            tz=parse_zone(zone, example=ONCALL_PERSON_EXAMPLE) if zone else default_zone,
            days=parse_days(days, example=ONCALL_PERSON_EXAMPLE) if days else default_days,
        )
    return OnCallSet(department=department, shifts=tuple(shifts.values()), mode=mode)


def _department(value: str, example: str) -> Department:
    try:
        return Department(value.strip().lower())
    except ValueError:
        raise CommandError(
            f"`{_show(value)}` is not a department; use one of: "
            + ", ".join(d.value for d in Department)
            + ".",
            example=example,
        ) from None


def _show(value: str, limit: int = 60) -> str:
    value = value.replace("`", "'").replace("\n", " ")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- running


async def run(
    command: SlaCommand,
    *,
    db: Database,
    user_id: str,
    is_admin: bool,
    clock: Callable[[], datetime] = utcnow,
) -> Reply:
    if isinstance(command, ADMIN_ONLY) and not is_admin:
        raise NotAllowed(
            "Only Earful admins can change SLAs and on-call rotas. Ask an admin to add your "
            f"user ID (`{user_id}`) to EARFUL_ADMINS."
        )
    if isinstance(command, SlaShow):
        async with db.read() as session:
            table = PolicyTable.of(await sla_store.policy_edits(session))
        return sla_reply(table)
    if isinstance(command, SlaEdit):
        return await _sla_edit(command, db=db, user_id=user_id)
    if isinstance(command, OnCallShow):
        async with db.read() as session:
            shifts = await oncall_store.rota(session)
            leads = await lead_store.list_leads(session)
        rota: dict[str, list[Shift]] = {}
        for s in shifts:
            rota.setdefault(s.department, []).append(
                Shift(s.user_id, s.start_minute, s.end_minute, s.tz, s.days)
            )
        return oncall_reply(rota, leads, now=clock())
    department = command.department.value
    async with db.session() as session:
        if isinstance(command, OnCallClear):
            removed = await oncall_store.clear_rota(session, department=department)
            return text_reply(
                f"The *{department}* rota is empty now ({removed} removed): SLA pings go to "
                "its lead."
                if removed
                else f"*{department}* had nobody on call."
            )
        if isinstance(command, OnCallRemove):
            gone = await oncall_store.remove_person(
                session, department=department, user_id=command.user_id
            )
            return text_reply(
                f"<@{command.user_id}> is off the *{department}* rota."
                if gone
                else f"<@{command.user_id}> was not on the *{department}* rota."
            )
        values = [
            oncall_store.ShiftValues(s.user_id, s.start_minute, s.end_minute, s.tz, s.days)
            for s in command.shifts
        ]
        if command.mode == "add":
            for value in values:
                await oncall_store.upsert_shift(
                    session, department=department, shift=value, updated_by=user_id
                )
        else:
            await oncall_store.replace_rota(
                session, department=department, shifts=values, updated_by=user_id
            )
    lines = [f"• {_shift_line(s)}" for s in command.shifts]
    verb = "now includes" if command.mode == "add" else "is now"
    now_on = on_call_now(command.shifts, clock())
    footer = (
        "On call right now: " + " ".join(f"<@{u}>" for u in now_on) + "."
        if now_on
        else "Nobody among them is on call right now."
    )
    return text_reply(
        f":white_check_mark: The *{department}* on-call rota {verb}:\n"
        + "\n".join(lines)
        + f"\n{footer}"
    )


async def _sla_edit(command: SlaEdit, *, db: Database, user_id: str) -> Reply:
    where = "all departments" if command.department == ALL_DEPARTMENTS else command.department
    which = "/".join(command.priorities)
    async with db.session() as session:
        if command.reset:
            for priority in command.priorities:
                await sla_store.reset_policy(
                    session, department=command.department, priority=priority
                )
        else:
            steps = {step.column: seconds for step, seconds in command.steps.items()}
            for priority in command.priorities:
                await sla_store.edit_policy(
                    session,
                    department=command.department,
                    priority=priority,
                    steps=steps,
                    updated_by=user_id,
                )
        table = PolicyTable.of(await sla_store.policy_edits(session))
    if command.reset:
        head = f":white_check_mark: SLA edits for {where} {which} removed."
    else:
        changes = ", ".join(
            f"{step.value} {'default' if s is None else format_duration(s)}"
            for step, s in command.steps.items()
        )
        head = f":white_check_mark: SLA for {where} {which}: {changes}."
    reply = sla_reply(table)
    note = "Mentions already waiting keep their timers; new ones and new claims use this."
    return Reply(
        text=f"{head} {note}\n{reply.text}",
        blocks=[*text_reply(f"{head}\n{note}").blocks, *reply.blocks],
    )


# ---------------------------------------------------------------- replies


def sla_reply(table: PolicyTable) -> Reply:
    """One line per department and priority: ping / escalate / remind, edits marked with *."""
    header = f"{'':<12}" + "".join(f"{p.value:<17}" for p in Priority)
    rows = [header.rstrip()]
    for department in ["(default)", *(d.value for d in Department)]:
        cells = []
        for priority in Priority:
            dept = ALL_DEPARTMENTS if department == "(default)" else department
            sla, edited = table.resolve(dept, priority.value)
            parts = [
                format_duration(sla.after(step)) + ("*" if step in edited else "") for step in Step
            ]
            cells.append(f"{'/'.join(parts):<17}")
        rows.append(f"{department:<12}" + "".join(cells).rstrip())
    body = "```\n" + "\n".join(rows) + "\n```"
    intro = (
        "*SLAs* — each cell is ping / escalate / remind. Unclaimed: *ping* whoever is on call "
        "(or the lead), then *escalate* to the lead and the exec channel; claimed: *remind* "
        "the owner. `off` = never; `*` = edited by an admin."
    )
    blocks = [
        text_reply(intro).blocks[0],
        text_reply(body).blocks[0],
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Change one: `{SLA_EXAMPLE}`"}],
        },
    ]
    return Reply(text=f"SLAs (ping/escalate/remind):\n{body}", blocks=blocks)


def _shift_line(shift: Shift, *, now: datetime | None = None) -> str:
    line = (
        f"<@{shift.user_id}> {format_hours(shift)} {mrkdwn.escape(shift.tz)}, "
        f"{format_days(shift.days)}"
    )
    if now is None:
        return line
    # Today is the person's today: a Tokyo shift shows Tokyo's date, whoever is looking.
    window = shift.window_on(now.astimezone(shift.zone()).date())
    if window is None:
        line += " · off today"
    else:
        line += f" · today {mrkdwn.date(window[0], '{time}')}–{mrkdwn.date(window[1], '{time}')}"
        line += " your time"
    if shift.covers(now):
        line += " · :large_green_circle: *on call now*"
    return line


def oncall_reply(rota: dict[str, list[Shift]], leads: dict[str, str], *, now: datetime) -> Reply:
    if not rota:
        return text_reply(
            "No on-call rotas yet; SLA pings go to department leads. Set one with "
            f"`{ONCALL_EXAMPLE}`."
        )
    sections: list[str] = []
    for department, shifts in sorted(rota.items()):
        now_on = on_call_now(shifts, now)
        if now_on:
            status = "On call now: " + " ".join(f"<@{u}>" for u in now_on)
        else:
            upcoming = next_on_call(shifts, now)
            status = "Nobody on call now"
            if upcoming is not None:
                status += f"; next <@{upcoming[0]}> {mrkdwn.date(upcoming[1])}"
            lead = leads.get(department)
            status += f" (pings go to the lead <@{lead}>)" if lead else " (and no lead set)"
        lines = "\n".join(f"• {_shift_line(s, now=now)}" for s in shifts)
        sections.append(f"*{department}* — {status}\n{lines}")
    blocks = [text_reply(chunk).blocks[0] for chunk in _chunks(sections, 2800)]
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Hours are each person's local time; the times after · are shown "
                    "in yours.",
                }
            ],
        }
    )
    return Reply(
        text="On-call rotas: " + "; ".join(s.split("\n")[0] for s in sections), blocks=blocks[:50]
    )


def _chunks(sections: Sequence[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for section in sections:
        piece = section if len(section) <= limit else section[: limit - 1] + "…"
        if current and len(current) + len(piece) + 2 > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks
