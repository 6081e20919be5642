"""Block Kit for the ephemeral answers to ``/earful …`` commands. Pure builders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.mrkdwn import escape
from bot.routing_modal import INTENT_ORDER, editor_button, intent_label, route_summary
from storage.models import FetchedPost, Route, SourceState, Watch
from watchers.departments import Department, Intent, WatchKind
from watchers.routing import DEFAULT_ROUTING, RoutingTable

MAX_BLOCKS = 50
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")
SECTION_LIMIT = 3000


@dataclass(frozen=True, slots=True)
class Reply:
    """An ephemeral answer: fallback text plus blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def as_ack(self) -> dict[str, Any]:
        ack: dict[str, Any] = {"text": self.text, "response_type": "ephemeral"}
        if self.blocks:
            ack["blocks"] = self.blocks
        return ack


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return SectionBlock(text=MarkdownTextObject(text=text)).to_dict()


def _context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=text[:SECTION_LIMIT])]).to_dict()


def slack_date(moment: datetime | None, *, empty: str = "never") -> str:
    if moment is None:
        return empty
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def text_reply(text: str) -> Reply:
    return Reply(text=text, blocks=[_section(text)])


def error_reply(message: str, *, example: str | None = None) -> Reply:
    text = f":warning: {message}"
    blocks = [_section(text)]
    if example:
        blocks.append(_context(f"Example: `{escape(example)}`"))
    return Reply(text=text if not example else f"{text} Example: {example}", blocks=blocks)


HELP_LINES: tuple[tuple[str, str], ...] = (
    (
        '/earful watch add acme "acme OR \\"acme cloud\\" -acmeville" '
        "sources=rss:https://example.com/feed.xml kind=brand every=5m",
        "Watch sources for a query. `kind=` brand, competitor, product, person or topic; "
        "`dept=` forces a department; `every=` 1m to 7d (default 15m). Admins only.",
    ),
    ("/earful watch list", "Every watch with its query, sources and health."),
    (
        '/earful watch test "acme NEAR/3 outage" sources=hn,reddit',
        "Try a query on the posts Earful fetched recently, before saving it.",
    ),
    (
        '/earful watch exclude acme "acmeville OR careers"',
        "Never alert a watch's posts that match this query (`none` clears it). Admins only.",
    ),
    ("/earful watch pause acme", "Stop polling a watch (`resume` starts it again). Admins only."),
    ("/earful watch remove acme", "Delete a watch; its mentions stay. Admins only."),
    (
        "/earful route support #support-alerts",
        "Send a department's alerts to a channel. Admins only.",
    ),
    (
        "/earful route complaint competitor sales cc=competitive",
        "Change which department gets an intent (`none`: no clear intent) on a kind of watch "
        "(`all`: every kind), with optional `cc=` departments. Admins only.",
    ),
    (
        "/earful route reset complaint competitor",
        "Put a routing rule back to its default. Admins only.",
    ),
    ("/earful route edit", "Change a routing rule in a form. Admins only."),
    ("/earful routes", "Which channel each department uses, and the routing table."),
    (
        "/earful lead support @dana",
        "Make someone a department's lead (`none` removes it): besides whoever claimed a "
        "mention and admins, the lead may answer, resolve, dismiss or reroute it. Admins only.",
    ),
    ("/earful leads", "Who leads each department."),
    (
        "/earful answers refund lost order",
        "Search the saved answers (without words: the most used). *Answer…* on an alert saves "
        "them and offers the best matches.",
    ),
    ("/earful answers delete 12", "Delete a saved answer. Its author or an admin."),
    (
        "/earful sla support P1 ping=15m escalate=30m remind=4h",
        "Without arguments: the SLA table. Edit a department (or `all`) and priority; "
        "`off`, `default` or `reset`. Admins only.",
    ),
    (
        "/earful oncall support @ana:09:00-17:00@Europe/Paris @kai hours=09:00-17:00 tz=Asia/Tokyo",
        "Without arguments: today's rota and who is on call. `add`, `remove @x`, `clear`; "
        "`days=mon-fri`. Admins only.",
    ),
    (
        "/earful queue support",
        "Open mentions by priority, then age (default: this channel's department, else all); "
        "`/earful mine` lists yours; `/earful search refund` finds mentions by text or author.",
    ),
    (
        "/earful mute author=spambot for=30d",
        'Store, but never alert, posts by an author (or `domain=x.com`, `phrase="…"`); '
        "`source=`, `dept=` narrow it. Admins and leads. `/earful mutes` lists, `unmute 3` ends.",
    ),
    (
        "/earful digest subscribe time=08:00 tz=Europe/Paris depts=support,pr",
        "The executive digest in your DMs every day at that time (weekly report on Mondays); "
        "`channel=#exec` (admins), `digest unsubscribe`, `digest now`, `digest preview`.",
    ),
    ("/earful status", "Each watch's last poll, last error and next poll."),
    ("/earful help", "This list."),
)

QUERY_HELP = (
    '*Queries*: words and "exact phrases", `AND` / `OR` / `NOT` (or `-word`) and parentheses. '
    "Matching ignores case and respects word boundaries: `acme` does not match `acmeville`."
)


def help_reply() -> Reply:
    lines = [f"• `{escape(example)}`\n   {description}" for example, description in HELP_LINES]
    blocks = [
        HeaderBlock(text="Earful commands").to_dict(),
        _section("\n".join(lines)),
        _context(QUERY_HELP),
        _context(
            "On an alert: *Claim*, mark *Answered*, *Escalate*, *Resolve*, *Dismiss* (with a "
            "reason) or *Reroute* it, or react with :eyes: claim, :rotating_light: escalate, "
            ":white_check_mark: resolve, :no_entry_sign: dismiss as noise. Departments: "
            + ", ".join(d.value for d in Department)
            + "."
        ),
    ]
    return Reply(text="Earful commands: " + "; ".join(e for e, _ in HELP_LINES), blocks=blocks)


def _health(states: Sequence[SourceState]) -> str:
    if not states:
        return ":grey_question: no sources"
    failing = [s for s in states if s.consecutive_failures > 0]
    if not failing:
        polled = any(s.last_success_at for s in states)
        return ":large_green_circle: healthy" if polled else ":hourglass: not polled yet"
    if len(failing) == len(states):
        return ":red_circle: failing"
    return ":large_orange_circle: partly failing"


def _watch_line(watch: Watch, states: Sequence[SourceState]) -> str:
    paused = " · :double_vertical_bar: paused" if watch.paused else ""
    department = f" · dept={watch.department}" if watch.department else ""
    sources = ", ".join(escape(s) for s in watch.sources)
    every = format_interval(watch.interval_seconds)
    return (
        f"*{watch.name}* ({watch.kind}{department}, every {every})"
        f"{paused} · {_health(states)}\n`{escape(watch.query)}`"
        + (f" · excludes `{escape(watch.exclude)}`" if watch.exclude else "")
        + f"\n{sources}"
    )


def watch_list_reply(
    watches: Sequence[Watch], states: Mapping[int, Sequence[SourceState]]
) -> Reply:
    if not watches:
        return text_reply(
            "No watches yet. Add one with "
            '`/earful watch add &lt;name&gt; "&lt;query&gt;" sources=rss:&lt;url&gt;`.'
        )
    blocks = [HeaderBlock(text=f"Watches ({len(watches)})").to_dict()]
    room = MAX_BLOCKS - 2
    for watch in watches[:room]:
        blocks.append(_section(_watch_line(watch, states.get(watch.id or 0, ()))))
    if len(watches) > room:
        blocks.append(_context(f"…and {len(watches) - room} more."))
    return Reply(
        text=f"{len(watches)} watch(es): " + ", ".join(w.name for w in watches[:50]), blocks=blocks
    )


def routes_reply(
    routes: Mapping[str, Route],
    pending: Mapping[str, int],
    *,
    table: RoutingTable = DEFAULT_ROUTING,
    edited_by: Mapping[tuple[Intent | None, WatchKind], str | None] | None = None,
) -> Reply:
    """Department channels, then the routing table by watch kind with team rules marked."""
    lines = []
    for department in Department:
        route = routes.get(department.value)
        target = f"<#{route.channel_id}>" if route else "_not routed_"
        waiting = pending.get(department.value, 0)
        note = f" · :hourglass: {waiting} alert(s) waiting" if waiting else ""
        lines.append(f"• *{department.value}* → {target}{note}")
    edits = edited_by or {}
    blocks = [
        HeaderBlock(text="Department channels").to_dict(),
        _section("\n".join(lines)),
        _context("Change one with `/earful route &lt;department&gt; #channel`."),
        DividerBlock().to_dict(),
        HeaderBlock(text="Routing rules").to_dict(),
    ]
    for kind in WatchKind:
        blocks.append(_section(_kind_rules(kind, table, edits)))
    blocks.append(
        _context(
            f":pencil2: marks a team rule ({len(edits)} in all). Change one with "
            "`/earful route &lt;intent&gt; &lt;kind&gt; &lt;department&gt; [cc=…]`, undo it with "
            "`/earful route reset &lt;intent&gt; &lt;kind&gt;`."
        )
    )
    blocks.append(editor_button())
    return Reply(
        text=f"Department channels and routing rules ({len(edits)} team rule(s))", blocks=blocks
    )


def _kind_rules(
    kind: WatchKind,
    table: RoutingTable,
    edits: Mapping[tuple[Intent | None, WatchKind], str | None],
) -> str:
    """One line per destination; team rules on lines of their own, with who set them."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    edited: list[str] = []
    for intent in (*INTENT_ORDER, None):
        found = table.get((intent, kind))
        if found is None:
            continue  # such mentions follow the "no clear intent" line
        label = intent_label(intent) if intent else "no clear intent"
        if (intent, kind) in edits:
            who = edits[(intent, kind)]
            by = f" · by <@{who}>" if who and _USER_ID.fullmatch(who) else ""
            edited.append(f"• :pencil2: {label} → *{route_summary(found)}*{by}")
            continue
        key = (found.department.value, tuple(d.value for d in found.cc))
        groups.setdefault(key, []).append(label)
    lines = [f"*{kind.value.capitalize()} watches*"]
    lines += edited
    for (department, cc), labels in groups.items():
        copied = f" (cc {', '.join(cc)})" if cc else ""
        lines.append(f"• {', '.join(labels)} → *{department}*{copied}")
    return "\n".join(lines)


def leads_reply(leads: Mapping[str, str]) -> Reply:
    """Who leads each department (a Slack user id per department value)."""
    lines = []
    for department in Department:
        lead = leads.get(department.value)
        lines.append(f"• *{department.value}* → " + (f"<@{lead}>" if lead else "_no lead_"))
    blocks = [
        HeaderBlock(text="Department leads").to_dict(),
        _section("\n".join(lines)),
        _context(
            "A lead may answer, resolve, dismiss or reroute any mention of their department. "
            "Change one with `/earful lead &lt;department&gt; @person` (admins only)."
        ),
    ]
    text = "Department leads: " + (
        ", ".join(f"{d} <@{u}>" for d, u in sorted(leads.items())) or "none yet"
    )
    return Reply(text=text, blocks=blocks)


def status_reply(
    watches: Sequence[Watch],
    states: Mapping[int, Sequence[SourceState]],
    *,
    pending_alerts: Mapping[str, int],
    outbox_pending: int,
) -> Reply:
    blocks = [HeaderBlock(text="Earful status").to_dict()]
    if not watches:
        blocks.append(_section("No watches yet. `/earful help` shows how to add one."))
    room = MAX_BLOCKS - 4
    for watch in watches[:room]:
        lines = [
            f"*{watch.name}* · {_health(states.get(watch.id or 0, ()))}"
            + (" · paused" if watch.paused else "")
        ]
        for state in states.get(watch.id or 0, ()):
            error = (
                f"\n      :warning: {escape(state.last_error[:300])} "
                f"({state.consecutive_failures} failure(s) in a row)"
                if state.last_error
                else ""
            )
            next_poll = "paused" if watch.paused else slack_date(state.next_poll_at, empty="now")
            lines.append(
                f"   • {escape(state.source[:200])}: last poll {slack_date(state.last_poll_at)}"
                f", next {next_poll}, {state.mentions_found} mention(s){error}"
            )
        blocks.append(_section("\n".join(lines)))
    if len(watches) > room:
        blocks.append(_context(f"…and {len(watches) - room} more watches."))
    waiting = ", ".join(f"{n} for {department}" for department, n in sorted(pending_alerts.items()))
    blocks.append(DividerBlock().to_dict())
    blocks.append(
        _context(
            f"Slack delivery queue: {outbox_pending} pending"
            + (f" · alerts waiting: {waiting} (check `/earful routes`)" if waiting else "")
        )
    )
    return Reply(text="Earful status", blocks=blocks)


def format_interval(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def watch_test_reply(
    query: str,
    *,
    examined: int,
    days: int,
    matches: Sequence[tuple[FetchedPost, tuple[str, ...]]],
    shown: int = 8,
) -> Reply:
    """What a query would have matched among recently fetched posts, with the words that hit."""
    from bot.cards import source_label
    from bot.mrkdwn import highlight
    from watchers.query import find_spans

    summary = (
        f"`{escape(query)}` matches *{len(matches)}* of {examined} post(s) Earful fetched in the "
        f"last {days} days."
    )
    if not examined:
        summary += " Nothing has been fetched yet: add a watch (or wait for its first poll)."
    blocks = [HeaderBlock(text="Query test").to_dict(), _section(summary)]
    for post, terms in matches[:shown]:
        text = f"{post.title}\n{post.text}" if post.title else post.text
        snippet = highlight(text, find_spans(text, terms), 600)
        who = f" · {escape(post.author[:80])}" if post.author else ""
        when = f" · {slack_date(post.published_at or post.fetched_at)}"
        blocks.append(_section(f"*{escape(source_label(post.source))}*{who}{when}\n{snippet}"))
        blocks.append(_context("Matched: " + ", ".join(f"`{escape(t)}`" for t in terms)))
    if len(matches) > shown:
        blocks.append(_context(f"…and {len(matches) - shown} more."))
    blocks.append(
        _context(
            "Nothing is saved. Add it with "
            '`/earful watch add &lt;name&gt; "&lt;query&gt;" sources=…`.'
        )
    )
    return Reply(text=f"Query test: {len(matches)} of {examined} recent posts match", blocks=blocks)
