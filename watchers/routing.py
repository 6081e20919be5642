"""Which department acts on a mention, decided by its main intent and the kind of watch.

The table maps ``(intent, watch kind)`` to a ``Route``; ``(None, kind)`` is the route for a
mention with no clear intent and the fallback for a pair the table lacks. Each route carries a
one-line ``rule`` that the Slack card shows, so people can see why an alert reached them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from watchers.departments import Department, Intent, WatchKind

# When a post shows several intents, the first of these decides the route. Legal exposure is
# the costliest to miss. Employer talk and press say who is speaking, which changes whose
# problem it is: an employee's complaint is HR's, a complaint quoted in an article is PR's.
# Then the customer-facing intents by how soon someone must act. Churn risk comes first: it is
# a complaint with a deadline (the customer decides once, at cancellation or renewal), and it
# must outrank purchase intent because "looking for an alternative to us" fires both and is a
# customer to save, not a buyer. Then an unhappy customer, a fault, a buyer choosing now, an
# open question; feature requests and praise can wait.
SEVERITY: tuple[Intent, ...] = (
    Intent.LEGAL_RISK,
    Intent.EMPLOYER_TALK,
    Intent.PRESS,
    Intent.CHURN_RISK,
    Intent.COMPLAINT,
    Intent.BUG_REPORT,
    Intent.PURCHASE_INTENT,
    Intent.QUESTION,
    Intent.FEATURE_REQUEST,
    Intent.PRAISE,
)

OVERRIDE_RULE = "watch sets department"


@dataclass(frozen=True, slots=True)
class Route:
    department: Department
    cc: tuple[Department, ...]  # departments that also see the alert (e.g. product on a bug)
    rule: str  # why, for the Slack card: "complaint on a brand watch → support"


RoutingTable = Mapping[tuple[Intent | None, WatchKind], Route]


def describe(intent: Intent | None, kind: WatchKind, department: Department) -> str:
    what = intent.value.replace("_", " ") if intent else "no clear intent"
    return f"{what} on a {kind.value} watch → {department.value}"


def _route(
    intent: Intent | None, kind: WatchKind, department: Department, *cc: Department
) -> tuple[tuple[Intent | None, WatchKind], Route]:
    return (intent, kind), Route(department, tuple(cc), describe(intent, kind, department))


def _default_table() -> dict[tuple[Intent | None, WatchKind], Route]:
    d = Department
    table: dict[tuple[Intent | None, WatchKind], Route] = {}
    for kind in (WatchKind.BRAND, WatchKind.PRODUCT):
        table.update(
            [
                _route(Intent.LEGAL_RISK, kind, d.LEGAL, d.PR),
                _route(Intent.EMPLOYER_TALK, kind, d.HR),
                _route(Intent.PRESS, kind, d.PR),
                # An account at risk is support's to save now and sales' (account management)
                # to know about before the renewal.
                _route(Intent.CHURN_RISK, kind, d.SUPPORT, d.SALES),
                _route(Intent.COMPLAINT, kind, d.SUPPORT),
                # Product owns the fault; support is copied because they answer the customer.
                _route(Intent.BUG_REPORT, kind, d.PRODUCT, d.SUPPORT),
                _route(Intent.PURCHASE_INTENT, kind, d.SALES),
                _route(Intent.QUESTION, kind, d.SUPPORT),
                _route(Intent.FEATURE_REQUEST, kind, d.PRODUCT),
            ]
        )
    # Praise of the brand is PR's material (testimonials, people to thank publicly); praise of
    # a product tells its team what works, and PR may still want to share it.
    table.update(
        [
            _route(Intent.PRAISE, WatchKind.BRAND, d.PR),
            _route(None, WatchKind.BRAND, d.PR),
            _route(Intent.PRAISE, WatchKind.PRODUCT, d.PRODUCT, d.PR),
            _route(None, WatchKind.PRODUCT, d.PRODUCT),
        ]
    )
    # A competitor's unhappy or leaving customer, or a buyer weighing them, is a sales
    # opportunity; the rest is intelligence. Their layoffs and hiring are a recruiting
    # opportunity, so HR is copied.
    for intent in Intent:
        if intent in (Intent.COMPLAINT, Intent.CHURN_RISK, Intent.PURCHASE_INTENT):
            table.update([_route(intent, WatchKind.COMPETITOR, d.SALES, d.COMPETITIVE)])
        elif intent is Intent.EMPLOYER_TALK:
            table.update([_route(intent, WatchKind.COMPETITOR, d.COMPETITIVE, d.HR)])
        else:
            table.update([_route(intent, WatchKind.COMPETITOR, d.COMPETITIVE)])
    table.update([_route(None, WatchKind.COMPETITOR, d.COMPETITIVE)])
    # Person watches are our executives: they and PR see what is said about them, except a
    # legal risk, which legal must own.
    for intent in (*Intent, None):
        if intent is Intent.LEGAL_RISK:
            table.update([_route(intent, WatchKind.PERSON, d.LEGAL, d.EXEC, d.PR)])
        else:
            table.update([_route(intent, WatchKind.PERSON, d.EXEC, d.PR)])
    # Topic watches follow a market, not us: research reads them, except a buyer looking for a
    # tool in our category or leaving one (a lead) and wishes for such tools (product input).
    for intent in (*Intent, None):
        if intent in (Intent.PURCHASE_INTENT, Intent.CHURN_RISK):
            table.update([_route(intent, WatchKind.TOPIC, d.SALES, d.RESEARCH)])
        elif intent is Intent.FEATURE_REQUEST:
            table.update([_route(intent, WatchKind.TOPIC, d.RESEARCH, d.PRODUCT)])
        elif intent is Intent.LEGAL_RISK:
            table.update([_route(intent, WatchKind.TOPIC, d.RESEARCH, d.LEGAL)])
        else:
            table.update([_route(intent, WatchKind.TOPIC, d.RESEARCH)])
    return table


DEFAULT_ROUTING: RoutingTable = MappingProxyType(_default_table())


def primary_intent(intents: Sequence[Intent]) -> Intent | None:
    """The intent that decides the route: the most severe one present (see ``SEVERITY``)."""
    present = set(intents)
    return next((i for i in SEVERITY if i in present), None)


def route(
    intents: Sequence[Intent],
    kind: WatchKind,
    *,
    override: Department | None = None,
    table: RoutingTable | None = None,
) -> Route:
    """The department for a mention with these intents (any order) on a watch of this kind."""
    table = DEFAULT_ROUTING if table is None else table
    primary = primary_intent(intents)
    if override is not None:
        # The watch owner's choice wins, but legal still sees anything that looks like legal
        # risk: a forced channel must not hide it from them.
        legal_cc = (
            (Department.LEGAL,)
            if Intent.LEGAL_RISK in intents and override is not Department.LEGAL
            else ()
        )
        return Route(override, legal_cc, OVERRIDE_RULE)
    found = table.get((primary, kind))
    if found is not None:
        return found
    fallback = table.get((None, kind))
    if fallback is None:
        raise KeyError(f"routing table has no route for {kind.value} watches")
    # The fallback's own rule would say "no clear intent", which is not what happened.
    return Route(fallback.department, fallback.cc, describe(primary, kind, fallback.department))
