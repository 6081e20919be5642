"""Block Kit for summary alerts: a burst of low-priority mentions as one message and a thread.

Pure functions, like bot/cards.py: data in, blocks and texts out, built with ``slack_sdk.models``
so Slack's limits are checked, every piece of source text escaped and capped. The thread
replies list the grouped mentions, a bounded number per reply, each section well under
Slack's 3,000 characters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot import mrkdwn
from bot.cards import (
    department_label,
    intent_label,
    priority_badge,
    sentiment_emoji,
    source_label,
)

HEADER_LIMIT = 75
TOP_SHOWN = 5  # per count field; the rest are summed up as "others"
FIELD_LIMIT = 1900  # Slack's is 2,000 per field
EXAMPLE_SNIPPET_LIMIT = 280
SECTION_LIMIT = 2900  # Slack's is 3,000 per section text
LINE_TITLE_LIMIT = 100
LINK_URL_LIMIT = 500  # a longer URL is left out of a line rather than bloat the reply
FALLBACK_LIMIT = 300


@dataclass(frozen=True)
class GroupedMention:
    """One mention as a summary shows it (an example, or a line in the thread)."""

    mention_id: int
    priority: str
    watch_name: str
    source: str
    author: str | None
    title: str | None
    text: str
    url: str | None
    sentiment_label: str


@dataclass(frozen=True)
class SummaryCard:
    department: str
    size: int
    since: datetime
    by_priority: tuple[tuple[str, int], ...]
    by_watch: tuple[tuple[str, int], ...]
    by_intent: tuple[tuple[str | None, int], ...]
    by_source: tuple[tuple[str, int], ...]
    by_sentiment: tuple[tuple[str, int], ...]
    examples: tuple[GroupedMention, ...]


def markdown(text: str) -> MarkdownTextObject:
    # verbatim, as on alert cards: Slack must not auto-link or parse mentions in source text.
    return MarkdownTextObject(text=text, verbatim=True)


def one_line(text: str) -> str:
    return " ".join(mrkdwn.clean(text).split())


def _to_dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]  # to_dict() runs slack_sdk's validators


def _count_lines(pairs: Sequence[tuple[str, int]]) -> str:
    total: Counter[str] = Counter()
    for key, n in pairs:
        total[key] += n  # keys that collapsed to one label (two feeds of one site) add up
    ranked = sorted(total.items(), key=lambda pair: (-pair[1], pair[0]))
    lines = [f"{mrkdwn.truncate(key, 60)}: {n:,}" for key, n in ranked[:TOP_SHOWN]]
    others = sum(n for _, n in ranked[TOP_SHOWN:])
    if others:
        lines.append(f"others: {others:,}")
    return "\n".join(lines) or "-"


def _field(title: str, pairs: Sequence[tuple[str, int]]) -> MarkdownTextObject:
    return markdown(f"*{title}*\n{_count_lines(pairs)}"[:FIELD_LIMIT])


def _label(mention: GroupedMention, limit: int) -> str:
    return mrkdwn.plain(mention.title or mention.text, limit) or "(no text)"


def _link(mention: GroupedMention, label: str) -> str:
    url = mrkdwn.safe_url(mention.url)
    return mrkdwn.link(url if url and len(url) <= LINK_URL_LIMIT else None, label)


def queue_command(department: str) -> str:
    return f"/earful queue {department}"


def summary_blocks(card: SummaryCard) -> tuple[list[dict[str, Any]], str]:
    """The summary alert: how many, counts by watch / intent / source / sentiment, a few
    examples with links, and where to act on them (the queue)."""
    department = department_label(card.department)
    noun = "mention" if card.size == 1 else "mentions"
    header = f"📥 {card.size:,} low-priority {noun} · {department}"
    priorities = ", ".join(f"{priority_badge(p)} {n:,}" for p, n in card.by_priority)
    intro = (
        f"*A burst of low-priority {noun}* since {mrkdwn.date(card.since)} ({priorities}), "
        "grouped into this one alert instead of a card each. Every one is listed in the "
        f"thread and waits in the queue: `{queue_command(card.department)}`."
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=mrkdwn.plain(header, HEADER_LIMIT), emoji=True)),
        SectionBlock(text=markdown(intro)),
        SectionBlock(
            fields=[
                _field("By watch", card.by_watch),
                _field(
                    "By intent",
                    [(intent_label(i) if i else "no clear intent", n) for i, n in card.by_intent],
                ),
                _field("By source", [(source_label(s), n) for s, n in card.by_source]),
                _field(
                    "By sentiment",
                    [(f"{sentiment_emoji(s)} {s}".strip(), n) for s, n in card.by_sentiment],
                ),
            ]
        ),
    ]
    if card.examples:
        blocks.append(SectionBlock(text=markdown("*Top examples*")))
        for example in card.examples:
            head = " · ".join(
                [
                    f"*{priority_badge(example.priority)}*",
                    mrkdwn.truncate(source_label(example.source), 120),
                    _link(example, "original"),
                ]
            )
            snippet = mrkdwn.truncate(
                one_line(example.title or example.text), EXAMPLE_SNIPPET_LIMIT
            )
            blocks.append(SectionBlock(text=markdown(f"{head}\n{snippet or '_No text._'}")))
    blocks.append(
        ContextBlock(
            elements=[
                markdown(
                    f"Claim them from `{queue_command(card.department)}` (or find one with "
                    "`/earful search &lt;words&gt;`); their updates are noted in this thread."
                )
            ]
        )
    )
    text = mrkdwn.truncate(
        f"{card.size:,} low-priority {noun} for {department}, grouped: see the thread",
        FALLBACK_LIMIT,
    )
    return _to_dicts(blocks), text


def line(mention: GroupedMention) -> str:
    """One mention on one line: priority, linked title, source, author, sentiment, id."""
    parts = [
        f"• {priority_badge(mention.priority)}",
        _link(mention, _label(mention, LINE_TITLE_LIMIT)),
        mrkdwn.truncate(source_label(mention.source), 60),
    ]
    if mention.author and mention.author.strip():
        parts.append("by " + mrkdwn.truncate(one_line(mention.author), 40))
    parts.append(
        sentiment_emoji(mention.sentiment_label) or mrkdwn.truncate(mention.sentiment_label, 10)
    )
    parts.append(f"#{mention.mention_id}")
    return " · ".join(parts)


def lines_blocks(
    mentions: Sequence[GroupedMention], *, first: int, total: int
) -> tuple[list[dict[str, Any]], str]:
    """A thread reply listing ``mentions`` (numbered from ``first``), sections packed to
    stay under Slack's per-section limit."""
    sections: list[str] = []
    for mention in mentions:
        text = line(mention)
        if sections and len(sections[-1]) + 1 + len(text) <= SECTION_LIMIT:
            sections[-1] += "\n" + text
        else:
            sections.append(text[:SECTION_LIMIT])
    last = first + len(mentions) - 1
    heading = f"Mentions {first:,}–{last:,} of {total:,}" if total > 1 else "The mention"
    blocks: list[Block] = [ContextBlock(elements=[markdown(heading)])]
    blocks.extend(SectionBlock(text=markdown(section)) for section in sections)
    return _to_dicts(blocks), heading


def grouped_note(mention: GroupedMention, note: str) -> str:
    """A thread note about one grouped mention, posted under its summary: which one, then
    the note (already escaped by its builder)."""
    return f"*#{mention.mention_id}* {_link(mention, _label(mention, 80))}: {note}"
