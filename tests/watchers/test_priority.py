from __future__ import annotations

import pytest

from watchers.departments import Intent, Priority
from watchers.priority import prioritize
from watchers.sentiment import Sentiment, label_for


def feeling(compound: float) -> Sentiment:
    return Sentiment(compound=compound, label=label_for(compound))


def test_legal_risk_is_p1_whatever_the_tone() -> None:
    assert prioritize(sentiment=feeling(0.8), intents=[Intent.PRAISE, Intent.LEGAL_RISK]) == (
        Priority.P1,
        "legal risk",
    )


def test_a_strongly_negative_complaint_is_p2() -> None:
    assert prioritize(sentiment=feeling(-0.78), intents=[Intent.COMPLAINT]) == (
        Priority.P2,
        "strongly negative complaint (−0.78)",
    )


def test_a_strongly_negative_bug_report_is_p2() -> None:
    assert prioritize(sentiment=feeling(-0.7), intents=[Intent.BUG_REPORT]) == (
        Priority.P2,
        "strongly negative bug report (−0.70)",
    )


@pytest.mark.parametrize(("compound", "priority"), [(-0.6, Priority.P2), (-0.59, Priority.P3)])
def test_strongly_negative_starts_at_minus_point_six(compound: float, priority: Priority) -> None:
    assert prioritize(sentiment=feeling(compound), intents=[Intent.COMPLAINT])[0] is priority


def test_a_large_audience_makes_it_p1() -> None:
    assert prioritize(
        sentiment=feeling(-0.78), intents=[Intent.COMPLAINT], author_reach=25_000
    ) == (Priority.P1, "strongly negative complaint (−0.78), large audience (25,000 followers)")


def test_a_burst_makes_it_p1() -> None:
    assert prioritize(sentiment=feeling(-0.9), intents=[Intent.BUG_REPORT], velocity=5) == (
        Priority.P1,
        "strongly negative bug report (−0.90), spreading (5 similar posts)",
    )


def test_just_under_the_amplifier_thresholds_changes_nothing() -> None:
    assert (
        prioritize(
            sentiment=feeling(-0.9), intents=[Intent.COMPLAINT], author_reach=9_999, velocity=4
        )[0]
        is Priority.P2
    )


@pytest.mark.parametrize(
    ("intents", "reason"),
    [
        ([Intent.COMPLAINT], "complaint"),
        ([Intent.BUG_REPORT], "bug report"),
        ([Intent.QUESTION], "question"),
        ([Intent.PURCHASE_INTENT, Intent.QUESTION], "purchase intent"),
        ([Intent.QUESTION, Intent.BUG_REPORT], "bug report"),
    ],
)
def test_other_problems_questions_and_buyers_are_p3(intents: list[Intent], reason: str) -> None:
    assert prioritize(sentiment=feeling(-0.2), intents=intents) == (Priority.P3, reason)


@pytest.mark.parametrize(
    ("intents", "reason"),
    [
        ([Intent.PRAISE], "praise"),
        ([Intent.FEATURE_REQUEST], "feature request"),
        ([Intent.PRESS], "press"),
        ([], "no clear intent"),
    ],
)
def test_everything_else_is_p4(intents: list[Intent], reason: str) -> None:
    assert prioritize(sentiment=feeling(-0.9), intents=intents) == (Priority.P4, reason)


def test_a_large_audience_raises_a_quiet_mention_one_level() -> None:
    assert prioritize(sentiment=feeling(0.9), intents=[Intent.PRAISE], author_reach=2_000_000) == (
        Priority.P3,
        "praise, large audience (2,000,000 followers)",
    )


def test_a_large_audience_on_a_mild_complaint_is_p2() -> None:
    assert (
        prioritize(sentiment=feeling(-0.3), intents=[Intent.COMPLAINT], author_reach=50_000)[0]
        is Priority.P2
    )
