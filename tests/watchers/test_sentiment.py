from __future__ import annotations

from pathlib import Path

import pytest

from watchers import sentiment
from watchers.sentiment import (
    DOMAIN_LEXICON_PATH,
    MAX_ANALYSED_CHARS,
    WORDS_AT_FULL_WEIGHT,
    LexiconError,
    Sentiment,
    clean_social_text,
    label_for,
    load_lexicon,
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
    # The tail would drag the score negative if it were read (bench/ measures the cost).
    assert score_sentiment(opening + tail).label == "positive"


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


@pytest.mark.parametrize(
    "text",
    [
        "on hold for 2 hours",
        "Been on hold with @acme for 45 minutes",
        "still no refund",
        "Still no refund from Acme after 3 weeks",
        "app crashes on login",
        "been waiting 3 weeks",
        "Waiting 5 days for a reply to my ticket",
        "charged twice",
        "Acme charged me twice this month",
        "can't log in since the update",
        "I cannot log in since the update",
        "The app does not work on my phone",
        "My order never arrived",
        "Sent three emails and no response",
        "Acme is down again",
    ],
)
def test_factual_complaints_without_emotional_words_read_negative(text: str) -> None:
    # VADER alone scores each of these 0.0 or barely below it: no word in them carries tone.
    assert score_sentiment(text).label == "negative", score_sentiment(text)


@pytest.mark.parametrize(
    "text",
    [
        "Acme released version 4.2 on Tuesday.",
        "Waiting for the new release on Friday",
        "Refund processed in two days",
        "I contacted support",
        "The update is out now",
        "Just logged in for the first time",
        "Our team is moving the standup to 10am",
        "Acme holds its annual conference in May",
        "Log in with your Acme account to continue",
    ],
)
def test_ordinary_neutral_posts_stay_neutral(text: str) -> None:
    assert score_sentiment(text).label == "neutral", score_sentiment(text)


def test_praise_that_mentions_waiting_is_still_positive() -> None:
    assert score_sentiment("Never had to wait on hold, thanks Acme!").label == "positive"


def test_the_domain_lexicon_is_read_from_its_data_file() -> None:
    lexicon = load_lexicon(DOMAIN_LEXICON_PATH)
    assert lexicon.words["support"] == 0.0
    assert lexicon.words["unusable"] < 0
    assert lexicon.phrases
    assert sentiment._get_analyzer().lexicon["unusable"] == lexicon.words["unusable"]
    assert load_lexicon() is load_lexicon()


def test_a_lexicon_file_can_be_extended(tmp_path: Path) -> None:
    path = tmp_path / "sentiment.yml"
    path.write_text(
        "words: {enshittified: -2.5}\nphrases:\n  - {re: 'no\\s+ETA', valence: -1.0}\n",
        encoding="utf-8",
    )
    lexicon = load_lexicon(path)
    assert lexicon.words == {"enshittified": -2.5}
    assert [bool(p.regex.search("still no eta on the fix")) for p in lexicon.phrases] == [True]
    # Whole words only: a phrase does not fire inside a longer word.
    assert not lexicon.phrases[0].regex.search("no etas")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("words: {Support: 0}\n", "not one lower-case word"),
        ("words: {crash: -9}\n", "from -4 to 4"),
        ("words: {crash: bad}\n", "from -4 to 4"),
        ("phrases: [{re: '(open', valence: -1}]\n", "invalid pattern"),
        ("phrases: [{re: 'a?', valence: -1}]\n", "matches the empty string"),
        ("phrases: [{valence: -1}]\n", "expected {re:"),
        ("phrases: {re: x}\n", "must be a list"),
        ("- just a list\n", "expected a mapping"),
        ("words: {a: [1\n", "not valid YAML"),
    ],
)
def test_malformed_lexicons_are_rejected_with_the_reason(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "sentiment.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(LexiconError, match=r"sentiment\.yml") as excinfo:
        load_lexicon(path)
    assert message in str(excinfo.value)
