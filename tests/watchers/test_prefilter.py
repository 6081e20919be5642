"""The literal prefilter: it may let through patterns that then do not match, never drop one
that does, so intents and sentiment phrases come out exactly as if every pattern ran."""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchers.intents import detect_intents, load_rules
from watchers.prefilter import Prefilter, fold, required_literals
from watchers.sentiment import _phrase_valence, load_lexicon, normalize_negations

REVIEWS = Path("/work/shared/data/app_reviews_labeled.csv")
FALLBACK = [
    "The app keeps crashing every time I open my account settings, please fix this",
    "I was charged twice and support has not replied for a week. Still no refund!",
    "Would be great if you added an export to CSV; can you please add dark mode?",
    "We are switching to a competitor, not renewing. Our lawyer says this is fraud.",
    "Login fails since the latest update. Is anyone else stuck on the loading screen??",
]


def sample_posts() -> list[str]:
    if not REVIEWS.exists():
        return FALLBACK
    with REVIEWS.open(newline="", encoding="utf-8") as handle:
        return FALLBACK + [row["text"] for row in csv.DictReader(handle)][::8]


def unfiltered_rules():  # type: ignore[no-untyped-def]
    return dataclasses.replace(load_rules(), prefilter=None)


@pytest.mark.parametrize(
    ("pattern", "matching"),
    [
        (r"lawsuits?|lawyers?|litigation", ["Lawsuits", "a LAWYER", "litigation"]),
        (
            r"(?<!\w)(?:does|do)\s+(?:anyone|anybody)\s+know",
            ["Does anybody know", "do anyone know"],
        ),
        (r"su(?:e|ed|ing)\b", ["sue", "SUED", "suing"]),
        (r"(?-i:SEC)\s+filing", ["SEC filing"]),
    ],
)
def test_every_match_holds_a_literal_of_each_set(pattern: str, matching: list[str]) -> None:
    sets = required_literals(re.compile(pattern, re.IGNORECASE))
    assert sets and all(min(len(literal) for literal in literals) >= 2 for literals in sets)
    for text in matching:
        assert re.search(pattern, text, re.IGNORECASE)
        assert all(any(literal in fold(text) for literal in literals) for literals in sets)
    # The text of a pattern with none of its literals is not a candidate.
    assert Prefilter([(0, re.compile(pattern, re.IGNORECASE))]).candidates("nothing here") == set()


def test_a_pattern_without_a_usable_literal_always_runs() -> None:
    prefilter = Prefilter([("q", re.compile(r"\?+")), ("w", re.compile(r"\w+\d"))])
    assert prefilter.candidates("") == {"w"}
    # A pattern whose only literal is one character runs when that character is there.
    assert prefilter.candidates("why??") == {"q", "w"}
    assert prefilter.mask("why??") == 0b11 and prefilter.keys == ("q", "w")


def test_each_alternative_of_an_alternation_needs_all_its_literals() -> None:
    prefilter = Prefilter([(0, re.compile(r"(?<!\w)(?:(?:but|and)\s+no\s+option|better\s+if)"))])
    assert prefilter.candidates("and no option") == {0}
    assert prefilter.candidates("it is better if") == {0}
    # One literal of each alternative is not enough: "option" without "no" and "but"/"and".
    assert prefilter.candidates("an option, better") == set()


def test_an_alternative_without_a_literal_makes_the_pattern_always_run() -> None:
    prefilter = Prefilter([(0, re.compile(r"lawsuit|\w+\d", re.IGNORECASE))])
    assert prefilter.candidates("nothing") == {0}


def test_folding_is_the_regex_engines_ignore_case() -> None:
    # re.IGNORECASE matches "ſ" (long s) as "s", and "K" (Kelvin) as "k"; str.lower does not
    # map the first, so a prefilter built on it would skip a pattern that matches.
    assert re.search("sue", "ſue", re.IGNORECASE) and re.search("kudos", "\u212audos", re.I)
    prefilter = Prefilter([("legal", re.compile(r"sue|lawsuit", re.IGNORECASE))])
    assert prefilter.candidates("I will ſue") == {"legal"}
    assert prefilter.candidates("I will \u212audos") == set()
    assert fold("İSTANBUL \u212aM") == "istanbul km"
    assert len(fold("İ ß ﬀ")) == len("İ ß ﬀ")  # one character for one: spans stay put


def test_every_pattern_that_matches_a_post_is_a_candidate() -> None:
    rules = load_rules()
    assert rules.prefilter is not None
    for text in sample_posts():
        candidates = rules.prefilter.candidates(text)
        for rule_number, rule in enumerate(rules.rules):
            for number, pattern in enumerate(rule.patterns):
                if pattern.regex.search(text):
                    assert (rule_number, number) in candidates, (pattern.text, text)


_WORDS = sorted(
    {
        word
        for rule in load_rules().rules
        for pattern in rule.patterns
        for word in re.findall(r"[a-z']{2,}", pattern.text.lower())
    }
)
_CASES = st.sampled_from([str.lower, str.upper, str.title, lambda w: w.replace("s", "ſ")])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_WORDS), _CASES), min_size=1, max_size=12))
def test_intents_are_the_same_as_with_every_pattern_run(words: list[tuple[str, object]]) -> None:
    text = " ".join(case(word) for word, case in words)  # type: ignore[operator]
    assert detect_intents(text, title=text[:20]) == detect_intents(
        text, title=text[:20], rules=unfiltered_rules()
    )


def test_intents_of_real_posts_are_the_same_as_with_every_pattern_run() -> None:
    every = unfiltered_rules()
    for text in sample_posts():
        filtered = detect_intents(text, title=text[:25])
        unfiltered = detect_intents(text, title=text[:25], rules=every)
        assert filtered == unfiltered
        assert [hit.score for hit in filtered] == [hit.score for hit in unfiltered]


def test_sentiment_phrases_are_the_same_as_with_every_phrase_run() -> None:
    lexicon = load_lexicon()
    every = dataclasses.replace(lexicon, prefilter=None)
    sentences = [*sample_posts(), "Been ON HOLD for 2 hours", "still NOT fixed", "chargéd twice"]
    for sentence in sentences:
        assert _phrase_valence(sentence, lexicon) == _phrase_valence(sentence, every)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It DOES NOT work", "It DOESn't work"),
        ("it doesnt load", "it doesn't load"),
        ("it does n't load", "it doesn't load"),
        ("I can not, I cannot", "I can't, I can't"),
        ("it will not", "it won't"),
        ("isn’t it", "isn't it"),
        ("not now, want a hint", "not now, want a hint"),
    ],
)
def test_negations_are_rewritten_whatever_their_case(text: str, expected: str) -> None:
    assert normalize_negations(text) == expected
