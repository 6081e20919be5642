from __future__ import annotations

import time

import pytest

from watchers import sentiment
from watchers.sentiment import (
    MAX_ANALYSED_CHARS,
    WORDS_AT_FULL_WEIGHT,
    Sentiment,
    clean_social_text,
    label_for,
    score_sentiment,
)


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("#NeverAgain", "Never Again"),
        ("#worst_service", "worst service"),
        ("#ATTFail", "ATT Fail"),
        ("#fail", "fail"),
        ("#Black_Friday2024", "Black Friday 2024"),
        ("#日本", "日本"),
    ],
)
def test_hashtags_are_split_into_words(tag: str, words: str) -> None:
    assert clean_social_text(f"so much for that {tag}") == f"so much for that {words}"


def test_urls_and_handles_are_removed_but_emails_and_csharp_stay() -> None:
    text = (
        "@acme @bob@mastodon.social see https://acme.com/status?id=1 and www.acme.com/x "
        "or mail help@acme.com about C#"
    )
    assert clean_social_text(text) == "see and or mail help@acme.com about C#"


def test_emoji_caps_and_repeated_punctuation_are_kept() -> None:
    assert clean_social_text("WHY is it DOWN again?!?! 😡😡") == "WHY is it DOWN again?!?! 😡😡"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love the new dashboard, great work 😍", "positive"),
        ("Worst customer service I have ever dealt with. #NeverAgain", "negative"),
        ("Acme released version 4.2 on Tuesday.", "neutral"),
        ("", "neutral"),
        ("https://t.co/abc @acme", "neutral"),
    ],
)
def test_labels(text: str, label: str) -> None:
    assert score_sentiment(text).label == label


def test_thresholds_are_vaders() -> None:
    assert label_for(0.05) == "positive"
    assert label_for(0.0499) == "neutral"
    assert label_for(-0.0499) == "neutral"
    assert label_for(-0.05) == "negative"


def test_caps_and_exclamation_marks_intensify() -> None:
    calm = score_sentiment("this update is terrible").compound
    shouted = score_sentiment("this update is TERRIBLE!!!").compound
    assert shouted < calm < 0


def test_a_hashtag_carries_its_tone_once_split() -> None:
    assert score_sentiment("Thanks Acme #worst_service").compound < -0.05


def test_negation_does_not_leak_across_sentences() -> None:
    # Plain VADER scores this positive: "never" negates "worst" in the next sentence.
    result = score_sentiment(
        "@acme your app keeps crashing and support never replies. Worst experience ever!!"
    )
    assert result.compound <= -0.6


def test_product_failure_words_are_negative_and_support_is_neutral() -> None:
    assert score_sentiment("the app keeps crashing").label == "negative"
    assert score_sentiment("I contacted support").label == "neutral"


def test_only_the_opening_of_a_huge_post_is_analysed() -> None:
    opening = "What a lovely, wonderful day. " * (MAX_ANALYSED_CHARS // 30 + 1)
    tail = "Horrible, awful, hateful disaster. " * 20_000
    started = time.perf_counter()
    result = score_sentiment(opening + tail)
    assert time.perf_counter() - started < 2
    assert result.label == "positive"


def test_a_long_post_scores_like_its_average_passage() -> None:
    # Whole-text VADER drifts towards ±1 as a text grows; past WORDS_AT_FULL_WEIGHT words a
    # post's valence is scaled to that length, so ten times the text scores the same.
    unit = "Export is great. Sync is bad. "  # 6 words
    passage = unit * (WORDS_AT_FULL_WEIGHT // 6)
    long_post = passage * 10
    assert score_sentiment(long_post).compound == pytest.approx(
        score_sentiment(passage).compound, abs=2e-4
    )
    assert score_sentiment(long_post).compound < 0.95


def test_analyzer_is_built_once() -> None:
    assert sentiment._get_analyzer() is sentiment._get_analyzer()


def test_sentiment_is_a_value() -> None:
    assert score_sentiment("great") == Sentiment(compound=0.6249, label="positive")
