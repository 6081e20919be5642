from __future__ import annotations

import pytest

from watchers.departments import Department, Intent, WatchKind
from watchers.routing import (
    DEFAULT_ROUTING,
    OVERRIDE_RULE,
    SEVERITY,
    Route,
    RoutingTable,
    primary_intent,
    route,
)


@pytest.mark.parametrize(
    ("intent", "kind", "department", "cc"),
    [
        (Intent.COMPLAINT, WatchKind.BRAND, Department.SUPPORT, ()),
        (Intent.QUESTION, WatchKind.BRAND, Department.SUPPORT, ()),
        # Product owns a fault; support is copied because they answer the customer.
        (Intent.BUG_REPORT, WatchKind.BRAND, Department.PRODUCT, (Department.SUPPORT,)),
        (Intent.BUG_REPORT, WatchKind.PRODUCT, Department.PRODUCT, (Department.SUPPORT,)),
        (Intent.FEATURE_REQUEST, WatchKind.BRAND, Department.PRODUCT, ()),
        (Intent.FEATURE_REQUEST, WatchKind.PRODUCT, Department.PRODUCT, ()),
        (Intent.QUESTION, WatchKind.PRODUCT, Department.SUPPORT, ()),
        (Intent.COMPLAINT, WatchKind.PRODUCT, Department.SUPPORT, ()),
        # An account at risk: support saves it, sales (account management) must know.
        (Intent.CHURN_RISK, WatchKind.BRAND, Department.SUPPORT, (Department.SALES,)),
        (Intent.CHURN_RISK, WatchKind.PRODUCT, Department.SUPPORT, (Department.SALES,)),
        (Intent.EMPLOYER_TALK, WatchKind.PRODUCT, Department.HR, ()),
        (Intent.PRESS, WatchKind.PRODUCT, Department.PR, ()),
        (Intent.PURCHASE_INTENT, WatchKind.PRODUCT, Department.SALES, ()),
        (Intent.EMPLOYER_TALK, WatchKind.BRAND, Department.HR, ()),
        (Intent.LEGAL_RISK, WatchKind.BRAND, Department.LEGAL, (Department.PR,)),
        (Intent.LEGAL_RISK, WatchKind.PRODUCT, Department.LEGAL, (Department.PR,)),
        (Intent.PRESS, WatchKind.BRAND, Department.PR, ()),
        (Intent.PURCHASE_INTENT, WatchKind.BRAND, Department.SALES, ()),
        (Intent.PRAISE, WatchKind.BRAND, Department.PR, ()),
        (Intent.PRAISE, WatchKind.PRODUCT, Department.PRODUCT, (Department.PR,)),
        # A competitor's unhappy customer or a buyer comparing is a sales opportunity.
        (Intent.COMPLAINT, WatchKind.COMPETITOR, Department.SALES, (Department.COMPETITIVE,)),
        (Intent.PURCHASE_INTENT, WatchKind.COMPETITOR, Department.SALES, (Department.COMPETITIVE,)),
        (Intent.CHURN_RISK, WatchKind.COMPETITOR, Department.SALES, (Department.COMPETITIVE,)),
        (Intent.QUESTION, WatchKind.COMPETITOR, Department.COMPETITIVE, ()),
        (Intent.FEATURE_REQUEST, WatchKind.COMPETITOR, Department.COMPETITIVE, ()),
        (Intent.PRAISE, WatchKind.COMPETITOR, Department.COMPETITIVE, ()),
        (Intent.BUG_REPORT, WatchKind.COMPETITOR, Department.COMPETITIVE, ()),
        (Intent.PRESS, WatchKind.COMPETITOR, Department.COMPETITIVE, ()),
        (Intent.LEGAL_RISK, WatchKind.COMPETITOR, Department.COMPETITIVE, ()),
        (Intent.EMPLOYER_TALK, WatchKind.COMPETITOR, Department.COMPETITIVE, (Department.HR,)),
        (Intent.COMPLAINT, WatchKind.PERSON, Department.EXEC, (Department.PR,)),
        (Intent.PRESS, WatchKind.PERSON, Department.EXEC, (Department.PR,)),
        (Intent.PRAISE, WatchKind.PERSON, Department.EXEC, (Department.PR,)),
        (Intent.CHURN_RISK, WatchKind.PERSON, Department.EXEC, (Department.PR,)),
        (Intent.LEGAL_RISK, WatchKind.PERSON, Department.LEGAL, (Department.EXEC, Department.PR)),
        (Intent.PURCHASE_INTENT, WatchKind.TOPIC, Department.SALES, (Department.RESEARCH,)),
        (Intent.CHURN_RISK, WatchKind.TOPIC, Department.SALES, (Department.RESEARCH,)),
        (Intent.COMPLAINT, WatchKind.TOPIC, Department.RESEARCH, ()),
        (Intent.FEATURE_REQUEST, WatchKind.TOPIC, Department.RESEARCH, (Department.PRODUCT,)),
    ],
)
def test_default_routes(
    intent: Intent, kind: WatchKind, department: Department, cc: tuple[Department, ...]
) -> None:
    chosen = route([intent], kind)
    assert (chosen.department, chosen.cc) == (department, cc)


@pytest.mark.parametrize(
    ("kind", "department"),
    [
        (WatchKind.BRAND, Department.PR),
        (WatchKind.PRODUCT, Department.PRODUCT),
        (WatchKind.TOPIC, Department.RESEARCH),
        (WatchKind.PERSON, Department.EXEC),
        (WatchKind.COMPETITOR, Department.COMPETITIVE),
    ],
)
def test_no_intent_routes_by_watch_kind(kind: WatchKind, department: Department) -> None:
    chosen = route([], kind)
    assert chosen.department is department
    assert chosen.rule == f"no clear intent on a {kind.value} watch → {department.value}"


def test_rule_explains_the_route_for_the_card() -> None:
    assert route([Intent.COMPLAINT], WatchKind.BRAND).rule == "complaint on a brand watch → support"
    assert (
        route([Intent.BUG_REPORT], WatchKind.PRODUCT).rule
        == "bug report on a product watch → product"
    )
    assert (
        route([Intent.CHURN_RISK], WatchKind.BRAND).rule == "churn risk on a brand watch → support"
    )


def test_the_default_table_covers_every_intent_and_kind() -> None:
    for kind in WatchKind:
        for intent in (*Intent, None):
            assert (intent, kind) in DEFAULT_ROUTING


def test_the_default_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_ROUTING[(None, WatchKind.BRAND)] = Route(Department.HR, (), "x")  # type: ignore[index]


@pytest.mark.parametrize(
    ("intents", "primary"),
    [
        ([Intent.PRAISE, Intent.LEGAL_RISK], Intent.LEGAL_RISK),
        ([Intent.COMPLAINT, Intent.EMPLOYER_TALK], Intent.EMPLOYER_TALK),
        ([Intent.QUESTION, Intent.BUG_REPORT], Intent.BUG_REPORT),
        ([Intent.FEATURE_REQUEST, Intent.QUESTION], Intent.QUESTION),
        ([Intent.PRAISE, Intent.PURCHASE_INTENT], Intent.PURCHASE_INTENT),
        ([Intent.COMPLAINT, Intent.PRESS], Intent.PRESS),
        ([Intent.COMPLAINT, Intent.CHURN_RISK], Intent.CHURN_RISK),
        ([Intent.PURCHASE_INTENT, Intent.CHURN_RISK], Intent.CHURN_RISK),
        ([Intent.CHURN_RISK, Intent.EMPLOYER_TALK], Intent.EMPLOYER_TALK),
        ([], None),
    ],
)
def test_the_most_severe_intent_decides(intents: list[Intent], primary: Intent | None) -> None:
    assert primary_intent(intents) is primary
    assert primary_intent(list(reversed(intents))) is primary


def test_severity_lists_every_intent_once() -> None:
    assert sorted(SEVERITY) == sorted(Intent)


@pytest.mark.parametrize(
    ("kind", "department", "cc"),
    [
        (WatchKind.BRAND, Department.SUPPORT, (Department.SALES,)),
        (WatchKind.COMPETITOR, Department.SALES, (Department.COMPETITIVE,)),
    ],
)
def test_looking_for_an_alternative_depends_on_whose_customer_it_is(
    kind: WatchKind, department: Department, cc: tuple[Department, ...]
) -> None:
    # The rules fire both intents on "looking for an alternative to X"; leaving us is a
    # customer to save, leaving a competitor is a lead.
    chosen = route([Intent.PURCHASE_INTENT, Intent.CHURN_RISK], kind)
    assert (chosen.department, chosen.cc) == (department, cc)


def test_an_employee_complaining_goes_to_hr_not_support() -> None:
    assert (
        route([Intent.COMPLAINT, Intent.EMPLOYER_TALK], WatchKind.BRAND).department is Department.HR
    )


def test_the_watch_override_wins() -> None:
    chosen = route([Intent.COMPLAINT], WatchKind.BRAND, override=Department.PRODUCT)
    assert chosen == Route(Department.PRODUCT, (), OVERRIDE_RULE)
    assert OVERRIDE_RULE == "watch sets department"


def test_an_override_still_copies_legal_on_legal_risk() -> None:
    assert route([Intent.LEGAL_RISK], WatchKind.BRAND, override=Department.SUPPORT).cc == (
        Department.LEGAL,
    )
    assert route([Intent.LEGAL_RISK], WatchKind.BRAND, override=Department.LEGAL).cc == ()


def test_a_custom_table_is_used_and_falls_back_to_the_no_intent_route() -> None:
    table: RoutingTable = {
        (Intent.PRAISE, WatchKind.BRAND): Route(
            Department.SALES, (), "praise on a brand watch → sales"
        ),
        (None, WatchKind.BRAND): Route(
            Department.RESEARCH, (Department.PR,), "no clear intent on a brand watch → research"
        ),
    }
    assert route([Intent.PRAISE], WatchKind.BRAND, table=table).department is Department.SALES
    fallback = route([Intent.COMPLAINT], WatchKind.BRAND, table=table)
    assert fallback == Route(
        Department.RESEARCH, (Department.PR,), "complaint on a brand watch → research"
    )
    with pytest.raises(KeyError, match="topic"):
        route([Intent.COMPLAINT], WatchKind.TOPIC, table=table)
