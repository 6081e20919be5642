"""Team edits to the routing table, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import pickle

from storage import routing_rules as rule_store
from storage.db import Database
from storage.models import RoutingRule
from watchers.departments import Department, Intent, WatchKind
from watchers.routing import DEFAULT_ROUTING, route

D = Department


async def test_a_rule_is_set_replaced_and_reset(db: Database) -> None:
    async with db.session() as session:
        await rule_store.set_rule(
            session,
            intent=Intent.COMPLAINT,
            kind=WatchKind.COMPETITOR,
            department=D.SUPPORT,
            cc=(),
            updated_by="U0ALICE",
        )
    async with db.session() as session:
        await rule_store.set_rule(
            session,
            intent=Intent.COMPLAINT,
            kind=WatchKind.COMPETITOR,
            department=D.SALES,
            cc=(D.COMPETITIVE, D.PR),
            updated_by="U0ADMIN",
        )
    async with db.session() as session:
        [rule] = await rule_store.list_rules(session)
    assert (rule.intent, rule.kind, rule.department) == ("complaint", "competitor", "sales")
    assert rule.cc == ["competitive", "pr"] and rule.updated_by == "U0ADMIN"
    assert rule.updated_at.tzinfo is not None

    async with db.session() as session:
        assert await rule_store.reset_rule(
            session, intent=Intent.COMPLAINT, kind=WatchKind.COMPETITOR
        )
    async with db.session() as session:
        assert await rule_store.list_rules(session) == []
        assert not await rule_store.reset_rule(
            session, intent=Intent.COMPLAINT, kind=WatchKind.COMPETITOR
        )


async def test_no_intent_is_stored_as_a_star_and_kept_apart(db: Database) -> None:
    async with db.session() as session:
        await rule_store.set_rule(
            session, intent=None, kind=WatchKind.BRAND, department=D.SUPPORT, cc=(), updated_by=None
        )
        await rule_store.set_rule(
            session,
            intent=Intent.PRAISE,
            kind=WatchKind.BRAND,
            department=D.PRODUCT,
            cc=(),
            updated_by=None,
        )
    async with db.session() as session:
        rules = await rule_store.list_rules(session)
    assert sorted((r.intent, r.kind) for r in rules) == [("*", "brand"), ("praise", "brand")]
    assert {rule_store.rule_key(r) for r in rules} == {
        (None, WatchKind.BRAND),
        (Intent.PRAISE, WatchKind.BRAND),
    }


async def test_racing_edits_of_one_rule_leave_one_row(db: Database) -> None:
    async def edit(department: Department) -> None:
        async with db.session() as session:
            await rule_store.set_rule(
                session,
                intent=Intent.QUESTION,
                kind=WatchKind.PRODUCT,
                department=department,
                cc=(),
                updated_by="U0ALICE",
            )

    await asyncio.gather(*(edit(d) for d in (D.SUPPORT, D.PRODUCT, D.SALES, D.HR, D.PR)))
    async with db.session() as session:
        [rule] = await rule_store.list_rules(session)
    assert rule.department in {"support", "product", "sales", "hr", "pr"}


async def test_effective_table_routes_by_the_stored_edits(db: Database) -> None:
    async with db.session() as session:
        await rule_store.set_rule(
            session,
            intent=Intent.COMPLAINT,
            kind=WatchKind.BRAND,
            department=D.PR,
            cc=(D.SUPPORT,),
            updated_by="U0ALICE",
        )
        rules = await rule_store.list_rules(session)
    table = rule_store.effective_table(rules)

    edited = route([Intent.COMPLAINT], WatchKind.BRAND, table=table)
    assert (edited.department, edited.cc) == (D.PR, (D.SUPPORT,))
    assert edited.rule == "complaint on a brand watch → pr (team rule)"
    # Everything else is the default, and the default table itself is untouched.
    assert (
        table[(Intent.QUESTION, WatchKind.BRAND)]
        == DEFAULT_ROUTING[(Intent.QUESTION, WatchKind.BRAND)]
    )
    assert route([Intent.COMPLAINT], WatchKind.BRAND).department is D.SUPPORT
    # The scorers run in a process pool: the table must survive pickling.
    assert pickle.loads(pickle.dumps(table)) == table


def test_rules_naming_unknown_things_are_ignored() -> None:
    rules = [
        RoutingRule(intent="gossip", kind="brand", department="pr", cc=[]),
        RoutingRule(intent="complaint", kind="blog", department="pr", cc=[]),
        RoutingRule(intent="complaint", kind="brand", department="finance", cc=[]),
        RoutingRule(intent="complaint", kind="brand", department="pr", cc=["finance"]),
        RoutingRule(intent="*", kind="topic", department="sales", cc=["sales", "research"]),
    ]
    table = rule_store.effective_table(rules)
    assert (
        table[(Intent.COMPLAINT, WatchKind.BRAND)]
        == DEFAULT_ROUTING[(Intent.COMPLAINT, WatchKind.BRAND)]
    )
    fallback = table[(None, WatchKind.TOPIC)]
    # A cc that repeats the department is dropped rather than alerting it twice.
    assert (fallback.department, fallback.cc) == (D.SALES, (D.RESEARCH,))
    assert fallback.rule.endswith("(team rule)")
