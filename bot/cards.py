"""Block Kit for alerts: an :class:`AlertCard` in, Slack blocks and texts out.

Pure functions only: no Slack client, no database. Blocks are built with ``slack_sdk.models``
so that ``to_dict()`` checks Slack's limits, and every piece of text that came from a source
goes through :mod:`bot.mrkdwn` first. Sizes are capped well below Slack's limits, even when
Slack counts in UTF-16 units, where one emoji counts as two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InteractiveElement,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot import mrkdwn
from bot.ids import ActionId, BlockId
from watchers.departments import Department

# Post text and title are the only unbounded inputs on a card; with these caps the body section
# stays under Slack's 3,000 characters even if every character were an emoji counted twice.
TEXT_LIMIT = 1200
TITLE_LIMIT = 200
FALLBACK_LIMIT = 300
# Half of Slack's 150 for a header: watch names may be emoji, which UTF-16 counts twice.
HEADER_LIMIT = 75
FIELD_PART_LIMIT = 300
NOTE_LIMIT = 200
BUTTON_TEXT_LIMIT = 75
# The "Also seen on" line: a few names and links, each link capped, so the line stays far
# below a context element's 3,000 characters however long the story's URLs are.
STORY_SOURCES_SHOWN = 5
STORY_LINKS_SHOWN = 3
STORY_URL_LIMIT = 500
# The event action of a "this story is spreading" note (see bot/clustering.py).
TRACTION_ACTION = "traction"

OPEN_STATES = frozenset({"new", "claimed", "answered", "escalated"})
CLOSED_STATES = frozenset({"resolved", "dismissed"})

_PRIORITIES = {
    "P1": ("🔴", "P1 urgent"),
    "P2": ("🟠", "P2 high"),
    "P3": ("🟡", "P3 normal"),
    "P4": ("⚪", "P4 low"),
}
_DEPARTMENT_LABELS = {
    Department.SUPPORT: "Support",
    Department.PRODUCT: "Product",
    Department.PR: "PR",
    Department.SALES: "Sales",
    Department.HR: "HR",
    Department.LEGAL: "Legal",
    Department.EXEC: "Exec",
    Department.RESEARCH: "Research",
    Department.COMPETITIVE: "Competitive",
}
_SOURCE_NAMES = {
    "rss": "RSS",
    "hn": "Hacker News",
    "reddit": "Reddit",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "stackexchange": "Stack Exchange",
    "github": "GitHub",
    "appstore": "App Store",
    "playstore": "Google Play",
}
_SENTIMENT_EMOJI = {"negative": "🙁", "neutral": "😐", "positive": "🙂"}
_EVENT_VERBS = {
    "claim": ("👀", "claimed"),
    "answer": ("💬", "answered"),
    "escalate": ("🚨", "escalated"),
    "resolve": ("✅", "resolved"),
    "dismiss": ("🚫", "dismissed"),
    "reopen": ("🔄", "reopened"),
    "reroute": ("↪️", "rerouted"),
}
# What the Dismiss menu offers: the DismissReason values, as people say them.
DISMISS_REASONS = (
    ("noise", "Noise"),
    ("duplicate", "Duplicate"),
    ("not_ours", "Not ours"),
    ("spam", "Spam"),
)


@dataclass(frozen=True)
class CardEvent:
    actor: str | None  # a Slack user id, or None when Earful itself acted
    action: str
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class StoryLine:
    """Other mentions of the same story, for the "Also seen on" line of its lead's card."""

    sources: tuple[str, ...]  # source specs of the other mentions, first sighting first
    others: int  # how many other mentions the story has
    links: tuple[tuple[str, str | None], ...]  # (source spec, post URL) of a few of them


@dataclass(frozen=True)
class AlertCard:
    mention_id: int
    watch_name: str
    source: str  # a source spec such as "rss:https://example.com/feed.xml" or "reddit:r/python"
    author: str | None
    url: str | None
    title: str | None
    text: str
    published_at: datetime | None
    highlight_spans: tuple[tuple[int, int], ...]  # spans of ``text`` to bold (matched terms)
    matched_terms: tuple[str, ...]
    sentiment_label: str
    sentiment_compound: float
    intents: tuple[str, ...]  # Intent values, strongest first
    department: str
    cc: tuple[str, ...]
    route_rule: str
    priority: str
    priority_reason: str
    state: str  # "new" | "claimed" | "answered" | "escalated" | "resolved" | "dismissed"
    owner: str | None  # Slack user id of whoever claimed it
    escalation_level: int
    last_event: CardEvent | None
    watches: tuple[str, ...] = ()  # every watch the post matched, the primary one first
    story: StoryLine | None = None  # set on a story's lead once other mentions joined it


@dataclass(frozen=True)
class ActionValue:
    """What a button ``value`` or a menu option ``value`` carries back to the app."""

    mention_id: int
    department: str | None = None  # the Reroute menu's choice
    reason: str | None = None  # the Dismiss menu's choice

    def encode(self) -> str:
        data: dict[str, Any] = {"mention_id": self.mention_id}
        if self.department is not None:
            data["department"] = self.department
        if self.reason is not None:
            data["reason"] = self.reason
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> ActionValue:
        """Parse a value written by :meth:`encode`; raise ``ValueError`` for anything else."""
        try:
            data = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not an alert action value: {raw!r:.80}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"not an alert action value: {raw!r:.80}")
        mention_id = data.get("mention_id")
        department = data.get("department")
        reason = data.get("reason")
        # type() rather than isinstance(): True is an int too, and is no mention id.
        if type(mention_id) is not int or mention_id < 0:
            raise ValueError(f"bad mention id in action value: {raw!r:.80}")
        if department is not None and not isinstance(department, str):
            raise ValueError(f"bad department in action value: {raw!r:.80}")
        if reason is not None and not isinstance(reason, str):
            raise ValueError(f"bad reason in action value: {raw!r:.80}")
        return cls(mention_id=mention_id, department=department, reason=reason)


def department_label(department: str) -> str:
    """How a department is named to people ("PR", "Support"); unescaped."""
    try:
        return _DEPARTMENT_LABELS[Department(department)]
    except ValueError:
        return department


def intent_label(intent: str) -> str:
    return intent.replace("_", " ")


def source_label(source: str) -> str:
    """A source spec as people say it: "RSS · example.com", "Reddit · r/python"; unescaped."""
    kind, _, detail = source.partition(":")
    name = _SOURCE_NAMES.get(kind.strip().lower(), kind.strip() or "source")
    detail = detail.strip()
    if "://" in detail:
        # A feed URL is long and says little; its host is what people recognise.
        try:
            detail = urlsplit(detail).hostname or ""
        except ValueError:
            detail = ""
    return f"{name} · {detail}" if detail else name


def priority_badge(priority: str) -> str:
    """"🟡 P3": a priority's colour and name, escaped."""
    emoji, _ = _PRIORITIES.get(priority, ("⚪", priority))
    return f"{emoji} {mrkdwn.escape(priority)}"


def sentiment_emoji(label: str) -> str:
    return _SENTIMENT_EMOJI.get(label, "")


def _mrkdwn(text: str) -> MarkdownTextObject:
    # verbatim: Slack must not auto-link or auto-parse mentions in source text; the markup we
    # write ourselves (<!date…>, <@U…>) is still rendered.
    return MarkdownTextObject(text=text, verbatim=True)


def _plain(text: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=mrkdwn.plain(text, limit) or "-", emoji=True)


def _who(actor: str | None) -> str:
    if actor is None:
        return "Earful"
    return mrkdwn.user(actor) or "an unknown user"


def _one_line(text: str) -> str:
    # Clean first: an invisible character before a space would otherwise survive the strip and
    # leave "* Title*", which Slack does not render as bold.
    return " ".join(mrkdwn.clean(text).split())


def _priority(card: AlertCard) -> tuple[str, str]:
    return _PRIORITIES.get(card.priority, ("⚪", card.priority))


def _header(card: AlertCard) -> HeaderBlock:
    emoji, label = _priority(card)
    text = f"{emoji} {label} · {department_label(card.department)} · {card.watch_name}"
    return HeaderBlock(block_id=BlockId.ALERT_HEADER.value, text=_plain(text, HEADER_LIMIT))


def _context_line(card: AlertCard) -> str:
    parts = [mrkdwn.truncate(source_label(card.source), 120)]
    if card.author and card.author.strip():
        parts.append("by " + mrkdwn.truncate(_one_line(card.author), 100))
    if card.published_at is not None:
        parts.append(mrkdwn.date(card.published_at))
    return " · ".join(parts)


def _context(card: AlertCard) -> ContextBlock:
    return ContextBlock(
        block_id=BlockId.ALERT_CONTEXT.value, elements=[_mrkdwn(_context_line(card))]
    )


def _title(card: AlertCard, limit: int) -> str:
    title = _one_line(card.title or "")
    # Bold only renders around visible text, so an empty title gets no asterisks at all.
    return f"*{mrkdwn.truncate(title, limit)}*" if title else ""


def _body(card: AlertCard) -> SectionBlock:
    text = mrkdwn.highlight(card.text, card.highlight_spans, TEXT_LIMIT)
    if not text.strip():
        text = "_No text._"
    title = _title(card, TITLE_LIMIT)
    body = f"{title}\n{text}" if title else text
    return SectionBlock(block_id=BlockId.ALERT_BODY.value, text=_mrkdwn(body))


def _fields(card: AlertCard) -> SectionBlock:
    emoji = _SENTIMENT_EMOJI.get(card.sentiment_label, "")
    sentiment = mrkdwn.truncate(card.sentiment_label, 40)
    sentiment_line = f"{emoji} {sentiment} ({card.sentiment_compound:+.2f})".strip()
    intents = ", ".join(intent_label(i) for i in card.intents)
    _, priority = _priority(card)
    priority_line = mrkdwn.truncate(priority, 40)
    if card.priority_reason.strip():
        priority_line += " — " + mrkdwn.truncate(card.priority_reason, FIELD_PART_LIMIT)
    department = mrkdwn.truncate(department_label(card.department), 40)
    if card.cc:
        cc = ", ".join(department_label(d) for d in card.cc)
        department += " (cc " + mrkdwn.truncate(cc, 120) + ")"
    if card.route_rule.strip():
        department += "\nRule: " + mrkdwn.truncate(card.route_rule, FIELD_PART_LIMIT)
    terms = ", ".join(card.matched_terms)
    matched = mrkdwn.truncate(terms, FIELD_PART_LIMIT) if terms else "none"
    if card.watches:
        matched += "\nWatches: " + mrkdwn.truncate(", ".join(card.watches), FIELD_PART_LIMIT)
    fields = [
        f"*Sentiment*\n{sentiment_line}",
        "*Intents*\n" + (mrkdwn.truncate(intents, FIELD_PART_LIMIT) if intents else "none"),
        f"*Priority*\n{priority_line}",
        f"*Department*\n{department}",
        "*Matched terms*\n" + matched,
    ]
    return SectionBlock(block_id=BlockId.ALERT_FIELDS.value, fields=[_mrkdwn(f) for f in fields])


def story_text(story: StoryLine) -> str:
    """The "Also seen on" line, e.g. "🧵 Also seen on Reddit, Hacker News (+3): <url|Reddit>"."""
    names = list(dict.fromkeys(_source_name(source) for source in story.sources))
    shown = names[:STORY_SOURCES_SHOWN]
    if len(names) > len(shown):
        shown.append(f"{len(names) - len(shown)} more")
    line = "🧵 *Also seen on* " + mrkdwn.truncate(", ".join(shown), 300) + f" (+{story.others})"
    links = [
        mrkdwn.link(url, mrkdwn.plain(source_label(source), 60))
        for source, url in story.links[:STORY_LINKS_SHOWN]
        if mrkdwn.safe_url(url) is not None and len(url or "") <= STORY_URL_LIMIT
    ]
    return line + (": " + " · ".join(links) if links else "")


def _source_name(source: str) -> str:
    kind = source.partition(":")[0].strip().lower()
    return _SOURCE_NAMES.get(kind, kind or "source")


def _note(event: CardEvent | None) -> str:
    if event is None or not event.note or not event.note.strip():
        return ""
    return mrkdwn.truncate(_one_line(event.note), NOTE_LIMIT)


def _by(event: CardEvent | None, action: str) -> str:
    """Say who and when, if the last event is the one that put the card in its state."""
    if event is None or event.action != action:
        return ""
    return f" by {_who(event.actor)} · {mrkdwn.date(event.at)}"


def state_line(card: AlertCard) -> str:
    """The card's state in one mrkdwn line, e.g. "👀 *Claimed* by <@U1> · <date>"."""
    event = card.last_event
    owner = mrkdwn.user(card.owner) or ("an unknown user" if card.owner else None)
    note = _note(event)
    if card.state == "new":
        line = "🆕 *New* — unclaimed"
        if event is not None and event.action in ("reopen", "reroute"):
            verb = _EVENT_VERBS[event.action][1]
            line += f" · {verb}{_by(event, event.action)}"
            if note:
                line += f" ({note})"
        return line
    if card.state == "claimed":
        line = f"👀 *Claimed* by {owner or 'an unknown user'}"
        if event is not None and event.action == "claim":
            line += f" · {mrkdwn.date(event.at)}"
        return line
    if card.state == "answered":
        line = f"💬 *Answered* by {owner or 'an unknown user'}"
        if event is not None and event.action == "answer":
            line += f" · {mrkdwn.date(event.at)}"
        return line
    if card.state == "escalated":
        line = f"🚨 *Escalated* (level {card.escalation_level}){_by(event, 'escalate')}"
        # The workflow notes the level it escalated to; the line already says that.
        repeats_level = note == f"level {card.escalation_level}"
        if note and not repeats_level and event is not None and event.action == "escalate":
            line += f" ({note})"
        return line + (f" · claimed by {owner}" if owner else " · unclaimed")
    if card.state == "resolved":
        line = f"✅ *Resolved*{_by(event, 'resolve')}"
        if note and event is not None and event.action == "resolve":
            line += f" — {note}"
        return line
    if card.state == "dismissed":
        line = f"🚫 *Dismissed*{_by(event, 'dismiss')}"
        if note and event is not None and event.action == "dismiss":
            line += f" ({note})"
        return line
    return f"*{mrkdwn.truncate(card.state, 40)}*"


def _button(
    label: str, action_id: ActionId, card: AlertCard, style: str | None = None
) -> ButtonElement:
    return ButtonElement(
        text=_plain(label, BUTTON_TEXT_LIMIT),
        action_id=action_id.value,
        value=ActionValue(card.mention_id).encode(),
        style=style,
    )


def _reroute_menu(card: AlertCard) -> StaticSelectElement | None:
    options = [
        Option(
            text=_plain(department_label(d), 75),
            value=ActionValue(card.mention_id, department=d.value).encode(),
        )
        for d in Department
        if d.value != card.department
    ]
    if not options:
        return None
    return StaticSelectElement(
        action_id=ActionId.REROUTE.value, placeholder=_plain("Reroute to…", 150), options=options
    )


def _dismiss_menu(card: AlertCard) -> StaticSelectElement:
    # A menu rather than a button: every dismissal records why.
    options = [
        Option(text=_plain(label, 75), value=ActionValue(card.mention_id, reason=reason).encode())
        for reason, label in DISMISS_REASONS
    ]
    return StaticSelectElement(
        action_id=ActionId.DISMISS.value, placeholder=_plain("Dismiss as…", 150), options=options
    )


def _action_elements(card: AlertCard) -> list[InteractiveElement]:
    elements: list[InteractiveElement] = []
    if card.state in OPEN_STATES:
        # Claim follows ownership, not the state name: an alert the SLA sweep escalated
        # while nobody had claimed it must still be claimable from the card.
        if card.owner is None:
            elements.append(_button("Claim", ActionId.CLAIM, card, "primary"))
        if card.state != "answered":
            elements.append(_button("Answered", ActionId.ANSWER, card))
            # The modal: a reply draft, a note and saved answers; "Answered" only marks it.
            elements.append(_button("Answer…", ActionId.WRITE_ANSWER, card))
        escalate = "Escalate" if card.escalation_level == 0 else "Escalate again"
        elements.append(_button(escalate, ActionId.ESCALATE, card, "danger"))
        elements.append(_button("Resolve", ActionId.RESOLVE, card))
        elements.append(_dismiss_menu(card))
        menu = _reroute_menu(card)
        if menu is not None:
            elements.append(menu)
    elif card.state in CLOSED_STATES:
        elements.append(_button("Reopen", ActionId.REOPEN, card))
    url = mrkdwn.safe_url(card.url)
    if url is not None:
        elements.append(
            ButtonElement(
                text=_plain("Open original", BUTTON_TEXT_LIMIT),
                action_id=ActionId.OPEN_ORIGINAL.value,
                url=url,
            )
        )
    return elements


def _to_dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    # to_dict() runs slack_sdk's validators on every block and element it serialises.
    return [block.to_dict() for block in blocks]


def alert_blocks(card: AlertCard) -> list[dict[str, Any]]:
    """The alert card for ``card``, ready for chat.postMessage / chat.update ``blocks``."""
    blocks: list[Block] = [
        _header(card),
        _context(card),
        _body(card),
        _fields(card),
    ]
    if card.story is not None and card.story.others > 0:
        # No block id: nothing on the line is interactive, and bot/ids.py is not ours to grow.
        blocks.append(ContextBlock(elements=[_mrkdwn(story_text(card.story))]))
    blocks.append(
        ContextBlock(block_id=BlockId.ALERT_STATE.value, elements=[_mrkdwn(state_line(card))])
    )
    elements = _action_elements(card)
    if elements:
        blocks.append(ActionsBlock(block_id=BlockId.ALERT_ACTIONS.value, elements=elements))
    return _to_dicts(blocks)


def _snippet(card: AlertCard, limit: int) -> str:
    return mrkdwn.truncate(_one_line(card.title or card.text), limit)


def alert_fallback_text(card: AlertCard) -> str:
    """The message ``text``: what notifications and screen readers show, escaped, ≤ 300."""
    intent = intent_label(card.intents[0]) if card.intents else "mention"
    state = "" if card.state in ("new", "") else f"[{card.state.capitalize()}] "
    head = mrkdwn.truncate(
        f"{state}{card.priority} {intent} about {card.watch_name} on {source_label(card.source)}",
        FALLBACK_LIMIT // 2,
    )
    room = FALLBACK_LIMIT - len(head) - len(" — ")
    snippet = _snippet(card, room)
    return f"{head} — {snippet}" if snippet else head


def event_reply_text(event: CardEvent, card: AlertCard) -> str:
    """A one-line thread reply about ``event``, e.g. "👀 <@U1> claimed this."."""
    if event.action == TRACTION_ACTION:
        # Earful's own note on a spreading story: the note is the whole message.
        return "📈 " + (_note(event) or "This story is spreading.")
    emoji, verb = _EVENT_VERBS.get(event.action, ("•", mrkdwn.truncate(event.action, 40)))
    text = f"{emoji} {_who(event.actor)} {verb} this"
    if event.action == "reroute":
        text += " to " + mrkdwn.truncate(department_label(card.department), 40)
    note = _note(event)
    return f"{text}: {note}" if note else f"{text}."


def retired_blocks(card: AlertCard) -> tuple[list[dict[str, Any]], str]:
    """Blocks and text for the old card of an alert that was rerouted to ``card.department``.

    The old message stays as a pointer without buttons, so nobody acts on a stale copy.
    """
    department = mrkdwn.truncate(department_label(card.department), 40)
    event = card.last_event
    line = f"↪️ *Rerouted to {department}*{_by(event, 'reroute')}"
    note = _note(event) if event is not None and event.action == "reroute" else ""
    if note:
        line += f" ({note})"
    title = _title(card, TITLE_LIMIT) or mrkdwn.truncate(_one_line(card.text), 300)
    blocks: list[Block] = [
        SectionBlock(block_id=BlockId.ALERT_RETIRED.value, text=_mrkdwn(f"{line}\n{title}")),
        _context(card),
    ]
    head = f"Rerouted to {department}"
    snippet = _snippet(card, FALLBACK_LIMIT - len(head) - len(": "))
    text = f"{head}: {snippet}" if snippet else head
    return _to_dicts(blocks), text


# ---------------------------------------------------------------- crisis alerts

CRISIS_HEADER_LIMIT = 100  # with a ≤ 40-character watch name, ≤ 150 UTF-16 units all emoji
CRISIS_REASON_LIMIT = 300
CRISIS_SNIPPET_LIMIT = 280
_CRISIS_KINDS = {"volume": "volume spike", "negative": "negative-sentiment spike"}


@dataclass(frozen=True)
class CrisisExample:
    """One of the mentions that make up a spike, as its crisis alert shows it."""

    source: str
    priority: str
    title: str | None
    text: str
    url: str | None  # the original post
    alert_url: str | None  # the mention's own alert in Slack (a permalink), once posted


@dataclass(frozen=True)
class CrisisCard:
    watch_name: str
    kind: str  # "volume" | "negative"
    reason: str  # e.g. "42 mentions in the last hour vs 3.1 expected (p < 0.001)"
    started_at: datetime
    examples: tuple[CrisisExample, ...]
    cluster_size: int | None  # mentions in the biggest story among the spike's mentions
    cluster_url: str | None  # that story's lead alert (or its original post)
    meaning: str = ""  # the test result in words, e.g. "About 13× the usual rate …"


def crisis_title(card: CrisisCard) -> str:
    """The header, e.g. "🚨 Possible crisis: acme — volume spike"; unescaped, for plain text."""
    label = _CRISIS_KINDS.get(card.kind, f"{card.kind} spike")
    # Watch names are at most 40 characters; the cap keeps the header under Slack's 150 UTF-16
    # units even for a longer name made of emoji.
    return f"🚨 Possible crisis: {_one_line(card.watch_name)[:40]} — {label}"


def _crisis_example(example: CrisisExample) -> SectionBlock:
    emoji, priority = _PRIORITIES.get(example.priority, ("⚪", example.priority))
    parts = [
        f"{emoji} *{mrkdwn.truncate(priority, 40)}*",
        mrkdwn.truncate(source_label(example.source), 120),
    ]
    if mrkdwn.safe_url(example.alert_url) is not None:
        parts.append(mrkdwn.link(example.alert_url, "alert"))
    if mrkdwn.safe_url(example.url) is not None:
        parts.append(mrkdwn.link(example.url, "original"))
    snippet = mrkdwn.truncate(_one_line(example.title or example.text), CRISIS_SNIPPET_LIMIT)
    return SectionBlock(text=_mrkdwn(" · ".join(parts) + "\n" + (snippet or "_No text._")))


def crisis_blocks(card: CrisisCard) -> tuple[list[dict[str, Any]], str]:
    """Blocks and fallback text for a crisis alert to PR and executives.

    No block ids: nothing on the message is interactive, and one message never carries two
    crisis alerts, so Slack's generated ids are enough.
    """
    title = crisis_title(card)
    reason = mrkdwn.truncate(_one_line(card.reason), CRISIS_REASON_LIMIT)
    meaning = mrkdwn.truncate(_one_line(card.meaning), CRISIS_REASON_LIMIT)
    lines = [f"*{reason}*", meaning, f"Since {mrkdwn.date(card.started_at)}"]
    blocks: list[Block] = [
        HeaderBlock(text=_plain(title, CRISIS_HEADER_LIMIT)),
        SectionBlock(text=_mrkdwn("\n".join(line for line in lines if line))),
    ]
    if card.examples:
        blocks.append(SectionBlock(text=_mrkdwn("*Top mentions*")))
        blocks.extend(_crisis_example(example) for example in card.examples)
    else:
        blocks.append(ContextBlock(elements=[_mrkdwn("_The mentions behind it are gone._")]))
    if card.cluster_size is not None and mrkdwn.safe_url(card.cluster_url) is not None:
        size = "1 mention" if card.cluster_size == 1 else f"{card.cluster_size} mentions"
        story = mrkdwn.link(card.cluster_url, "the lead alert")
        blocks.append(ContextBlock(elements=[_mrkdwn(f"🧵 Biggest story: {size} — {story}")]))
    text = mrkdwn.truncate(f"{title}: {_one_line(card.reason)}", FALLBACK_LIMIT)
    return _to_dicts(blocks), text
