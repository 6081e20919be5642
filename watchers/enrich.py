"""Everything Earful decides about a matched post: sentiment, intents, department, priority.

Pure and CPU-bound: the runner calls ``enrich`` in a thread or process pool so a burst of
posts never blocks the event loop. The result is a frozen, picklable value.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchers.departments import Department, Priority, WatchKind
from watchers.intents import IntentHit, IntentRules, detect_intents
from watchers.priority import prioritize
from watchers.routing import RoutingTable, route
from watchers.sentiment import Sentiment, score_sentiment


@dataclass(frozen=True, slots=True)
class Enrichment:
    sentiment: Sentiment
    intents: tuple[IntentHit, ...]  # strongest first
    department: Department
    cc: tuple[Department, ...]
    route_rule: str  # why this department, for the Slack card
    priority: Priority
    priority_reason: str


def enrich(
    *,
    title: str | None,
    text: str,
    kind: WatchKind,
    department_override: Department | None = None,
    author_reach: int | None = None,
    velocity: int = 1,
    rules: IntentRules | None = None,
    routing: RoutingTable | None = None,
) -> Enrichment:
    """Score one mention. ``rules`` and ``routing`` default to the packaged ones."""
    # The title is part of what the poster says (HN, Reddit, reviews), so it shares the tone.
    sentiment = score_sentiment(f"{title}\n{text}" if title else text)
    hits = tuple(detect_intents(text, title=title, rules=rules))
    intents = [hit.intent for hit in hits]
    chosen = route(intents, kind, override=department_override, table=routing)
    priority, reason = prioritize(
        sentiment=sentiment, intents=intents, author_reach=author_reach, velocity=velocity
    )
    return Enrichment(
        sentiment=sentiment,
        intents=hits,
        department=chosen.department,
        cc=chosen.cc,
        route_rule=chosen.rule,
        priority=priority,
        priority_reason=reason,
    )
