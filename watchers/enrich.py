"""Everything Earful decides about a matched post: sentiment, intents, department, priority.

Pure and CPU-bound: the runner calls ``enrich`` in a thread or process pool so a burst of
posts never blocks the event loop. The result is a frozen, picklable value.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchers import intents, sentiment
from watchers.departments import Department, Priority, WatchKind
from watchers.intents import IntentHit, IntentRules, detect_intents, detect_prepared
from watchers.priority import prioritize
from watchers.routing import RoutingTable, route
from watchers.sentiment import Sentiment, clean_social_lines, clean_social_text, score_sentiment


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
    tone, hits = _tone_and_intents(title, text, rules)
    found = [hit.intent for hit in hits]
    chosen = route(found, kind, override=department_override, table=routing)
    priority, reason = prioritize(
        sentiment=tone, intents=found, author_reach=author_reach, velocity=velocity
    )
    return Enrichment(
        sentiment=tone,
        intents=hits,
        department=chosen.department,
        cc=chosen.cc,
        route_rule=chosen.rule,
        priority=priority,
        priority_reason=reason,
    )


def _tone_and_intents(
    title: str | None, text: str, rules: IntentRules | None
) -> tuple[Sentiment, tuple[IntentHit, ...]]:
    """``score_sentiment`` of title and text joined, and ``detect_intents`` of the post, with
    the social-text cleaning they both start with done once when that gives the same texts.

    Cleaning rewrites each line on its own (see ``clean_social_lines``), so for a title of one
    line, cleaning "title\\ntext" is the cleaned title, a line break and the text's cleaned
    lines, stripped. That holds while neither cut applies: the joined post within what
    sentiment cleans (MAX_RAW_CHARS), hence the text within what intents clean.
    """
    # The title is part of what the poster says (HN, Reddit, reviews), so it shares the tone.
    joined = f"{title}\n{text}" if title else text
    one_line_title = not title or title.splitlines() == [title]
    if len(joined) > min(sentiment.MAX_RAW_CHARS, intents.MAX_RAW_CHARS) or not one_line_title:
        return score_sentiment(joined), tuple(detect_intents(text, title=title, rules=rules))
    text_lines = clean_social_lines(text)
    cleaned_text = text_lines.strip()
    cleaned_title = clean_social_text(title) if title else None
    cleaned_post = (
        f"{cleaned_title}\n{text_lines}".strip() if cleaned_title is not None else cleaned_text
    )
    tone = sentiment.score_cleaned(cleaned_post[: sentiment.MAX_ANALYSED_CHARS])
    hits = detect_prepared(
        intents.prepare_cleaned(cleaned_text[: intents.MAX_SCANNED_CHARS]),
        title=(
            intents.prepare_cleaned(cleaned_title[: intents.MAX_SCANNED_CHARS])
            if cleaned_title is not None
            else None
        ),
        rules=rules,
    )
    return tone, tuple(hits)
