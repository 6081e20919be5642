"""Summary alerts stay within Slack's limits and escape whatever the sources sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.delivery import LINES_PER_REPLY
from bot.summary_cards import GroupedMention, SummaryCard, lines_blocks, summary_blocks
from tests.fakes.slack_api import MESSAGE_TEXT_MAX, block_kit_problems

HOSTILE = "<!channel> <@U0ALICE> <https://evil.example|bank> &lt; 😀" * 40


def worst(n: int) -> GroupedMention:
    return GroupedMention(
        mention_id=n,
        priority="P4",
        watch_name="acme" * 10,
        source="rss:https://" + "a" * 200 + ".example/feed.xml",
        author=HOSTILE,
        title=HOSTILE,
        text=HOSTILE,
        url="https://example.com/" + "x&" * 2000,  # too long to link: left out, not cut
        sentiment_label="negative",
    )


def test_a_full_reply_of_the_longest_lines_is_within_limits() -> None:
    blocks, text = lines_blocks([worst(n) for n in range(LINES_PER_REPLY)], first=1, total=90)
    assert not block_kit_problems(blocks)
    dumped = json.dumps(blocks, ensure_ascii=False)
    assert len(dumped) < MESSAGE_TEXT_MAX
    assert "<!channel>" not in dumped and "<@U0ALICE>" not in dumped
    assert "<https://evil.example" not in dumped
    assert text == "Mentions 1–40 of 90"
    assert all(f"#{n}" in dumped for n in range(LINES_PER_REPLY))


def test_the_summary_of_a_huge_burst_is_within_limits() -> None:
    many = tuple((f"{HOSTILE[:30]} {n}", 1000 - n) for n in range(50))
    card = SummaryCard(
        department="support",
        size=4999,
        since=datetime(2026, 11, 24, 10, tzinfo=UTC),
        by_priority=(("P3", 1000), ("P4", 3999)),
        by_watch=many,
        by_intent=((None, 4000), ("complaint", 999)),
        by_source=many,
        by_sentiment=(("negative", 10), ("neutral", 4989)),
        examples=tuple(worst(n) for n in range(3)),
    )
    blocks, text = summary_blocks(card)
    assert not block_kit_problems(blocks)
    dumped = json.dumps(blocks, ensure_ascii=False)
    assert "<!channel>" not in dumped
    assert "4,999 low-priority mentions" in text and "others:" in dumped
    assert "/earful queue support" in dumped and "no clear intent: 4,000" in dumped
