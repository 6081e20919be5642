"""Team edits to the routing table: (intent, watch kind) → department and cc departments.

The packaged defaults live in ``watchers.routing``; a row here replaces one entry of them.
``effective_table`` applies the rows and returns a plain ``dict``, which (unlike the read-only
default mapping) can be pickled into the scoring process pool.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import RoutingRule
from storage.types import utcnow
from watchers.departments import Department, Intent, WatchKind
from watchers.routing import DEFAULT_ROUTING, Route, RoutingTable, describe

log = logging.getLogger(__name__)

NO_INTENT = "*"  # how a rule for "no clear intent" stores its intent
TEAM_RULE = "team rule"

RuleKey = tuple[Intent | None, WatchKind]


def intent_column(intent: Intent | None) -> str:
    return intent.value if intent is not None else NO_INTENT


def rule_key(rule: RoutingRule) -> RuleKey | None:
    """The table key a stored rule edits, or None when it names an intent or kind we dropped."""
    try:
        intent = None if rule.intent == NO_INTENT else Intent(rule.intent)
        return intent, WatchKind(rule.kind)
    except ValueError:
        return None


async def list_rules(session: AsyncSession) -> list[RoutingRule]:
    result = await session.execute(
        select(RoutingRule).order_by(col(RoutingRule.kind), col(RoutingRule.intent))
    )
    return list(result.scalars())


async def set_rule(
    session: AsyncSession,
    *,
    intent: Intent | None,
    kind: WatchKind,
    department: Department,
    cc: Sequence[Department],
    updated_by: str | None,
) -> None:
    """Insert or replace the rule for (intent, kind) in one statement, race-free on both engines."""
    values: dict[str, Any] = {
        "intent": intent_column(intent),
        "kind": kind.value,
        "department": department.value,
        "cc": [d.value for d in cc],
        "updated_by": updated_by,
        "updated_at": utcnow(),
    }
    table = RoutingRule.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["intent", "kind"],
        set_={key: stmt.excluded[key] for key in ("department", "cc", "updated_by", "updated_at")},
    )
    await session.execute(stmt)


async def reset_rule(session: AsyncSession, *, intent: Intent | None, kind: WatchKind) -> bool:
    """Back to the default for (intent, kind); False when there was no edit to remove."""
    result = cast(
        "CursorResult[Any]",
        await session.execute(
            delete(RoutingRule).where(
                col(RoutingRule.intent) == intent_column(intent),
                col(RoutingRule.kind) == kind.value,
            )
        ),
    )
    return bool(result.rowcount)


def team_rule_text(intent: Intent | None, kind: WatchKind, department: Department) -> str:
    # The card escapes this text, so a <@user> mention would show as raw markup: who set the
    # rule is shown by `/earful routes` instead.
    return f"{describe(intent, kind, department)} ({TEAM_RULE})"


def effective_table(
    rules: Iterable[RoutingRule], *, defaults: RoutingTable = DEFAULT_ROUTING
) -> dict[RuleKey, Route]:
    """The defaults with every stored edit applied; each edited route says it is a team rule."""
    table: dict[RuleKey, Route] = dict(defaults)
    for rule in rules:
        key = rule_key(rule)
        try:
            department = Department(rule.department)
            cc = tuple(Department(d) for d in rule.cc if d != rule.department)
        except ValueError:
            key = None
        if key is None:
            # A rule saved before a department, intent or kind was renamed must not stop
            # routing; the default stays in force and the log says why.
            log.warning(
                "ignoring routing rule %s/%s: unknown intent, kind or department",
                rule.intent,
                rule.kind,
            )
            continue
        table[key] = Route(department, cc, team_rule_text(key[0], key[1], department))
    return table
