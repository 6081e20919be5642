"""Alert cards: safe against hostile source text, within Block Kit limits, right buttons."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.cards import (
    ActionValue,
    AlertCard,
    CardEvent,
    alert_blocks,
    alert_fallback_text,
    event_reply_text,
    retired_blocks,
    source_label,
    state_line,
)
from bot.ids import ActionId, BlockId
from tests.fakes.slack_api import block_kit_problems
from watchers.departments import Department

OWNER = "U0OWNER1"
ACTOR = "U0ACTOR1"
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TEXT = "Acme lost my order again. Acme support never answers."

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S1|@team>",
    "<@U123>",
    "<#C123|general>",
    "<https://evil.example|bank.com>",
    "&lt;!channel&gt;",
    "<!chan\u200bnel>",
    "\u202e<!here>\u2066",
]
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
DATE_TOKEN = r"<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[0-9: -]+UTC>"


def make_card(**changes: Any) -> AlertCard:
    card = AlertCard(
        mention_id=42,
        watch_name="acme",
        source="rss:https://example.com/feed.xml",
        author="jane",
        url="https://example.com/posts/1",
        title="Acme lost my order",
        text=TEXT,
        published_at=AT,
        highlight_spans=((0, 4), (26, 30)),
        matched_terms=("acme",),
        sentiment_label="negative",
        sentiment_compound=-0.62,
        intents=("complaint", "bug_report"),
        department="support",
        cc=("pr",),
        route_rule="intent complaint → support",
        priority="P2",
        priority_reason="negative complaint",
        state="new",
        owner=None,
        escalation_level=0,
        last_event=None,
    )
    return dataclasses.replace(card, **changes)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def text_objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
            yield value
        for item in value.values():
            yield from text_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from text_objects(item)


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [obj["text"] for obj in text_objects(blocks) if obj["type"] == "mrkdwn"]


def assert_inert(text: str, trusted_users: tuple[str, ...] = ()) -> None:
    """Only markup we write ourselves may be live: dates and mentions of trusted user ids."""
    allowed = [DATE_TOKEN, *(re.escape(f"<@{u}>") for u in trusted_users)]
    rest = re.sub("|".join(allowed), "", text)
    assert "<" not in rest and ">" not in rest, text
    assert not re.search(r"&(?!amp;|lt;|gt;)", rest), text


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    # Independent of slack_sdk: the fake Slack server's validator, then the round trip.
    assert block_kit_problems(blocks) == []
    assert len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        assert parsed.to_dict() == block
    # And our own, stricter reading: UTF-16 units, in case Slack counts an emoji as two.
    for block in blocks:
        assert utf16(block.get("block_id", "")) <= 255
        if block["type"] == "header":
            assert utf16(block["text"]["text"]) <= 150
        if block["type"] == "section":
            if "text" in block:
                assert 0 < utf16(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            for item in block.get("fields", []):
                assert 0 < utf16(item["text"]) <= 2000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            for item in block["elements"]:
                assert 0 < utf16(item["text"]) <= 3000
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
            for element in block["elements"]:
                assert utf16(element["action_id"]) <= 255
                if element["type"] == "button":
                    assert 0 < utf16(element["text"]["text"]) <= 75
                    assert utf16(element.get("value", "")) <= 2000
                    assert utf16(element.get("url", "")) <= 3000
                for option in element.get("options", []):
                    assert 0 < utf16(option["text"]["text"]) <= 75
                    assert utf16(option["value"]) <= 150


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    actions = [b for b in blocks if b["type"] == "actions"]
    return [e["action_id"] for b in actions for e in b["elements"]]


def block(blocks: list[dict[str, Any]], block_id: BlockId) -> dict[str, Any]:
    return next(b for b in blocks if b.get("block_id") == block_id)


# --- hostile text -------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize(
    "field",
    ["title", "text", "author", "url", "watch_name", "source", "route_rule", "priority_reason"],
)
def test_hostile_text_renders_inert_everywhere(field: str, hostile: str) -> None:
    value = f"before {hostile} after"
    if field == "url":
        value = f"https://example.com/{hostile}"
    elif field == "source":
        value = f"rss:{hostile}"
    card = make_card(
        **{field: value},
        state="claimed",
        owner=OWNER,
        last_event=CardEvent(actor=OWNER, action="claim", at=AT, note=hostile),
    )

    blocks = alert_blocks(card)

    for text in mrkdwn_texts(blocks):
        assert_inert(text, trusted_users=(OWNER,))
    assert_inert(alert_fallback_text(card))
    assert_inert(event_reply_text(card.last_event, card), trusted_users=(OWNER,))  # type: ignore[arg-type]
    retired, retired_text = retired_blocks(card)
    for text in [*mrkdwn_texts(retired), retired_text]:
        assert_inert(text)
    for text in strings([blocks, retired]):
        assert not INVISIBLE.search(text), text
    assert_within_limits(blocks)


def test_hostile_matched_terms_intents_and_cc_are_escaped() -> None:
    card = make_card(
        matched_terms=("<!channel>", "<@U123>"),
        intents=("<!here>",),
        cc=("<#C1>",),
        sentiment_label="<!everyone>",
        priority="<!here>",
        department="<!channel>",
        state="<!subteam^S1>",
    )

    for text in mrkdwn_texts(alert_blocks(card)):
        assert_inert(text)
    assert_inert(alert_fallback_text(card))


def test_the_hostile_text_is_still_shown_literally() -> None:
    card = make_card(title="<!channel> alert", text="ping <!here> & <@U123>", highlight_spans=())

    body = block(alert_blocks(card), BlockId.ALERT_BODY)["text"]["text"]

    assert body == "*&lt;!channel&gt; alert*\nping &lt;!here&gt; &amp; &lt;@U123&gt;"


def test_title_is_bold_even_with_invisible_padding() -> None:
    card = make_card(title="\u200b  Acme  \u200b", text="x", highlight_spans=())

    assert block(alert_blocks(card), BlockId.ALERT_BODY)["text"]["text"] == "*Acme*\nx"


def test_mrkdwn_is_verbatim_so_slack_does_not_autoparse_source_text() -> None:
    blocks = alert_blocks(make_card(text="hey @channel see example.com"))

    objects = [o for o in text_objects(blocks) if o["type"] == "mrkdwn"]
    assert objects and all(o.get("verbatim") is True for o in objects)


@pytest.mark.parametrize(
    "owner", ["U123>", "<!channel>", "u0owner1", "U1", "C0CHANNEL", "U0OWNER1\n<!here>"]
)
def test_owner_ids_that_do_not_look_like_user_ids_are_not_mentioned(owner: str) -> None:
    card = make_card(
        state="claimed",
        owner=owner,
        last_event=CardEvent(actor=owner, action="claim", at=AT),
    )

    line = state_line(card)

    assert "<@" not in line and "<!channel" not in line and "<!here" not in line
    assert "unknown user" in line
    assert "<@" not in event_reply_text(card.last_event, card)  # type: ignore[arg-type]


# --- limits -------------------------------------------------------------------------------

BIG_CASES = {
    "10k text": {"text": "word " * 2000},
    "5k title": {"title": "T" * 5000},
    "2.9k url": {"url": "https://example.com/" + "p" * 2880},
    "emoji text": {"text": "👩\u200d💻🇫🇷😀" * 2000, "title": "🔥" * 3000},
    "ampersands": {"text": "&<>" * 3000, "title": "&" * 3000, "author": "<" * 3000},
    "long meta": {
        "author": "a" * 5000,
        "watch_name": "w" * 500,
        "route_rule": "r" * 5000,
        "priority_reason": "p" * 5000,
        "matched_terms": tuple("term" * 50 for _ in range(200)),
        "intents": tuple("bug_report" for _ in range(500)),
        "source": "reddit:" + "r" * 5000,
    },
    "long note": {
        "state": "dismissed",
        "last_event": CardEvent(actor=ACTOR, action="dismiss", at=AT, note="n" * 10_000),
    },
    "many spans": {
        "text": "acme " * 2000,
        "highlight_spans": tuple((i * 5, i * 5 + 4) for i in range(2000)),
    },
}


@pytest.mark.parametrize("changes", BIG_CASES.values(), ids=BIG_CASES.keys())
def test_big_inputs_stay_within_block_kit_limits(changes: dict[str, Any]) -> None:
    card = make_card(**changes)

    blocks = alert_blocks(card)

    assert_within_limits(blocks)
    # The message text may be 40,000 long; 300 is our own cap, counted in characters.
    assert len(alert_fallback_text(card)) <= 300
    retired, text = retired_blocks(card)
    assert_within_limits(retired)
    assert len(text) <= 300
    event = CardEvent(actor=ACTOR, action="dismiss", at=AT, note="x" * 10_000)
    assert len(event_reply_text(event, card)) <= 300


def test_post_text_is_cut_to_leave_room() -> None:
    body = block(alert_blocks(make_card(text="x" * 10_000, title=None)), BlockId.ALERT_BODY)

    assert len(body["text"]["text"]) == 1200
    assert body["text"]["text"].endswith("…")


def test_a_2900_character_url_keeps_its_open_button() -> None:
    url = "https://example.com/" + "p" * 2880

    buttons = block(alert_blocks(make_card(url=url)), BlockId.ALERT_ACTIONS)["elements"]

    original = [b for b in buttons if b["action_id"] == ActionId.OPEN_ORIGINAL]
    assert original and original[0]["url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/" + "p" * 3000,
        "javascript:alert(1)",
        "https://a.com@evil.example/",
        None,
    ],
)
def test_no_open_button_for_urls_we_cannot_link(url: str | None) -> None:
    assert ActionId.OPEN_ORIGINAL not in action_ids(alert_blocks(make_card(url=url)))


# --- content ------------------------------------------------------------------------------


def test_card_content() -> None:
    blocks = alert_blocks(make_card())

    assert [b["block_id"] for b in blocks] == [
        BlockId.ALERT_HEADER,
        BlockId.ALERT_CONTEXT,
        BlockId.ALERT_BODY,
        BlockId.ALERT_FIELDS,
        BlockId.ALERT_STATE,
        BlockId.ALERT_ACTIONS,
    ]
    assert block(blocks, BlockId.ALERT_HEADER)["text"]["text"] == "🟠 P2 high · Support · acme"
    context = block(blocks, BlockId.ALERT_CONTEXT)["elements"][0]["text"]
    assert re.fullmatch(rf"RSS · example\.com · by jane · {DATE_TOKEN}", context)
    assert "1714564800" in context
    body = block(blocks, BlockId.ALERT_BODY)["text"]["text"]
    assert body == (
        "*Acme lost my order*\n*Acme* lost my order again. *Acme* support never answers."
    )
    fields = [f["text"] for f in block(blocks, BlockId.ALERT_FIELDS)["fields"]]
    assert fields == [
        "*Sentiment*\n🙁 negative (-0.62)",
        "*Intents*\ncomplaint, bug report",
        "*Priority*\nP2 high — negative complaint",
        "*Department*\nSupport (cc PR)\nRule: intent complaint → support",
        "*Matched terms*\nacme",
    ]


def test_card_without_optional_parts() -> None:
    card = make_card(author=None, published_at=None, title=None, url=None, text="  ", cc=())

    blocks = alert_blocks(card)

    assert block(blocks, BlockId.ALERT_CONTEXT)["elements"][0]["text"] == "RSS · example.com"
    assert block(blocks, BlockId.ALERT_BODY)["text"]["text"] == "_No text._"
    assert_within_limits(blocks)


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("rss:https://example.com/feed.xml", "RSS · example.com"),
        ("hn", "Hacker News"),
        ("reddit:r/python", "Reddit · r/python"),
        ("mastodon:@acme@mastodon.social", "Mastodon · @acme@mastodon.social"),
        ("weird", "weird"),
        ("rss:https://[broken/feed", "RSS"),
    ],
)
def test_source_label(source: str, label: str) -> None:
    assert source_label(source) == label


# --- states and buttons -------------------------------------------------------------------

OPEN_ACTIONS = [ActionId.ESCALATE, ActionId.RESOLVE, ActionId.DISMISS, ActionId.REROUTE]
# "Answered" marks it; "Answer…" opens the answer modal (bot/answer_modal.py).
ANSWER_ACTIONS = [ActionId.ANSWER, ActionId.WRITE_ANSWER]


@pytest.mark.parametrize(
    ("state", "owner", "expected"),
    [
        ("new", None, [ActionId.CLAIM, *ANSWER_ACTIONS, *OPEN_ACTIONS]),
        ("claimed", OWNER, [*ANSWER_ACTIONS, *OPEN_ACTIONS]),
        ("escalated", OWNER, [*ANSWER_ACTIONS, *OPEN_ACTIONS]),
        # Escalated by the SLA sweep before anyone claimed it: it must still be claimable.
        ("escalated", None, [ActionId.CLAIM, *ANSWER_ACTIONS, *OPEN_ACTIONS]),
        # Answered: still open (someone must resolve it), but not answerable twice.
        ("answered", OWNER, OPEN_ACTIONS),
        ("resolved", OWNER, [ActionId.REOPEN]),
        ("dismissed", None, [ActionId.REOPEN]),
    ],
)
def test_state_decides_the_buttons(state: str, owner: str | None, expected: list[str]) -> None:
    blocks = alert_blocks(make_card(state=state, owner=owner))

    assert action_ids(blocks) == [*expected, ActionId.OPEN_ORIGINAL]
    assert_within_limits(blocks)


def test_button_styles_and_values() -> None:
    elements = block(alert_blocks(make_card()), BlockId.ALERT_ACTIONS)["elements"]
    by_id = {e["action_id"]: e for e in elements}

    assert by_id[ActionId.CLAIM]["style"] == "primary"
    assert by_id[ActionId.ESCALATE]["style"] == "danger"
    assert "style" not in by_id[ActionId.RESOLVE]
    for action in (
        ActionId.CLAIM,
        ActionId.ANSWER,
        ActionId.WRITE_ANSWER,
        ActionId.ESCALATE,
        ActionId.RESOLVE,
    ):
        assert ActionValue.decode(by_id[action]["value"]) == ActionValue(42)


def test_dismiss_is_a_menu_of_reasons() -> None:
    elements = block(alert_blocks(make_card()), BlockId.ALERT_ACTIONS)["elements"]
    menu = next(e for e in elements if e["action_id"] == ActionId.DISMISS)

    assert menu["type"] == "static_select"
    assert [o["text"]["text"] for o in menu["options"]] == [
        "Noise",
        "Duplicate",
        "Not ours",
        "Spam",
    ]
    values = [ActionValue.decode(o["value"]) for o in menu["options"]]
    assert [v.reason for v in values] == ["noise", "duplicate", "not_ours", "spam"]
    assert {v.mention_id for v in values} == {42}


def test_escalating_again_says_so_on_the_button() -> None:
    def label(level: int) -> str:
        blocks = alert_blocks(make_card(state="escalated", escalation_level=level))
        elements = block(blocks, BlockId.ALERT_ACTIONS)["elements"]
        return str(next(e for e in elements if e["action_id"] == ActionId.ESCALATE)["text"]["text"])

    assert label(0) == "Escalate"
    assert label(2) == "Escalate again"


def test_reroute_offers_every_other_department() -> None:
    elements = block(alert_blocks(make_card(department="pr")), BlockId.ALERT_ACTIONS)["elements"]
    menu = next(e for e in elements if e["action_id"] == ActionId.REROUTE)

    values = [ActionValue.decode(o["value"]) for o in menu["options"]]
    assert [v.department for v in values] == [d.value for d in Department if d is not Department.PR]
    assert {v.mention_id for v in values} == {42}
    assert menu["type"] == "static_select"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, r"🆕 \*New\* — unclaimed"),
        (
            {"state": "claimed", "owner": OWNER, "last_event": CardEvent(OWNER, "claim", AT)},
            rf"👀 \*Claimed\* by <@{OWNER}> · {DATE_TOKEN}",
        ),
        (
            {
                "state": "escalated",
                "owner": OWNER,
                "escalation_level": 2,
                "last_event": CardEvent(ACTOR, "escalate", AT),
            },
            rf"🚨 \*Escalated\* \(level 2\) by <@{ACTOR}> · {DATE_TOKEN} · claimed by <@{OWNER}>",
        ),
        (
            {
                "state": "escalated",
                "escalation_level": 1,
                "last_event": CardEvent(None, "escalate", AT),
            },
            rf"🚨 \*Escalated\* \(level 1\) by Earful · {DATE_TOKEN} · unclaimed",
        ),
        (
            {
                "state": "escalated",
                "owner": OWNER,
                "escalation_level": 2,
                "last_event": CardEvent(ACTOR, "escalate", AT, note="level 2"),
            },
            rf"🚨 \*Escalated\* \(level 2\) by <@{ACTOR}> · {DATE_TOKEN} · claimed by <@{OWNER}>$",
        ),
        (
            {"state": "answered", "owner": OWNER, "last_event": CardEvent(OWNER, "answer", AT)},
            rf"💬 \*Answered\* by <@{OWNER}> · {DATE_TOKEN}",
        ),
        (
            {"state": "resolved", "owner": OWNER, "last_event": CardEvent(OWNER, "resolve", AT)},
            rf"✅ \*Resolved\* by <@{OWNER}> · {DATE_TOKEN}",
        ),
        (
            {
                "state": "dismissed",
                "last_event": CardEvent(ACTOR, "dismiss", AT, note="spam <!here>"),
            },
            rf"🚫 \*Dismissed\* by <@{ACTOR}> · {DATE_TOKEN} \(spam &lt;!here&gt;\)",
        ),
        (
            {"last_event": CardEvent(ACTOR, "reopen", AT)},
            rf"🆕 \*New\* — unclaimed · reopened by <@{ACTOR}> · {DATE_TOKEN}",
        ),
    ],
)
def test_state_line(changes: dict[str, Any], expected: str) -> None:
    card = make_card(**changes)

    line = block(alert_blocks(card), BlockId.ALERT_STATE)["elements"][0]["text"]

    assert re.fullmatch(expected, line), line


# --- texts --------------------------------------------------------------------------------


def test_fallback_text() -> None:
    card = make_card(title="Acme <!channel> & co")

    assert alert_fallback_text(card) == (
        "P2 complaint about acme on RSS · example.com — Acme &lt;!channel&gt; &amp; co"
    )


def test_fallback_text_of_a_closed_card_says_so() -> None:
    text = alert_fallback_text(make_card(state="resolved", intents=(), title=None))

    assert text.startswith("[Resolved] P2 mention about acme on RSS · example.com — Acme lost")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (CardEvent(OWNER, "claim", AT), f"👀 <@{OWNER}> claimed this."),
        (CardEvent(None, "escalate", AT), "🚨 Earful escalated this."),
        (
            CardEvent(ACTOR, "dismiss", AT, note="spam <!here>"),
            f"🚫 <@{ACTOR}> dismissed this: spam &lt;!here&gt;",
        ),
        (CardEvent("U1>", "resolve", AT), "✅ an unknown user resolved this."),
        (CardEvent(ACTOR, "<!channel>", AT), f"• <@{ACTOR}> &lt;!channel&gt; this."),
        (CardEvent(ACTOR, "reroute", AT), f"↪️ <@{ACTOR}> rerouted this to Product."),
    ],
)
def test_event_reply_text(event: CardEvent, expected: str) -> None:
    assert event_reply_text(event, make_card(department="product")) == expected


def test_retired_card_points_to_the_new_department_and_has_no_buttons() -> None:
    event = CardEvent(ACTOR, "reroute", AT, note="support → product")
    card = make_card(department="product", last_event=event)

    blocks, text = retired_blocks(card)

    assert action_ids(blocks) == []
    first = blocks[0]["text"]["text"]
    assert re.fullmatch(
        rf"↪️ \*Rerouted to Product\* by <@{ACTOR}> · {DATE_TOKEN} \(support → product\)\n"
        r"\*Acme lost my order\*",
        first,
    ), first
    assert text == "Rerouted to Product: Acme lost my order"
    assert_within_limits(blocks)


# --- action values ------------------------------------------------------------------------


def test_action_value_round_trip() -> None:
    value = ActionValue(7, department="legal")

    assert ActionValue.decode(value.encode()) == value
    assert json.loads(value.encode()) == {"mention_id": 7, "department": "legal"}
    reason = ActionValue(7, reason="not_ours")
    assert ActionValue.decode(reason.encode()) == reason


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "42",
        "[]",
        "nope",
        '{"mention_id": true}',
        '{"mention_id": "42"}',
        '{"mention_id": -1}',
        '{"mention_id": 1.5}',
        '{"mention_id": 1, "department": 3}',
        '{"mention_id": 1, "reason": ["spam"]}',
        "{}",
    ],
)
def test_action_value_rejects_anything_else(raw: str) -> None:
    with pytest.raises(ValueError):
        ActionValue.decode(raw)
