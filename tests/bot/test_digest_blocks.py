"""The digest message: Slack's limits, escaping, change arrows, and a drill-down per number."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.digest_blocks import (
    MAX_BLOCKS,
    change,
    digest_message,
    drill_reply_blocks,
    duration,
    sparkline,
)
from bot.digest_schedule import DigestKind
from bot.ids import DigestActionId
from storage.digest_data import (
    Attention,
    AttentionList,
    DigestData,
    DrillDown,
    Durations,
    MentionSummary,
    Period,
    Response,
    SentimentPoint,
    SpikeSummary,
    Voice,
    Volume,
)
from storage.models import Mention
from tests.fakes.slack_api import block_kit_problems

START = datetime(2026, 11, 23, 8, tzinfo=UTC)
END = START + timedelta(days=1)
HOSTILE = "<!channel> <@U0BOSS> *bold* <https://evil.example|bank.com> & more"


def drill(**changes: Any) -> DrillDown:
    return DrillDown(start=START, end=END, **changes)


def volume(key: str, count: int, previous: int, **filters: Any) -> Volume:
    return Volume(key, count, previous, drill(**filters), drill(**filters))


def summary(n: int, **changes: Any) -> MentionSummary:
    values: dict[str, Any] = {
        "id": n,
        "found_at": START + timedelta(minutes=n),
        "watch_name": "acme",
        "source": "hn",
        "url": f"https://news.example/{n}",
        "author": HOSTILE,
        "author_reach": 1200,
        "title": None,
        "text": HOSTILE * 20,
        "department": "support",
        "priority": "P1",
        "state": "new",
        "owner": None,
        "sentiment_compound": -0.6,
        "primary_intent": "complaint",
        "escalation_level": 0,
    }
    values.update(changes)
    return MentionSummary(**values)


def attention(kind: Any, total: int, first_id: int) -> AttentionList:
    items = tuple(summary(first_id + i) for i in range(min(total, 5)))
    return AttentionList(kind, total, items, drill(mention_ids=tuple(i.id for i in items)))


def sample_data(*, rows: int = 9, spikes: int = 3, hours: int = 24) -> DigestData:
    """A busy day: every section full, hostile text everywhere a source can put it."""
    departments = ["support", "product", "pr", "sales", "hr", "legal", "exec", "research"]
    sentiment = tuple(
        SentimentPoint(
            START + timedelta(hours=h),
            START + timedelta(hours=h + 1),
            count=h % 5,
            mean_compound=None if h % 5 == 0 else (h % 7 - 3) / 3,
            negative=h % 3,
            positive=1,
            drill=drill(),
        )
        for h in range(hours)
    )
    return DigestData(
        period=Period(START, END),
        previous=Period(START - timedelta(days=1), START),
        departments=(),
        total=volume("total", 420, 300),
        by_department=tuple(
            volume(d, 100 - i * 10, 80, department=d) for i, d in enumerate(departments[:rows])
        ),
        by_intent=tuple(
            volume(k, 50 - i, 50, intent=k)
            for i, k in enumerate(["complaint", "praise", "", "press", "question"])
        ),
        by_source=tuple(volume(s, 30, 0, source=s) for s in ("hn", "reddit", "rss", "bluesky")),
        bucket="hour",
        sentiment=sentiment,
        previous_sentiment=sentiment,
        share_of_voice=(
            Voice("acme", "brand", 300, 200, 60.0, 50.0, 0.1, 20, drill(matched_watch="acme")),
            Voice(HOSTILE[:40], "competitor", 200, 200, 40.0, 50.0, -0.2, 30, drill()),
        ),
        attention=Attention(
            top=attention("top", 12, 100),
            escalated=attention("escalated", 2, 200),
            sla_breaches=attention("sla_breach", 4, 300),
        ),
        response=tuple(
            Response(
                d,
                Durations(10, 600.0, 3600.0),
                Durations(5, 7200.0, 86_400.0 * 2),
                Durations(8, 900.0, 4000.0),
                Durations(0, None, None),
                drill(department=d, time_field="claimed_at"),
                drill(department=d, time_field="resolved_at"),
            )
            for d in departments[:rows]
        ),
        spikes=tuple(
            SpikeSummary(
                i,
                "acme",
                "volume",
                START + timedelta(hours=i),
                None,
                40.0,
                4.0,
                0.0001,
                (summary(400 + i), summary(500 + i, title=HOSTILE)),
                drill(watch_name="acme"),
            )
            for i in range(spikes)
        ),
    )


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for block in blocks:
        found.extend(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            found.append(block["accessory"])
    return found


def test_a_busy_digest_stays_within_slacks_limits() -> None:
    message = digest_message(
        sample_data(spikes=8), kind=DigestKind.DAILY, alert_links={100: "https://x/1"}
    )
    assert block_kit_problems(message.blocks) == []
    assert len(message.blocks) <= MAX_BLOCKS
    assert message.text.startswith("Earful daily digest: 420 mentions (▲ +120 (+40%))")


def mrkdwn_texts(value: Any) -> list[str]:
    """Every mrkdwn string in blocks (plain_text is shown literally by Slack, never parsed)."""
    if isinstance(value, list):
        return [t for item in value for t in mrkdwn_texts(item)]
    if not isinstance(value, dict):
        return []
    found = [value["text"]] if value.get("type") == "mrkdwn" else []
    return found + [t for v in value.values() for t in mrkdwn_texts(v)]


def test_untrusted_text_is_escaped_everywhere() -> None:
    text = "\n".join(mrkdwn_texts(digest_message(sample_data(), kind=DigestKind.DAILY).blocks))
    assert "<!channel>" not in text
    assert "<@U0BOSS>" not in text
    assert "<https://evil.example" not in text
    assert "&lt;!channel&gt;" in text


def test_every_section_with_numbers_can_drill_down() -> None:
    data = sample_data()
    blocks = digest_message(data, kind=DigestKind.DAILY).blocks
    by_id = {b.get("block_id"): b for b in blocks}
    for block_id in (
        "digest_departments",
        "digest_intents",
        "digest_sources",
        "digest_sentiment",
        "digest_voice",
        "digest_response",
    ):
        menu = by_id[block_id]["accessory"]
        assert menu["action_id"] == DigestActionId.DRILL_MENU
        for option in menu["options"]:
            DrillDown.from_value(option["value"])  # each one decodes
    departments = by_id["digest_departments"]["accessory"]["options"]
    support = DrillDown.from_value(departments[0]["value"])
    assert support == data.by_department[0].drill
    headline = by_id["digest_headline_drill"]["elements"]
    ids = [e["action_id"] for e in headline]
    assert ids[:4] == [f"{DigestActionId.DRILL}.{i}" for i in range(4)]
    assert ids[-1] == DigestActionId.EXPORT
    assert DrillDown.from_value(headline[1]["value"]).sentiment == "negative"
    assert DrillDown.from_value(headline[2]["value"]) == data.attention.escalated.drill


def test_attention_items_link_to_their_alerts_or_else_the_original() -> None:
    message = digest_message(
        sample_data(), kind=DigestKind.DAILY, alert_links={100: "https://earful.slack/p100"}
    )
    text = all_text(message.blocks)
    assert "<https://earful.slack/p100|alert>" in text
    assert "<https://news.example/101|original>" in text
    assert "…and 9 more." in text  # 12 top items, 3 shown


def test_the_weekly_report_says_so() -> None:
    message = digest_message(sample_data(hours=7), kind=DigestKind.WEEKLY)
    assert message.blocks[0]["text"]["text"] == "Earful weekly report"
    assert "week over week" in all_text(message.blocks)


def test_a_quiet_day_says_nothing_needs_attention() -> None:
    data = sample_data(rows=0, spikes=0)
    quiet = DigestData(
        **{
            **{name: getattr(data, name) for name in data.__dataclass_fields__},
            "attention": Attention(
                AttentionList("top", 0, (), drill()),
                AttentionList("escalated", 0, (), drill()),
                AttentionList("sla_breach", 0, (), drill()),
            ),
            "share_of_voice": (),
        }
    )
    message = digest_message(quiet, kind=DigestKind.DAILY)
    assert block_kit_problems(message.blocks) == []
    text = all_text(message.blocks)
    assert "Nothing: no escalations, no SLA breaches." in text
    assert "Nothing claimed or resolved in this period." in text


def test_change_arrows_and_durations() -> None:
    assert change(12, 10) == "▲ +2 (+20%)"
    assert change(5, 10) == "▼ −5 (−50%)"
    assert change(3, 0) == "▲ +3 (new)"
    assert change(4, 4) == "= no change"
    assert duration(None) == "–"
    assert duration(42) == "42s"
    assert duration(600) == "10m"
    assert duration(5400) == "1.5h"
    assert duration(2 * 86_400) == "2.0d"
    assert sparkline([-1.0, 0.0, 1.0, None]) == "▁▅█·"


def test_a_drill_down_list_escapes_and_links_alerts() -> None:
    mention = Mention(
        id=7,
        watch_name="acme",
        watch_kind="brand",
        source="hn",
        origin="hn",
        external_id="7",
        text=HOSTILE,
        department="support",
        priority="P2",
        found_at=START,
        url="https://news.example/7",
    )
    blocks = drill_reply_blocks(
        drill(department="support"),
        [mention],
        alert_links={7: "https://earful.slack/p7"},
        total_shown_limit=20,
    )
    assert block_kit_problems(blocks) == []
    text = "\n".join(mrkdwn_texts(blocks))
    assert "<https://earful.slack/p7|alert>" in text
    assert "<!channel>" not in text
    assert "department support" in text
