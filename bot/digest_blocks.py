"""Block Kit for the executive digest: pure builders from :class:`DigestData` to blocks.

Every number comes with a way to the items behind it: a button (the headline numbers, the
attention lists, spikes) or a menu of the rows of a section (volume by department, intent and
source; sentiment by hour or day; share of voice; team response). Buttons carry the compact
:class:`DrillDown` in their value; a menu option's value is capped at 150 characters by Slack,
so a row whose filter does not fit is simply not offered in the menu.

Text from sources (titles, post text, authors) is escaped and cut through ``bot.mrkdwn``;
watch names, sources and departments are escaped too, since admins type them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)

from bot import mrkdwn
from bot.digest_schedule import DigestKind
from bot.ids import DigestActionId
from storage.digest_data import (
    AttentionList,
    DigestData,
    DrillDown,
    Durations,
    MentionSummary,
    Response,
    SpikeSummary,
    Volume,
)

MAX_BLOCKS = 50
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
BUTTON_VALUE_LIMIT = 2000
OPTION_VALUE_LIMIT = 150
MAX_OPTIONS = 100
MAX_ROWS = 10  # rows listed per section; the menu still offers up to MAX_OPTIONS
ITEM_TEXT = 160
SPARK = "▁▂▃▄▅▆▇█"
ATTENTION_TITLES = {
    "top": "Highest priority and reach",
    "escalated": "Open escalations",
    "sla_breach": "Past their SLA, unclaimed",
}
NO_INTENT = "no clear intent"


@dataclass(frozen=True, slots=True)
class DigestMessage:
    text: str  # the notification and screen-reader text
    blocks: list[dict[str, Any]]


# ---------------------------------------------------------------- formatting


def change(count: float, previous: float, *, unit: str = "") -> str:
    """``▲ +12 (+25%)``, ``▼ −3 (−10%)``, ``= 0``, or ``▲ new`` when there was nothing before."""
    delta = count - previous
    if delta == 0:
        return "= no change"
    arrow = "▲" if delta > 0 else "▼"
    sign = "+" if delta > 0 else "−"
    amount = f"{sign}{abs(delta):g}{unit}"
    if previous == 0:
        return f"{arrow} {amount} (new)"
    return f"{arrow} {amount} ({sign}{abs(100 * delta / previous):.0f}%)"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def sparkline(values: Sequence[float | None]) -> str:
    """One character per bucket, from −1 (▁) to 1 (█); a space for an empty bucket."""
    chars = []
    for value in values:
        if value is None:
            chars.append("·")
            continue
        index = round((max(-1.0, min(1.0, value)) + 1) / 2 * (len(SPARK) - 1))
        chars.append(SPARK[index])
    return "".join(chars)


def _cut(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(drill: DrillDown) -> DrillDown:
    """The same filter in fewer characters: a row's department makes the scope redundant."""
    if drill.department is not None and drill.department in drill.departments:
        return drill.narrowed(departments=())
    return drill


def _label(key: str) -> str:
    return key if key else NO_INTENT


def _section(text: str, accessory: Any = None, block_id: str | None = None) -> dict[str, Any]:
    block = SectionBlock(
        text=MarkdownTextObject(text=_cut(text)), accessory=accessory, block_id=block_id
    )
    return block.to_dict()


def _context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=_cut(text))]).to_dict()


def drill_button(label: str, drill: DrillDown, index: int) -> ButtonElement | None:
    value = compact(drill).to_value()
    if len(value) > BUTTON_VALUE_LIMIT:
        return None
    return ButtonElement(
        text=mrkdwn.plain(label, 75),
        action_id=f"{DigestActionId.DRILL.value}.{index}",
        value=value,
    )


def drill_menu(
    rows: Sequence[tuple[str, DrillDown]], *, placeholder: str = "Show items…"
) -> StaticSelectElement | None:
    options = []
    for label, drill in rows[:MAX_OPTIONS]:
        value = compact(drill).to_value()
        if len(value) <= OPTION_VALUE_LIMIT:
            options.append(Option(text=mrkdwn.plain(label, 75), value=value))
    if not options:
        return None
    return StaticSelectElement(
        placeholder=placeholder,
        action_id=DigestActionId.DRILL_MENU.value,
        options=options,
    )


# ---------------------------------------------------------------- sections


def _headline(data: DigestData, kind: DigestKind) -> list[dict[str, Any]]:
    versus = "the previous week" if kind is DigestKind.WEEKLY else "the previous day"
    negative = sum(p.negative for p in data.sentiment)
    previous_negative = sum(p.negative for p in data.previous_sentiment)
    total = data.total
    fields = [
        f"*Mentions*\n{total.count:,}  {change(total.count, total.previous)}",
        f"*Negative*\n{negative:,}  {change(negative, previous_negative)}",
        f"*Open escalations*\n{data.attention.escalated.total:,}",
        f"*Past SLA, unclaimed*\n{data.attention.sla_breaches.total:,}",
    ]
    brand = [v for v in data.share_of_voice if v.watch_kind == "brand"]
    if brand:
        share = sum(v.share_percent for v in brand)
        before = sum(v.previous_share_percent for v in brand)
        fields.append(
            f"*Our share of voice*\n{share:.0f}%  "
            + change(round(share), round(before), unit=" pts")
        )
    if data.spikes:
        fields.append(f"*Spikes*\n{len(data.spikes)}")
    section = SectionBlock(
        fields=[MarkdownTextObject(text=_cut(f, FIELD_LIMIT)) for f in fields],
        block_id="digest_headline",
    ).to_dict()
    buttons = [
        drill_button(f"Mentions ({total.count:,})", total.drill, 0),
        drill_button(f"Negative ({negative:,})", total.drill.narrowed(sentiment="negative"), 1),
        drill_button(
            f"Escalations ({data.attention.escalated.total:,})", data.attention.escalated.drill, 2
        ),
        drill_button(
            f"Past SLA ({data.attention.sla_breaches.total:,})",
            data.attention.sla_breaches.drill,
            3,
        ),
    ]
    elements: list[Any] = [b for b in buttons if b is not None]
    export_value = compact(total.drill).to_value()
    if len(export_value) <= BUTTON_VALUE_LIMIT:
        elements.append(
            ButtonElement(
                text="Export this period",
                action_id=DigestActionId.EXPORT.value,
                value=export_value,
            )
        )
    context = _context(f"Changes are against {versus}.")
    actions = ActionsBlock(elements=elements, block_id="digest_headline_drill").to_dict()
    return [section, actions, context]


def _volume_section(title: str, volumes: Sequence[Volume], block_id: str) -> dict[str, Any]:
    if not volumes:
        return _section(f"*{title}*\nNothing in this period.", block_id=block_id)
    lines = [
        f"• *{mrkdwn.escape(_label(v.key))}* {v.count:,}  {change(v.count, v.previous)}"
        for v in volumes[:MAX_ROWS]
    ]
    if len(volumes) > MAX_ROWS:
        rest = sum(v.count for v in volumes[MAX_ROWS:])
        lines.append(f"• …{len(volumes) - MAX_ROWS} more: {rest:,}")
    menu = drill_menu([(f"{_label(v.key)} ({v.count:,})", v.drill) for v in volumes if v.count])
    return _section(f"*{title}*\n" + "\n".join(lines), menu, block_id)


def _sentiment_section(data: DigestData) -> dict[str, Any]:
    points = data.sentiment
    means = [p.mean_compound for p in points]
    weighted = [(p.mean_compound, p.count) for p in points if p.mean_compound is not None]
    count = sum(c for _, c in weighted)
    mean = sum(m * c for m, c in weighted) / count if count else None
    before = [
        (p.mean_compound, p.count) for p in data.previous_sentiment if p.mean_compound is not None
    ]
    before_count = sum(c for _, c in before)
    previous_mean = sum(m * c for m, c in before) / before_count if before_count else None
    per = "hour" if data.bucket == "hour" else "day"
    text = f"*Sentiment* (mean VADER compound per {per}, −1 to 1)\n`{sparkline(means)}`"
    if mean is not None:
        text += f"\nMean {mean:+.2f}"
        if previous_mean is not None:
            trend = "▲" if mean > previous_mean else "▼" if mean < previous_mean else "="
            text += f"  {trend} from {previous_mean:+.2f}"
    fmt = "%H:%M" if data.bucket == "hour" else "%a %d %b"
    rows = [
        (f"{p.start.strftime(fmt)} UTC: {p.count} ({p.negative} negative)", p.drill)
        for p in points
        if p.count
    ]
    return _section(text, drill_menu(rows), "digest_sentiment")


def _voice_section(data: DigestData) -> dict[str, Any] | None:
    if not data.share_of_voice:
        return None
    lines = []
    for voice in data.share_of_voice[:MAX_ROWS]:
        moved = change(round(voice.share_percent), round(voice.previous_share_percent), unit=" pts")
        mood = "" if voice.mean_compound is None else f" · sentiment {voice.mean_compound:+.2f}"
        lines.append(
            f"• *{mrkdwn.escape(voice.watch_name)}* ({voice.watch_kind}) "
            f"{voice.share_percent:.0f}%  {moved} · {voice.count:,} mentions{mood}"
        )
    menu = drill_menu(
        [(f"{v.watch_name} ({v.count:,})", v.drill) for v in data.share_of_voice if v.count]
    )
    return _section("*Share of voice*\n" + "\n".join(lines), menu, "digest_voice")


def _item_line(item: MentionSummary, alert_links: Mapping[int, str]) -> str:
    words = item.title or item.text
    author = f" by {mrkdwn.truncate(item.author, 60)}" if item.author else ""
    reach = f" ({item.author_reach:,} followers)" if item.author_reach else ""
    alert = alert_links.get(item.id)
    where = mrkdwn.link(alert, "alert") if alert else mrkdwn.link(item.url, "original")
    owner = mrkdwn.user(item.owner)
    state = f"{item.state}" + (f" by {owner}" if owner else "")
    return (
        f"*{mrkdwn.escape(item.priority)}* · {mrkdwn.escape(item.department)} · {state} · {where}"
        f"\n{mrkdwn.truncate(words, ITEM_TEXT)}{author}{reach}"
    )


def _attention_blocks(
    data: DigestData, alert_links: Mapping[int, str], per_list: int
) -> list[dict[str, Any]]:
    lists: list[AttentionList] = [
        data.attention.top,
        data.attention.escalated,
        data.attention.sla_breaches,
    ]
    blocks: list[dict[str, Any]] = [_section("*Needs attention*", block_id="digest_attention")]
    buttons = []
    for index, attention in enumerate(lists):
        title = ATTENTION_TITLES[attention.kind]
        if not attention.total:
            continue
        lines = [_item_line(item, alert_links) for item in attention.items[:per_list]]
        more = attention.total - len(lines)
        tail = f"\n…and {more} more." if more > 0 else ""
        blocks.append(_section(f"_{title}_ ({attention.total})\n" + "\n".join(lines) + tail))
        button = drill_button(f"{title} ({attention.total})", attention.drill, 10 + index)
        if button is not None:
            buttons.append(button)
    if len(blocks) == 1:
        return [_section("*Needs attention*\nNothing: no escalations, no SLA breaches.")]
    if buttons:
        blocks.append(ActionsBlock(elements=buttons, block_id="digest_attention_drill").to_dict())
    return blocks


def _durations(label: str, now: Durations, before: Durations) -> str:
    if not now.count:
        return f"{label} –"
    text = f"{label} {duration(now.median_seconds)} (p90 {duration(now.p90_seconds)})"
    if before.count and before.median_seconds is not None and now.median_seconds is not None:
        faster = now.median_seconds < before.median_seconds
        slower = now.median_seconds > before.median_seconds
        arrow = "▼ faster" if faster else "▲ slower" if slower else "= same"
        text += f" {arrow} than {duration(before.median_seconds)}"
    return text


def _response_section(responses: Sequence[Response]) -> dict[str, Any]:
    if not responses:
        return _section("*Team response*\nNothing claimed or resolved in this period.")
    lines = [
        f"• *{mrkdwn.escape(r.department)}* "
        + _durations("claim", r.to_claim, r.previous_to_claim)
        + " · "
        + _durations("resolve", r.to_resolve, r.previous_to_resolve)
        for r in responses[:MAX_ROWS]
    ]
    rows: list[tuple[str, DrillDown]] = []
    for response in responses:
        if response.to_claim.count:
            rows.append(
                (
                    f"{response.department}: claimed ({response.to_claim.count})",
                    response.claim_drill,
                )
            )
        if response.to_resolve.count:
            rows.append(
                (
                    f"{response.department}: resolved ({response.to_resolve.count})",
                    response.resolve_drill,
                )
            )
    return _section(
        "*Team response* (median time from found to claimed / resolved)\n" + "\n".join(lines),
        drill_menu(rows),
        "digest_response",
    )


def _spike_block(spike: SpikeSummary, index: int) -> dict[str, Any]:
    what = "negative share" if spike.kind == "negative" else "volume"
    until = "still going" if spike.ended_at is None else f"until {mrkdwn.date(spike.ended_at)}"
    lines = [
        f":chart_with_upwards_trend: *{mrkdwn.escape(spike.watch_name)}* {what} spike from "
        f"{mrkdwn.date(spike.started_at)}, {until}: {spike.observed:g} against "
        f"~{spike.expected:.1f} expected"
    ]
    for example in spike.examples[:3]:
        words = mrkdwn.truncate(example.title or example.text, 120)
        lines.append(f"> {words} · {mrkdwn.link(example.url, mrkdwn.plain(example.source, 40))}")
    button = drill_button("Show items", spike.drill, 20 + index)
    return _section("\n".join(lines), button, f"digest_spike_{index}")


# ---------------------------------------------------------------- the message


def _period_line(data: DigestData, kind: DigestKind) -> str:
    scope = (
        "departments " + ", ".join(mrkdwn.escape(d) for d in data.departments)
        if data.departments
        else "every department"
    )
    return f"{mrkdwn.date(data.period.start)} → {mrkdwn.date(data.period.end)} · {scope}" + (
        " · week over week" if kind is DigestKind.WEEKLY else ""
    )


def digest_message(
    data: DigestData,
    *,
    kind: DigestKind,
    alert_links: Mapping[int, str] | None = None,
    note: str | None = None,
) -> DigestMessage:
    """The whole digest as one message (at most 50 blocks, sections within 3,000 characters).

    ``note`` goes in the last context line (where the charts are, or that this is a preview).
    """
    links = alert_links or {}
    title = "Earful weekly report" if kind is DigestKind.WEEKLY else "Earful daily digest"
    blocks: list[dict[str, Any]] = [
        HeaderBlock(text=title, block_id="digest_header").to_dict(),
        _context(_period_line(data, kind)),
        *_headline(data, kind),
        DividerBlock().to_dict(),
        _volume_section("By department", data.by_department, "digest_departments"),
        _volume_section("By intent", data.by_intent, "digest_intents"),
        _volume_section("By source", data.by_source, "digest_sources"),
        _sentiment_section(data),
    ]
    voice = _voice_section(data)
    if voice is not None:
        blocks.append(voice)
    blocks.append(DividerBlock().to_dict())
    tail: list[dict[str, Any]] = [_response_section(data.response)]
    spikes = data.spikes[:5]
    if spikes:
        tail.append(_section(f"*Spikes* ({len(data.spikes)})", block_id="digest_spikes"))
        tail.extend(_spike_block(spike, i) for i, spike in enumerate(spikes))
    closing = _context(
        (note + " · " if note else "")
        + "Pick a number's button or menu to list the items behind it."
    )
    # The attention lists give way first when the message would pass Slack's block limit.
    for per_list in (3, 2, 1, 0):
        attention = _attention_blocks(data, links, per_list) if per_list else []
        candidate = [*blocks, *attention, *tail, closing]
        if len(candidate) <= MAX_BLOCKS:
            blocks = candidate
            break
    else:  # pragma: no cover - the fixed parts alone stay far below the limit
        blocks = [*blocks, closing][:MAX_BLOCKS]
    return DigestMessage(text=_fallback(data, kind, title), blocks=blocks)


def _fallback(data: DigestData, kind: DigestKind, title: str) -> str:
    total = data.total
    return (
        f"{title}: {total.count:,} mentions ({change(total.count, total.previous)}), "
        f"{data.attention.escalated.total} open escalations, "
        f"{data.attention.sla_breaches.total} past SLA."
    )


def drill_reply_blocks(
    drill: DrillDown,
    mentions: Sequence[Any],
    *,
    alert_links: Mapping[int, str],
    total_shown_limit: int,
) -> list[dict[str, Any]]:
    """The items behind a number, as an ephemeral list (mentions are storage rows)."""
    head = f"*Items from {_when(drill.start)} to {_when(drill.end)}*" + _filters(drill)
    blocks = [_section(head)]
    if not mentions:
        blocks.append(_section("No items match."))
        return blocks
    for mention in mentions[: MAX_BLOCKS - 2]:
        alert = alert_links.get(int(mention.id))
        where = mrkdwn.link(alert, "alert") if alert else mrkdwn.link(mention.url, "original")
        words = mention.title or mention.text
        blocks.append(
            _section(
                f"*{mrkdwn.escape(mention.priority)}* · {mrkdwn.escape(mention.department)} · "
                f"{mrkdwn.escape(mention.state)} · {mrkdwn.date(mention.found_at)} · {where}\n"
                f"{mrkdwn.truncate(words, 200)}"
            )
        )
    if len(mentions) >= total_shown_limit:
        blocks.append(_context(f"The first {total_shown_limit}; export the period for all."))
    return blocks[:MAX_BLOCKS]


def _when(moment: datetime | None) -> str:
    return "the start" if moment is None else mrkdwn.date(moment)


def _filters(drill: DrillDown) -> str:
    parts = []
    for name, value in (
        ("department", drill.department),
        ("intent", None if drill.intent is None else _label(drill.intent)),
        ("source", drill.source),
        ("watch", drill.watch_name),
        ("sentiment", drill.sentiment),
    ):
        if value is not None:
            parts.append(f"{name} {mrkdwn.escape(value)}")
    if drill.time_field != "found_at":
        parts.append(drill.time_field.replace("_at", ""))
    if drill.departments:
        parts.append("in " + ", ".join(mrkdwn.escape(d) for d in drill.departments))
    return (" · " + " · ".join(parts)) if parts else ""
