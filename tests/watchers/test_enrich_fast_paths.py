"""The shortcuts that make scoring cheap give exactly what the plain path gives.

Three shortcuts are checked against the plain computation they replace, on real reviews and on
generated texts built to hit their edge cases:

* a sentence none of whose words VADER knows is not sent to VADER (its compound is 0.0);
* ``enrich`` cleans a post once for sentiment and intents instead of once for each;
* the prefilter rules out intent patterns (and ``unless`` patterns) that cannot match.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from watchers import sentiment
from watchers.departments import WatchKind
from watchers.enrich import Enrichment, enrich
from watchers.intents import IntentHit, detect_intents, load_rules
from watchers.sentiment import Sentiment, clean_social_text, score_sentiment

REVIEWS = Path("/work/shared/data/app_reviews_labeled.csv")
FALLBACK = [
    "The app keeps crashing every time I open my account settings, please fix this",
    "Love the new dark mode :) it finally feels like a modern app. Great job to the team 😍",
    "I was charged twice and support has not replied for a week. Still no refund!",
    "Would be great if you added an export to CSV; can you please add dark mode?",
    "Login fails since the latest update. Is anyone else stuck on the loading screen??",
]


def reviews() -> list[str]:
    if not REVIEWS.exists():
        return FALLBACK
    with REVIEWS.open(newline="", encoding="utf-8") as handle:
        return FALLBACK + [row["text"] for row in csv.DictReader(handle)][::5]


ANALYZER = sentiment._get_analyzer()
_LEXICON_WORDS = sorted(word for word in ANALYZER.lexicon if " " not in word)[::7]
_EMOJI = sorted(key for key in ANALYZER.emojis if len(key) == 1)[::40]
# Words VADER treats specially, words it does not know, and the shapes its tokenizer cares
# about: punctuation around words, emoticons, short tokens, capitals, non-ASCII case changes.
_TOKENS = [
    *_LEXICON_WORDS,
    *_EMOJI,
    *("no", "not", "never", "but", "kind", "of", "very", "least", "at", "so", "this"),
    *("app", "the", "export", "acme", "ticket", "release", "it", "a", "x", "İ", "ǅ"),
    *(":)", ":(", "</3", ":-D", "(-:", "'", "...", "!!", "?", "#", "-", "“", "’"),
]
_WRAPS = st.sampled_from(["{}", "{}.", "({})", '"{}"', "{}!", "{}?!", "'{}'", "*{}*", "{},"])
_CASES = st.sampled_from([str.lower, str.upper, str.title, str.swapcase])
_SPACES = st.sampled_from([" ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u2028", "\r\n", "\x1c"])


@st.composite
def sentences(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.tuples(st.sampled_from(_TOKENS), _WRAPS, _CASES), max_size=10))
    glue = draw(st.lists(_SPACES, min_size=len(words), max_size=len(words)))
    pieces = zip(words, glue, strict=True)
    return "".join(case(wrap.format(word)) + space for (word, wrap, case), space in pieces)


def test_the_test_sentences_reach_both_sides_of_the_shortcut() -> None:
    # Without sentences VADER skips and sentences it scores, the tests below prove nothing.
    assert not sentiment._may_have_valence("Acme released version 4.2 on Tuesday.", ANALYZER)
    assert sentiment._may_have_valence("GREAT!", ANALYZER)
    assert sentiment._may_have_valence("🙂", ANALYZER)  # an emoji VADER reads as words


@settings(max_examples=200, deadline=None)
@given(sentences())
@example("kind of")
@example("no no")
@example("but but")
@example("İİİ")
@example(":) :-(")
def test_a_sentence_not_sent_to_vader_is_one_vader_scores_zero(text: str) -> None:
    expected = ANALYZER.polarity_scores(text)["compound"]
    assert sentiment._vader_compound(text, ANALYZER) == expected
    if not sentiment._may_have_valence(text, ANALYZER):
        assert expected == 0.0


def test_sentences_of_real_reviews_score_as_vader_scores_them() -> None:
    skipped = 0
    for review in reviews():
        for text in sentiment._sentences(clean_social_text(review)):
            expected = ANALYZER.polarity_scores(text)["compound"]
            assert sentiment._vader_compound(text, ANALYZER) == expected, text
            skipped += not sentiment._may_have_valence(text, ANALYZER)
    assert skipped > 0


def _every_sentence_to_vader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentiment, "_may_have_valence", lambda text, analyzer: True)


def test_post_sentiment_is_the_same_with_every_sentence_sent_to_vader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posts = reviews()
    fast = [score_sentiment(post) for post in posts]
    _every_sentence_to_vader(monkeypatch)
    assert [score_sentiment(post) for post in posts] == fast


def _plain(title: str | None, text: str) -> tuple[Sentiment, list[tuple[IntentHit, float]]]:
    """What enrich computed before it shared its cleaning: each scorer on the raw post."""
    tone = score_sentiment(f"{title}\n{text}" if title else text)
    every_pattern = dataclasses.replace(load_rules(), prefilter=None)
    hits = detect_intents(text, title=title, rules=every_pattern)
    return tone, [(hit, hit.score) for hit in hits]


def _enriched(result: Enrichment) -> tuple[Sentiment, list[tuple[IntentHit, float]]]:
    return result.sentiment, [(hit, hit.score) for hit in result.intents]


_LINES = st.sampled_from(
    [
        "@acme the app keeps crashing since the update https://t.co/x #NeverAgain",
        "can you please add an export to CSV?",
        "Does anyone know how to log in?",
        "does\nnot work",
        "I can\nnot log in. Still no refund!!",
        "#worst_service   😡😡",
        "www.acme.com/x is down again",
        "",
        "   ",
        "Great job, love it :)",
        "We are switching to Globex. Our lawyer says this is fraud.",
    ]
)
_BREAKS = st.sampled_from(["\n", "\n\n", "\r\n", "\r", "\u2028", " ", "\x85", "\x0c"])


@st.composite
def posts(draw: st.DrawFn) -> tuple[str | None, str]:
    lines = draw(st.lists(st.tuples(_LINES, _BREAKS), max_size=6))
    text = "".join(line + brk for line, brk in lines)
    if draw(st.booleans()):
        text = draw(_BREAKS) + text
    title = draw(st.one_of(st.none(), st.just(""), _LINES, st.tuples(_LINES, _BREAKS, _LINES)))
    if isinstance(title, tuple):
        title = "".join(title)
    return title, text


@settings(max_examples=150, deadline=None)
@given(posts())
@example(("Bug: export crashes", "\n\nhttps://t.co/x\n@acme it crashes"))
@example(("#_", "it does\nnot work"))
@example((" ", "  \n great"))
@example(("Title\r", "body"))
def test_enrich_is_the_plain_path_on_generated_posts(post: tuple[str | None, str]) -> None:
    title, text = post
    assert _enriched(enrich(title=title, text=text, kind=WatchKind.BRAND)) == _plain(title, text)


@pytest.mark.parametrize("cut", [0, 20, 60])
def test_enrich_is_the_plain_path_on_real_reviews(cut: int) -> None:
    for review in reviews()[::3]:
        title, text = (review[:cut], review[cut:]) if cut else (None, review)
        assert _enriched(enrich(title=title, text=text, kind=WatchKind.BRAND)) == _plain(
            title, text
        ), review


def test_enrich_is_the_plain_path_on_long_posts() -> None:
    # Past the cuts enrich takes the plain path; just under them it shares the cleaning.
    unit = "Still no refund after 3 weeks! The app keeps crashing #fail. "
    for size in (sentiment.MAX_RAW_CHARS - 30, sentiment.MAX_RAW_CHARS + 5, 25_000):
        text = (unit * (size // len(unit) + 1))[:size]
        for title in (None, "Refund?", "two\nlines"):
            assert _enriched(enrich(title=title, text=text, kind=WatchKind.BRAND)) == _plain(
                title, text
            )
