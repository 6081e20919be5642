"""Mention (storage) → AlertCard (what the Slack card shows)."""

from __future__ import annotations

from bot.cards import AlertCard, CardEvent
from storage.models import Event, Mention
from watchers.query import find_spans


def card_event(event: Event | None) -> CardEvent | None:
    if event is None:
        return None
    return CardEvent(actor=event.actor, action=event.action, at=event.created_at, note=event.note)


def card_for(mention: Mention, last_event: Event | None = None) -> AlertCard:
    assert mention.id is not None
    return AlertCard(
        mention_id=mention.id,
        watch_name=mention.watch_name,
        source=mention.source,
        author=mention.author,
        url=mention.url,
        title=mention.title,
        text=mention.text,
        published_at=mention.published_at,
        highlight_spans=tuple(find_spans(mention.text, mention.matched_terms)),
        matched_terms=tuple(mention.matched_terms),
        sentiment_label=mention.sentiment_label,
        sentiment_compound=mention.sentiment_compound,
        intents=tuple(str(hit["intent"]) for hit in mention.intents),
        department=mention.department,
        cc=tuple(mention.cc),
        route_rule=mention.route_rule,
        priority=mention.priority,
        priority_reason=mention.priority_reason,
        state=mention.state,
        owner=mention.owner,
        escalation_level=mention.escalation_level,
        last_event=card_event(last_event),
    )
