from __future__ import annotations

import functools
import itertools
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchers.query import (
    MAX_DEPTH,
    MAX_DISTANCE,
    MAX_LENGTH,
    Match,
    PostFields,
    Query,
    QuerySyntaxError,
    TextIndex,
    find_spans,
    parse,
    tokenize_words,
)


def matches(query: str, text: str) -> bool:
    return parse(query).match(text) is not None


# --- the example from the brief ----------------------------------------------------------------

EXAMPLE = 'acme OR "acme cloud" -acmeville'


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("I love Acme", ("acme",)),
        ("ACME CLOUD is down", ("acme", "acme cloud")),
    ],
)
def test_example_matches(text: str, terms: tuple[str, ...]) -> None:
    assert parse(EXAMPLE).match(text) == Match(terms)


@pytest.mark.parametrize(
    "text",
    [
        # -acmeville excludes every post that mentions acmeville, whichever branch matched.
        "greetings from acmeville, acme fans",
        "ACME CLOUD is down in Acmeville",
        "visit acmeville",
        "cloud superacme",
        "",
        "acmecloud",
    ],
)
def test_example_does_not_match(text: str) -> None:
    assert parse(EXAMPLE).match(text) is None


@pytest.mark.parametrize(
    "query", ['(acme OR "acme cloud") -acmeville', '-acmeville acme OR "acme cloud"']
)
def test_example_means_the_same_parenthesised_or_excluding_first(query: str) -> None:
    texts = ["I love Acme", "ACME CLOUD is down", "greetings from acmeville, acme fans", "x"]
    assert [parse(query).match(t) for t in texts] == [parse(EXAMPLE).match(t) for t in texts]


# --- words and boundaries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Acme's new plan",
        "Acme’s new plan",
        "I ♥ ACME!",
        "#acme",
        "@acme",
        "see acme.com",
        "(acme)",
        '"acme"',
        "acme-cloud",
        "acme_cloud",
        "line one\nacme\tline two",
    ],
)
def test_word_matches_at_word_boundaries(text: str) -> None:
    assert matches("acme", text)


@pytest.mark.parametrize("text", ["acmeville", "superacme", "acme2", "acmé", "ac me", ""])
def test_word_does_not_match_inside_other_words(text: str) -> None:
    assert not matches("acme", text)


def test_tokenize_words_splits_on_punctuation_and_apostrophes() -> None:
    assert tokenize_words("Acme's #1 fan @ACME.com: it's GREAT") == [
        "acme",
        "s",
        "1",
        "fan",
        "acme",
        "com",
        "it",
        "s",
        "great",
    ]


def test_bare_word_with_punctuation_is_a_word_sequence() -> None:
    assert matches("acme.com", "go to ACME.COM now")
    assert matches("acme.com", "acme com")
    assert not matches("acme.com", "acme dot com")
    assert not matches("acme.com", "com.acme")


def test_possessive_query_matches_possessive_text() -> None:
    assert matches("acme's", "ACME’S prices")
    assert not matches("acme's", "acme prices")


@pytest.mark.parametrize("keyword", ["and", "or", "not"])
def test_lower_case_keywords_are_ordinary_words(keyword: str) -> None:
    query = f"acme {keyword} cloud"
    assert matches(query, f"acme {keyword} cloud")
    assert not matches(query, "acme cloud")


# --- case and Unicode --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "café ünïcode",
        "CAFÉ ÜNÏCODE rocks",
        unicodedata.normalize("NFD", "Café Ünïcode"),
        "«Café», Ünïcode!",
    ],
)
def test_non_ascii_phrase_is_case_and_normalisation_insensitive(text: str) -> None:
    assert matches('"Café Ünïcode"', text)


def test_accents_are_kept() -> None:
    assert not matches('"Café Ünïcode"', "cafe unicode")
    assert not matches("café", "cafe")


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("straße", "STRASSE"),
        ("acme", "ＡＣＭＥ"),  # full-width letters
        ("fine", "ﬁne"),  # ligature
        ("ΣΟΦΙΑ", "σοφια"),
    ],
)
def test_casefolding_and_compatibility_forms(query: str, text: str) -> None:
    assert matches(query, text)


def test_combining_marks_stay_inside_their_word() -> None:
    assert tokenize_words("हिन्दी फ़िल्म") == ["हिन्दी", "फ़िल्म"]
    assert tokenize_words("Cafe\u0301s") == ["cafés"]


def test_every_combining_mark_joins_the_word_before_it() -> None:
    marks = [
        chr(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)).startswith("M")
    ]
    split = [hex(ord(mark)) for mark in marks if len(tokenize_words("a" + mark + "b")) != 1]
    assert split == []


def test_scripts_without_spaces_match_inside_longer_runs() -> None:
    assert matches("東京", "東京タワーに行った")
    assert matches("삼성", "삼성은 새 폰을 발표했다")
    assert not matches("東京", "京東")


# --- operators and precedence ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # AND binds tighter than OR: a OR (b AND c)
        ("acme OR beta cloud", "acme", True),
        ("acme OR beta cloud", "beta", False),
        ("acme OR beta cloud", "beta cloud", True),
        ("acme OR beta AND cloud", "beta", False),
        ("beta cloud OR acme", "acme", True),
        # NOT binds tighter than AND: (NOT a) AND b
        ("NOT acme beta", "beta", True),
        ("NOT acme beta", "acme beta", False),
        ("-acme beta", "acme beta", False),
        # NOT binds tighter than OR: (NOT a AND b) OR c
        ("NOT acme beta OR cloud", "acme cloud", True),
        ("NOT acme beta OR cloud", "acme beta", False),
        ("(-acme beta OR cloud)", "acme cloud", True),
        # ...but a "-" outside parentheses excludes: (b OR c) AND NOT a
        ("-acme beta OR cloud", "acme cloud", False),
        ("-acme beta OR cloud", "beta", True),
        # parentheses override
        ("(acme OR beta) cloud", "acme", False),
        ("(acme OR beta) cloud", "beta cloud", True),
        ("-(acme OR beta) cloud", "beta cloud", False),
        ("-(acme OR beta) cloud", "cloud", True),
        ('-"acme cloud" beta', "acme beta cloud", True),
        ('-"acme cloud" beta', "acme cloud beta", False),
        # double negation cancels out
        ("NOT NOT acme", "acme", True),
        ("--acme", "acme", True),
        ("x NOT -(NOT acme)", "x acme", False),
        ("x NOT -(NOT acme)", "x", True),
    ],
)
def test_precedence(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


# --- exclusions --------------------------------------------------------------------------------

POSTS = ["".join(words) for size in range(5) for words in itertools.combinations("abcd", size)]


def matched_posts(query: str) -> set[str]:
    """Which posts made of the words a, b, c and d the query matches, e.g. {"ac", "abd"}."""
    return {post for post in POSTS if matches(query, " ".join(post))}


def posts_where(predicate: Callable[[str], bool]) -> set[str]:
    return {post for post in POSTS if predicate(post)}


EXCLUSIONS: list[tuple[str, Callable[[str], bool]]] = [
    # Top-level "-" terms are excluded from the whole query and combine with OR.
    ("a -b OR c -d", lambda p: ("a" in p or "c" in p) and not ("b" in p or "d" in p)),
    ("-b a OR c", lambda p: ("a" in p or "c" in p) and "b" not in p),
    ("a OR c -b", lambda p: ("a" in p or "c" in p) and "b" not in p),
    ("a OR b AND c -d", lambda p: ("a" in p or ("b" in p and "c" in p)) and "d" not in p),
    ("a OR b -(c d)", lambda p: ("a" in p or "b" in p) and not ("c" in p and "d" in p)),
    ("a OR b -(c OR -d)", lambda p: ("a" in p or "b" in p) and "c" not in p and "d" in p),
    ("a OR b --c", lambda p: ("a" in p or "b" in p) and "c" in p),
    # Inside parentheses "-" is a NOT again, binding tighter than AND and OR.
    ("(a OR b -c) d", lambda p: ("a" in p or ("b" in p and "c" not in p)) and "d" in p),
    ("(a -b OR c) -d", lambda p: (("a" in p and "b" not in p) or "c" in p) and "d" not in p),
    ("(a OR -(b OR c) d)", lambda p: "a" in p or ("b" not in p and "c" not in p and "d" in p)),
    # The keyword NOT is an ordinary NOT everywhere.
    ("a OR b NOT c", lambda p: "a" in p or ("b" in p and "c" not in p)),
    ("a NOT b OR c -d", lambda p: (("a" in p and "b" not in p) or "c" in p) and "d" not in p),
    ("a OR NOT (b OR NOT c)", lambda p: "a" in p or ("b" not in p and "c" in p)),
    # Without an OR outside parentheses, excluding and AND NOT are the same.
    ("a -b c NOT d", lambda p: "a" in p and "c" in p and "b" not in p and "d" not in p),
]


@pytest.mark.parametrize(("query", "expected"), EXCLUSIONS)
def test_exclusions(query: str, expected: Callable[[str], bool]) -> None:
    assert matched_posts(query) == posts_where(expected)


@pytest.mark.parametrize("query", [query for query, _ in EXCLUSIONS])
def test_exclusions_round_trip(query: str) -> None:
    canonical = str(parse(query))
    assert matched_posts(canonical) == matched_posts(query)
    assert str(parse(canonical)) == canonical


def test_excluded_terms_are_not_reported() -> None:
    query = parse('acme -acmeville OR cloud -"acme cloud" -(beta OR x)')
    assert query.terms() == ("acme", "cloud")
    assert query.match("acme cloud") is None
    assert query.match("cloud, acme") == Match(("acme", "cloud"))


def test_implicit_and_equals_explicit_and() -> None:
    for text in ["acme cloud outage", "acme cloud", "outage acme cloud", "cloud outage"]:
        assert matches("acme cloud outage", text) == matches("acme AND cloud AND outage", text)
    assert matches("acme cloud outage", "outage at Acme's cloud")
    assert not matches("acme cloud outage", "acme cloud")


# --- phrases -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Acme Cloud is down", True),
        ("acme, cloud", True),  # punctuation between words does not break a phrase
        ("ACME-CLOUD", True),
        ("acme\n\ncloud", True),
        ("acme the cloud", False),
        ("cloud acme", False),
        ("acmecloud", False),
        ("acme clouds", False),
    ],
)
def test_phrase_is_consecutive_words(text: str, expected: bool) -> None:
    assert matches('"acme cloud"', text) is expected


def test_phrase_found_after_a_false_start() -> None:
    assert matches('"acme cloud down"', "acme cloud is up, acme cloud down again")


def test_escaped_quote_inside_phrase() -> None:
    query = parse(r'"say \"acme\" loudly"')
    assert query.terms() == ('say "acme" loudly',)
    assert query.match('they say "ACME" loudly') == Match(('say "acme" loudly',))


def test_backslash_not_before_a_quote_is_literal() -> None:
    query = parse(r'"acme\\" x"')
    assert query.terms() == ('acme\\" x',)
    assert query.match("acme x") == Match(('acme\\" x',))


# --- reported terms ----------------------------------------------------------------------------


def test_match_terms_are_as_written_in_query_order_and_deduplicated() -> None:
    query = parse('cloud OR ACME OR "Acme" OR acme OR "acme cloud"')
    assert query.match("acme cloud") == Match(("cloud", "ACME", "acme cloud"))
    assert query.match("acme") == Match(("ACME",))


def test_terms_under_not_are_never_reported() -> None:
    query = parse('acme -(cloud beta) NOT "big outage"')
    assert query.terms() == ("acme",)
    assert query.match("acme cloud big") == Match(("acme",))


def test_terms_under_two_nots_are_positive() -> None:
    query = parse("x -(acme -cloud)")
    assert query.terms() == ("x", "cloud")
    assert query.match("x cloud acme") == Match(("x", "cloud"))


def test_present_positive_terms_are_reported_even_from_a_failed_branch() -> None:
    query = parse("(acme beta) OR cloud")
    assert query.match("acme cloud") == Match(("acme", "cloud"))


def test_terms_lists_words_and_phrases() -> None:
    query = parse('acme OR "Acme Cloud" -acmeville NOT "bad thing" acme.com')
    assert query.terms() == ("acme", "Acme Cloud", "acme.com")


def test_source_is_kept_as_given() -> None:
    assert parse("  acme  OR   cloud ").source == "  acme  OR   cloud "


# --- canonical form ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        (EXAMPLE, EXAMPLE),
        ("acme AND cloud AND NOT beta", "acme cloud -beta"),
        ("(acme OR beta) AND cloud", "(acme OR beta) cloud"),
        ("acme OR (beta OR (cloud))", "acme OR beta OR cloud"),
        ("((acme beta) cloud)", "acme beta cloud"),
        ("NOT (acme OR beta) x", "-(acme OR beta) x"),
        ("NOT NOT acme", "acme"),
        (r'"say \"hi\"" x', r'"say \"hi\"" x'),
        (r'"C:\acme\cloud"', r'"C:\acme\cloud"'),
        (r'"acme\\" x"', r'"acme\\" x"'),
        ("acme.com OR #acme", "acme.com OR #acme"),
        # Exclusions go last; a NOT that must stay boolean inside an OR is put in parentheses.
        ('(acme OR "acme cloud") -acmeville', EXAMPLE),
        ("a -b OR c -d", "a OR c -b -d"),
        ("-b a OR c", "a OR c -b"),
        ("a OR b --c", "a OR b --c"),
        ("a OR b NOT c", "(a OR b -c)"),
        ("a NOT b OR c -d", "(a -b OR c) -d"),
        ("a NOT b NOT c OR (d -e) OR f", "(a -b -c OR d -e OR f)"),
        ("(a OR b -c) d", "(a OR b -c) d"),
        ("NOT c (a OR b)", "-c (a OR b)"),
        ("(a OR b) d -c", "(a OR b) d -c"),
    ],
)
def test_canonical_form(query: str, canonical: str) -> None:
    assert str(parse(query)) == canonical


def test_canonical_form_fits_the_limits_of_a_query_at_the_limits() -> None:
    # Written tightly, at the limits: a more verbose canonical form (explicit AND, NOT, fully
    # parenthesised, spaced out) would be too long or too deep to parse again.
    deep = "z"
    for level in range(MAX_DEPTH):
        deep = f"a{level} ({deep} OR b{level})"
    packed = '"a""b"' * (MAX_LENGTH // 6) + "-(c)"
    for query in (deep, packed, "(a OR b)(c OR d)" * 60):
        canonical = str(parse(query))
        assert str(parse(canonical)) == canonical


def nesting(query: str) -> int:
    depth = deepest = 0
    for char in re.sub(r'"(?:\\"|[^"])*+"', "", query):
        depth += {"(": 1, ")": -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest


def visible_length(query: str) -> int:
    return len(re.sub(r"\s", "", query))


def deep_query(levels: int) -> str:
    deep = "z"
    for level in range(levels):
        deep = f"a{level} ({deep} OR b{level})"
    return deep


@pytest.mark.parametrize(
    "query",
    [
        # Boolean NOTs inside an OR: wrapping each branch, or spelling each NOT out, would
        # not fit; one pair of parentheses around the whole OR does.
        "(a -b OR c -d) OR " * 83 + "eeee",
        "a NOT b OR " * 142 + "eeeeee",
        "(a -b -c) OR " * 76 + "dddd",
        # Next to a branch already MAX_DEPTH deep, nothing more can go in parentheses.
        f"(-x -y) {deep_query(MAX_DEPTH)} OR w",
        f"{deep_query(MAX_DEPTH)} NOT x OR w",
        f"x OR {deep_query(MAX_DEPTH)} --y -z",
        f"a NOT ({deep_query(MAX_DEPTH - 1)}) NOT b NOT c OR w",
        f"w OR NOT ({deep_query(MAX_DEPTH - 1)}) v -x",
    ],
)
def test_canonical_form_with_exclusions_fits_the_limits(query: str) -> None:
    assert visible_length(query) <= MAX_LENGTH
    assert nesting(query) <= MAX_DEPTH
    canonical = str(parse(query))
    assert visible_length(canonical) <= visible_length(query)
    again = parse(canonical)
    assert str(again) == canonical
    for text in ["a", "a b", "c", "w", "x z a31", "z a31 y", "z a31 b c", "v z a31", "eeee d"]:
        assert again.match(text) == parse(query).match(text)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("", "empty query", 0),
        ("   \n ", "empty query", 0),
        ("acme)", "unexpected ')'", 4),
        ("(acme) OR beta)", "unexpected ')'", 14),
        (")acme", "unexpected ')'", 0),
        ("(acme", "unclosed '('", 0),
        ("x ((acme) OR beta", "unclosed '('", 2),
        ("(", "unclosed '('", 0),
        ('"acme', "unterminated quote", 0),
        ('acme "cloud\\"', "unterminated quote", 5),
        ("acme AND", "missing term after 'AND'", 5),
        ("acme AND OR x", "missing term after 'AND'", 5),
        ("OR acme", "missing term before 'OR'", 0),
        ("(AND acme)", "missing term before 'AND'", 1),
        ("acme OR OR x", "missing term after 'OR'", 5),
        ("acme OR", "missing term after 'OR'", 5),
        ("acme OR )", "missing term after 'OR'", 5),
        ("NOT", "missing term after 'NOT'", 0),
        ("acme NOT", "missing term after 'NOT'", 5),
        ("-AND acme", "missing term after '-'", 0),
        ('""', "empty phrase", 0),
        ('acme "  ... "', "empty phrase", 5),
        ("()", "empty parentheses", 0),
        ("acme ( )", "empty parentheses", 5),
        ("-", "stray '-'", 0),
        ("acme - cloud", "stray '-'", 5),
        ("(acme -)", "stray '-'", 6),
        ("acme !!!", "'!!!' has no letters or digits", 5),
        ("-foo", "a query needs at least one word to look for", 0),
        ('NOT foo -"bar baz"', "a query needs at least one word to look for", 0),
        ("-acmeville -(acme cloud)", "a query needs at least one word to look for", 0),
        ("-foo OR -bar", "a query needs at least one word to look for", 0),
        ("NOT foo OR -bar", "a query needs at least one word to look for", 0),
        (
            "acme OR -foo",
            "the query also matches posts without any of its words (is a NOT joined by OR?)",
            0,
        ),
        (
            "acme OR -foo -bar",
            "the query also matches posts without any of its words (is a NOT joined by OR?)",
            0,
        ),
    ],
)
def test_syntax_errors(query: str, message: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    assert (caught.value.message, caught.value.position) == (message, position)
    assert str(caught.value) == f"{message} at position {position}"


def test_error_message_reads_as_in_the_brief() -> None:
    with pytest.raises(QuerySyntaxError, match=r"^unexpected '\)' at position 7$"):
        parse("(acme) )")


def test_length_limit_counts_characters_but_not_spaces() -> None:
    assert parse("a" * MAX_LENGTH).terms() == ("a" * MAX_LENGTH,)
    assert len(parse("a " * MAX_LENGTH).terms()) == 1
    with pytest.raises(QuerySyntaxError) as caught:
        parse("a " * MAX_LENGTH + "b")
    assert caught.value.position == 2 * MAX_LENGTH
    assert caught.value.message.startswith("query longer than 1,000 characters")


def test_nesting_limit() -> None:
    assert matches("(" * MAX_DEPTH + "acme" + ")" * MAX_DEPTH, "acme")
    with pytest.raises(QuerySyntaxError) as caught:
        parse("x " + "(" * (MAX_DEPTH + 1) + "acme" + ")" * (MAX_DEPTH + 1))
    assert caught.value.position == 2 + MAX_DEPTH
    assert caught.value.message == "parentheses nested deeper than 32 levels"


@pytest.mark.parametrize(
    "query",
    [
        "(" * MAX_LENGTH,
        "(" * 200_000,
        "-" * 200_000,
        "NOT " * 200_000 + "a",
        '"' + " " * 1_000_000,
        "a" * 10**6,
    ],
)
def test_huge_inputs_fail_fast_without_recursion_errors(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse(query)


def test_long_runs_of_not_and_whitespace_parse() -> None:
    assert matches("-" * (MAX_LENGTH - 4) + "acme", "acme")
    assert matches("NOT " * 250 + "acme", "acme")
    assert matches(" " * 1_000_000 + "acme", "ACME")


# --- find_spans --------------------------------------------------------------------------------

SPAN_TEXT = "Big news: ACME Cloud, by Acme's team (acme.com) — not Acmeville or SuperAcme."


def spans_text(text: str, terms: Sequence[str]) -> list[str]:
    return [text[start:end] for start, end in find_spans(text, terms)]


def test_find_spans_on_mixed_case_and_punctuation() -> None:
    assert spans_text(SPAN_TEXT, ["acme"]) == ["ACME", "Acme", "acme"]
    assert spans_text(SPAN_TEXT, ["Acme Cloud", "acme.com"]) == ["ACME Cloud", "acme.com"]
    assert find_spans(SPAN_TEXT, ["acme"])[0] == (10, 14)


def test_find_spans_prefers_the_longest_term_and_merges_overlaps() -> None:
    assert spans_text(SPAN_TEXT, ["acme", "acme cloud"]) == ["ACME Cloud", "Acme", "acme"]
    text = "acme cloud outage today"
    assert find_spans(text, ["acme cloud", "cloud outage"]) == [(0, 17)]
    assert find_spans(text, ["acme", "cloud"]) == [(0, 4), (5, 10)]


def test_find_spans_merges_touching_spans() -> None:
    # CJK characters are words of their own, so matches can touch; separate spans would
    # render as broken markup when each is wrapped in bold.
    assert find_spans("東京タワー", ["東", "京"]) == [(0, 2)]


def test_find_spans_keeps_original_offsets_around_non_ascii_text() -> None:
    text = "Ünïcode: «CAFE\u0301 ÜNÏCODE» and café"
    assert spans_text(text, ["Café Ünïcode", "café"]) == ["CAFE\u0301 ÜNÏCODE", "café"]


def test_find_spans_with_nothing_to_find() -> None:
    assert find_spans(SPAN_TEXT, []) == []
    assert find_spans(SPAN_TEXT, ["", "!!!"]) == []
    assert find_spans("", ["acme"]) == []
    assert find_spans(SPAN_TEXT, ["cloud acme"]) == []


def test_find_spans_agrees_with_match_terms() -> None:
    query = parse('acme OR "acme cloud" NOT acmeville')
    found = query.match(SPAN_TEXT)
    assert found is not None
    assert spans_text(SPAN_TEXT, found.terms) == ["ACME Cloud", "Acme", "acme"]


# --- prefixes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Acme is up", True),
        ("ACMES everywhere", True),
        ("AcmeCorp's news", True),
        ("acme-cloud", True),
        ("superacme", False),
        ("acm", False),
        ("", False),
    ],
)
def test_prefix_matches_words_that_start_with_the_stem(text: str, expected: bool) -> None:
    assert matches("acme*", text) is expected


def test_prefix_is_reported_and_searched_with_its_star() -> None:
    query = parse("acme* OR globex")
    assert query.terms() == ("acme*", "globex")
    assert query.match("AcmeCorp and Globex") == Match(("acme*", "globex"))
    assert str(query) == "acme* OR globex"


def test_prefix_of_a_word_sequence_applies_to_its_last_word() -> None:
    assert matches("acme.c*", "ACME.COM")
    assert matches("acme.c*", "acme cloud")
    assert not matches("acme.c*", "cloud acme")


def test_prefix_folds_case_and_accents_like_words() -> None:
    assert matches("café*", "CAFÉS")
    assert matches("straß*", "STRASSEN")
    assert not matches("café*", "cafes")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Acme Cloudflare is down", True),
        ("acme cloud", True),
        ("acme, clouds", True),
        ("acme the cloud", False),
        ("cloud acme", False),
    ],
)
def test_trailing_star_in_a_phrase_makes_its_last_word_a_prefix(text: str, expected: bool) -> None:
    assert matches('"acme clou*"', text) is expected


def test_any_other_star_in_a_phrase_is_punctuation() -> None:
    assert matches('"acme* cloud"', "acme cloud")
    assert not matches('"acme* cloud"', "acmes cloud")
    assert matches('"5 * 3"', "5 3")
    # Not right after a word: no prefix.
    assert matches('"acme *"', "acme")
    assert not matches('"acme *"', "acmes")
    assert str(parse('"acme *"')) == '"acme *"'


def test_prefix_stem_counts_letters_and_digits_of_the_whole_term() -> None:
    assert matches("abc*", "abcd")
    assert matches("a.bc*", "a bcd")
    assert matches('"東京タ*"', "東京タワー")


# --- proximity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # NEAR/1 means adjacent, in either order.
        ("acme NEAR/1 outage", "acme outage", True),
        ("acme NEAR/1 outage", "outage, acme!", True),
        ("acme NEAR/1 outage", "acme big outage", False),
        # NEAR/n allows n - 1 words in between.
        ("acme NEAR/3 outage", "acme had an outage", True),
        ("acme NEAR/3 outage", "acme had a big outage", False),
        ("acme NEAR/3 outage", "outage hit the acme", True),
        ("acme NEAR/3 outage", "outage hit all the acme", False),
        ("acme NEAR/3 outage", "acme", False),
        ("acme NEAR/3 outage", "acme x x x x x outage x acme", True),
        # Phrases count from their last word to the next one's first.
        ('"acme cloud" NEAR/1 outage', "acme cloud outage", True),
        ('"acme cloud" NEAR/1 outage', "outage acme cloud", True),
        ('"acme cloud" NEAR/2 "big outage"', "acme cloud had big outage", True),
        ('"acme cloud" NEAR/1 "big outage"', "acme cloud had big outage", False),
        # Sides may be a parenthesised OR of terms, and prefixes.
        ("(acme OR globex) NEAR/2 outage*", "Globex outages", True),
        ("(acme OR globex) NEAR/2 outage*", "initech outages", False),
        ('(acme OR "acme cloud") NEAR/2 (down OR outage)', "acme cloud is down", True),
        # Both sides need occurrences of their own.
        ("acme NEAR/3 acme", "acme", False),
        ("acme NEAR/3 acme", "acme and acme", True),
        ('acme NEAR/3 "acme cloud"', "acme cloud", False),
        ('acme NEAR/1 "acme cloud"', "acme acme cloud", True),
        ("acme* NEAR/1 acmecorp", "acmecorp", False),
        ("acme* NEAR/1 acmecorp", "acmes acmecorp", True),
    ],
)
def test_near(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_near_at_the_largest_distance() -> None:
    filler = " x" * (MAX_DISTANCE - 1)
    assert matches(f"acme NEAR/{MAX_DISTANCE} outage", f"acme{filler} outage")
    assert not matches(f"acme NEAR/{MAX_DISTANCE} outage", f"acme{filler} x outage")


def test_near_in_a_long_post_is_fast_and_exact() -> None:
    text = "acme " * 20_000 + "x " * 10 + "outage " * 20_000
    assert not matches("acme NEAR/10 outage", text)
    assert matches("acme NEAR/11 outage", text)


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # NEAR binds tighter than NOT, AND and OR.
        ("x NOT acme NEAR/2 outage", "x acme outage", False),
        ("x NOT acme NEAR/2 outage", "x acme x x outage", True),
        ("x -acme NEAR/2 outage", "x acme outage", False),
        ("x -acme NEAR/2 outage", "x acme", True),
        ("x acme NEAR/2 outage", "x acme outage", True),
        ("x acme NEAR/2 outage", "acme outage", False),
        ("x OR acme NEAR/2 outage", "outage acme", True),
        # A "-" outside parentheses still excludes, NEARs included.
        ("acme OR globex -acme NEAR/1 outage", "globex and acme outage", False),
        ("acme OR globex -acme NEAR/1 outage", "globex and acme, then outage", True),
    ],
)
def test_near_precedence(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_near_terms_are_both_sides() -> None:
    query = parse("(acme OR globex) NEAR/3 outage -acmeville NEAR/3 down")
    assert query.terms() == ("acme", "globex", "outage")
    assert query.match("acme outage") == Match(("acme", "outage"))


# --- case-sensitive terms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("case:ACME", "ACME rocks", True),
        ("case:ACME", "I ♥ ACME!", True),
        ("case:ACME", "ACME's plan", True),
        ("case:ACME", "Acme rocks", False),
        ("case:ACME", "acme rocks", False),
        ("case:ACME", "ACMEVILLE", False),  # still whole words
        ("case:ACME", "ＡＣＭＥ", True),  # full-width letters are the same letters
        ("case:Café", unicodedata.normalize("NFD", "Café"), True),
        ("case:Café", "CAFÉ", False),
        ('case:"ACME Cloud"', "the ACME Cloud", True),
        ('case:"ACME Cloud"', "the ACME cloud", False),
        ("case:ACME*", "ACMECORP", True),
        ("case:ACME*", "AcmeCorp", False),
        ('case:"ACME Clou*"', "ACME Cloudflare", True),
        ('case:"ACME Clou*"', "ACME cloudflare", False),
        ("case:iOS", "new iOS update", True),
        ("case:iOS", "IOS update", False),
        ("CASE:ACME", "ACME", True),
    ],
)
def test_case_terms_match_only_that_casing(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_case_terms_are_searched_without_case_and_reported_with_it() -> None:
    query = parse('case:ACME OR case:"ACME Cloud" OR acme')
    assert query.terms() == ("ACME", "ACME Cloud", "acme")
    found = query.match("ACME Cloud and acme")
    assert found == Match(("case:ACME", 'case:"ACME Cloud"', "acme"))
    assert str(query) == 'case:ACME OR case:"ACME Cloud" OR acme'


def test_case_term_and_plain_term_are_different_terms() -> None:
    query = parse("case:ACME OR acme")
    assert query.match("acme") == Match(("acme",))
    assert query.match("ACME") == Match(("case:ACME", "acme"))


# --- field filters -----------------------------------------------------------------------------

REDDIT = PostFields(
    source="reddit:r/python",
    author="Bob",
    language="en-US",
    url="https://www.reddit.com/r/Python/comments/abc/acme/",
)
BLOG = PostFields(
    source="rss:https://blog.example.com/feed.xml",
    author="Jane Doe",
    language="de",
    url="https://blog.example.com:8443/2024/acme",
)


def fields_match(query: str, fields: PostFields | None, text: str = "acme") -> bool:
    return parse(query).match(text, fields) is not None


@pytest.mark.parametrize(
    ("query", "reddit", "blog"),
    [
        ("acme source:reddit", True, False),
        ("acme source:REDDIT:r/Python", True, False),
        ("acme source:reddit:r/py", False, False),  # a spec prefix ends at ":" or "/"
        ("acme source:rss", False, True),
        ("acme source:rss:https://blog.example.com", False, True),
        ('acme source:"rss:https://blog.example.com/feed.xml"', False, True),
        ("acme author:bob", True, False),
        ("acme author:bo", False, False),
        ('acme author:"jane doe"', False, True),
        ("acme subreddit:python", True, False),
        ("acme subreddit:r/python", True, False),
        ("acme subreddit:pytho", False, False),
        ("acme lang:en", True, False),
        ("acme lang:en-us", True, False),
        ("acme lang:en_US", True, False),
        ("acme lang:e", None, None),
        ("acme lang:de", False, True),
        ("acme site:reddit.com", True, False),
        ("acme site:www.reddit.com", True, False),
        ("acme site:example.com", False, True),
        ("acme site:blog.example.com", False, True),
        ("acme site:ample.com", False, False),
        ("acme -source:reddit", False, True),
        ("acme (source:reddit OR lang:de)", True, True),
        ("acme NOT (author:bob OR site:example.com)", False, False),
    ],
)
def test_field_filters(query: str, reddit: bool | None, blog: bool | None) -> None:
    if reddit is None:
        with pytest.raises(QuerySyntaxError):
            parse(query)
        return
    assert (fields_match(query, REDDIT), fields_match(query, BLOG)) == (reddit, blog)
    assert not fields_match(query, REDDIT, text="nothing to see")


def test_subreddit_from_the_source_when_the_url_says_nothing() -> None:
    fields = PostFields(source="reddit:r/python", url="https://example.com/r/golang/")
    assert fields.subreddit == "python"
    assert PostFields(url="https://old.reddit.com/r/Golang").subreddit == "golang"
    assert PostFields(url="https://example.com/r/golang/").subreddit is None
    assert PostFields(source="reddit").subreddit is None


def test_site_ignores_port_case_and_final_dot() -> None:
    assert PostFields(url="HTTPS://Blog.Example.COM.:8080/x").site == "blog.example.com"
    assert PostFields(url="https://[::1").site is None
    assert PostFields().site is None


def test_field_filters_without_fields_are_not_satisfied() -> None:
    assert not fields_match("acme source:reddit", None)
    assert fields_match("acme -source:reddit", None)
    missing = PostFields(source="hn")
    assert not fields_match("acme author:bob", missing)
    assert fields_match("acme -author:bob", missing)
    assert not fields_match("acme lang:en", missing)
    assert not fields_match("acme site:example.com", missing)


def test_field_filters_are_not_terms() -> None:
    query = parse("acme source:reddit -author:bob")
    assert query.terms() == ("acme",)
    assert query.match("acme", PostFields(source="reddit", author="alice")) == Match(("acme",))


def test_words_with_colons_stay_words_in_quotes() -> None:
    assert matches('"acme:cloud"', "ACME: cloud")
    assert matches('"source:reddit"', "source reddit")
    assert matches("12:30", "at 12.30")
    assert matches("acme2:cloud", "acme2 cloud")


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("acme SOURCE:reddit", "acme source:reddit"),
        ('acme author:"bob"', "acme author:bob"),
        ('acme author:"Jane Doe"', 'acme author:"Jane Doe"'),
        ('acme author:"say \\"hi\\""', 'acme author:"say \\"hi\\""'),
        ("case:ACME*", "case:ACME*"),
        ('case:"ACME"', 'case:"ACME"'),
        ("acme NEAR/03 outage", "acme NEAR/3 outage"),
        ("((acme OR (globex))) NEAR/2 (outage)", "(acme OR globex) NEAR/2 outage"),
        ("NOT (acme NEAR/2 outage) x", "-acme NEAR/2 outage x"),
        ("x -(acme OR b) NEAR/2 c", "x -(acme OR b) NEAR/2 c"),
        ("x OR y NOT acme NEAR/2 c", "(x OR y -acme NEAR/2 c)"),
        ("acme* -source:reddit OR b", "acme* OR b -source:reddit"),
    ],
)
def test_canonical_form_of_new_syntax(query: str, canonical: str) -> None:
    assert str(parse(query)) == canonical
    assert str(parse(canonical)) == canonical


# --- matching with a TextIndex -----------------------------------------------------------------


def test_text_index_is_cut_into_words_once() -> None:
    index = TextIndex.build("ACME Cloud, by AcmeCorp")
    assert index.words == ("acme", "cloud", "by", "acmecorp")
    assert index.exact_words == ("ACME", "Cloud", "by", "AcmeCorp")
    assert index.positions["acme"] == [0]
    assert index.joined == " acme cloud by acmecorp "
    for query in ["acme*", '"acme cloud"', "case:ACME", "cloud NEAR/2 acmecorp"]:
        assert parse(query).match(index) == parse(query).match("ACME Cloud, by AcmeCorp")


def test_anchors_are_in_every_post_a_query_matches() -> None:
    query = parse('acme NEAR/3 outage OR (globex* "big deal") -acmeville')
    # Any one side of the NEAR and any one operand of the AND will do; the cheapest is taken.
    assert {pattern.anchor for pattern in query.anchors()} == {" acme ", " globex"}
    longest = query.anchors(lambda pattern: -len(pattern.anchor))
    assert {pattern.anchor for pattern in longest} == {" outage ", " big deal "}


# --- find_spans with the new terms -------------------------------------------------------------


def test_find_spans_highlights_prefixes_and_case_terms() -> None:
    text = "AcmeCorp, ACME and acme: the ACME Cloud"
    assert spans_text(text, ["acme*"]) == ["AcmeCorp", "ACME", "acme", "ACME"]
    assert spans_text(text, ["case:ACME"]) == ["ACME", "ACME"]
    assert spans_text(text, ['case:"ACME Cloud"']) == ["ACME Cloud"]
    assert spans_text(text, ["acme clou*"]) == ["ACME Cloud"]
    assert spans_text(text, ["acme *"]) == ["ACME", "acme", "ACME"]


def test_find_spans_agrees_with_match_terms_for_new_terms() -> None:
    text = "AcmeCorp says ACME Cloud is down; acme cloud fans disagree"
    query = parse('(acme* OR case:"ACME Cloud") NEAR/3 down')
    found = query.match(text)
    assert found == Match(("acme*", 'case:"ACME Cloud"', "down"))
    assert spans_text(text, found.terms) == ["AcmeCorp", "ACME Cloud", "down", "acme"]


@pytest.mark.parametrize(
    ("query", "text", "term", "spans"),
    [
        # Written bare, these phrases would read back as case terms, or not at all.
        ('"case:acme"', "In case: Acme", '"case:acme"', ["case: Acme"]),
        ('"case:acm*"', "case: AcmeCorp", '"case:acm*"', ["case: AcmeCorp"]),
        ('"case:"', "just in case", '"case:"', ["case"]),
        # Quotes inside a phrase are punctuation, and a "*" before its closing quote is too.
        ('"\\"acme*\\""', 'the "acme*" tag, acmecorp', '"\\"acme*\\""', ["acme"]),
    ],
)
def test_phrases_that_look_like_other_terms_are_reported_in_quotes(
    query: str, text: str, term: str, spans: list[str]
) -> None:
    found = parse(query).match(text)
    assert found == Match((term,))
    assert spans_text(text, found.terms) == spans


# --- errors in the new syntax ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("ac*", "a prefix needs at least 3 letters or digits before '*'", 0),
        ("x a.b*", "a prefix needs at least 3 letters or digits before '*'", 2),
        ('"ab*"', "a prefix needs at least 3 letters or digits before '*'", 0),
        ("ac*me", "'*' only goes at the end of a word, as in acme*", 0),
        ("*acme", "'*' only goes at the end of a word, as in acme*", 0),
        ("acme**", "'*' only goes at the end of a word, as in acme*", 0),
        ("acme.*", "'*' only goes at the end of a word, as in acme*", 0),
        ("*", "'*' has no letters or digits", 0),
        ("acme NEAR outage", "NEAR needs a distance from 1 to 50 words, as in NEAR/3", 5),
        ("acme NEAR/0 outage", "NEAR needs a distance from 1 to 50 words, as in NEAR/3", 5),
        ("acme NEAR/51 outage", "NEAR needs a distance from 1 to 50 words, as in NEAR/3", 5),
        ("acme NEAR/x outage", "NEAR needs a distance from 1 to 50 words, as in NEAR/3", 5),
        ("acme NEAR/", "NEAR needs a distance from 1 to 50 words, as in NEAR/3", 5),
        ("NEAR/2 acme", "missing term before 'NEAR/2'", 0),
        ("acme NEAR/2", "missing term after 'NEAR/2'", 5),
        ("acme NEAR/2 OR x", "missing term after 'NEAR/2'", 5),
        (
            "a NEAR/2 b NEAR/3 c",
            "'NEAR/3' follows another NEAR: join two NEARs with AND",
            11,
        ),
        (
            "x (a b) NEAR/2 c",
            "each side of NEAR/2 must be a word, a phrase or several joined by OR in parentheses",
            2,
        ),
        (
            "a NEAR/2 -b",
            "each side of NEAR/2 must be a word, a phrase or several joined by OR in parentheses",
            9,
        ),
        (
            "a NEAR/2 source:reddit",
            "each side of NEAR/2 must be a word, a phrase or several joined by OR in parentheses",
            9,
        ),
        (
            "a NEAR/2 (b OR c NEAR/1 d)",
            "each side of NEAR/2 must be a word, a phrase or several joined by OR in parentheses",
            9,
        ),
        (
            "acme foo:bar",
            "unknown field 'foo:' (fields are author:, case:, lang:, site:, source:, subreddit:; "
            'put words with a colon in double quotes, as in "acme:cloud")',
            5,
        ),
        (
            "https://acme.com",
            "unknown field 'https:' (fields are author:, case:, lang:, site:, source:, "
            'subreddit:; put words with a colon in double quotes, as in "acme:cloud")',
            0,
        ),
        ("acme author:", "missing value after 'author:'", 5),
        ("acme case: x", "missing value after 'case:'", 5),
        ('acme author:"bob', "unterminated quote", 12),
        ('case:""', "empty phrase", 0),
        ("case:!!", "'!!' has no letters or digits", 0),
        ("acme lang:english!", "'lang:english!' is not a valid lang: write it like lang:en", 5),
        (
            "acme site:a.com/x",
            "'site:a.com/x' is not a valid site: write it like site:example.com",
            5,
        ),
        (
            "acme subreddit:r/a",
            "'subreddit:r/a' is not a valid subreddit: write it like subreddit:python",
            5,
        ),
        ('acme author:"  "', "'author:\"  \"' is not a valid author: write it like author:bob", 5),
        # Field filters narrow a search down; they are never what it looks for.
        ("source:reddit", "a query needs at least one word to look for", 0),
        ("source:reddit -acme", "a query needs at least one word to look for", 0),
        ("-acme NEAR/2 outage", "a query needs at least one word to look for", 0),
        (
            "acme OR source:reddit",
            "a query needs at least one word to look for in each OR branch (a field filter only "
            "narrows a search down)",
            0,
        ),
        (
            "acme OR (author:bob -acmeville)",
            "a query needs at least one word to look for in each OR branch (a field filter only "
            "narrows a search down)",
            0,
        ),
        (
            "acme OR -source:reddit",
            "the query also matches posts without any of its words (is a NOT joined by OR?)",
            0,
        ),
        (
            "(acme OR NOT lang:en)",
            "the query also matches posts without any of its words (is a NOT joined by OR?)",
            0,
        ),
    ],
)
def test_new_syntax_errors(query: str, message: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    assert (caught.value.message, caught.value.position) == (message, position)


def test_a_field_that_can_go_either_way_counts_as_satisfiable() -> None:
    # No post can be both on reddit and not, but telling that would need a solver; the
    # query is rejected rather than ever letting a post without its words through.
    with pytest.raises(QuerySyntaxError, match="each OR branch"):
        parse("acme OR (source:reddit -source:reddit)")


def test_lower_case_near_is_a_word() -> None:
    assert matches("acme near/2 outage", "acme near 2 outage")
    assert not matches("acme near/2 outage", "acme outage")


# --- fuzzing -----------------------------------------------------------------------------------

SAMPLE_TEXTS = [
    "",
    "acme",
    "ACME cloud",
    "cloud acme beta",
    "acme, cloud! beta's",
    "Acmeville and superacme",
    "café ÜNÏCODE 東京",
    '"quoted" (paren) -dash AND OR NOT',
    "AcmeCorp had an outage near Cloud beta",
]
SAMPLE_FIELDS = [
    None,
    PostFields(),
    PostFields(source="reddit:r/python", author="Acme", language="en-US", url=REDDIT.url),
    PostFields(source="hn", author="bob", language="fr", url="https://news.example.com/1"),
]

FUZZ = settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_parse(source: str) -> None:
    """Parse either fails cleanly or yields a query whose canonical form behaves the same."""
    try:
        query = parse(source)
    except QuerySyntaxError as error:
        assert isinstance(error.position, int)
        assert 0 <= error.position <= len(source)
        return
    again = parse(str(query))
    assert str(again) == str(query)
    assert visible_length(str(query)) <= visible_length(source)
    assert nesting(str(query)) <= MAX_DEPTH
    assert again.terms() == query.terms()
    for text in [*SAMPLE_TEXTS, source, " ".join(query.terms())]:
        index = TextIndex.build(text)
        anchors = query.anchors()
        for fields in SAMPLE_FIELDS:
            found = query.match(text, fields)
            assert again.match(text, fields) == found
            assert query.match(index, fields) == found
            if found is not None:
                # A successful query never matches without naming what it matched, and
                # what it names can be highlighted.
                assert found.terms
                assert find_spans(text, found.terms)
                assert any(index.contains(pattern) for pattern in anchors)
    for fields in SAMPLE_FIELDS:
        assert query.match("", fields) is None


@FUZZ
@given(st.text())
def test_fuzz_arbitrary_text(source: str) -> None:
    check_parse(source)


QUERY_PIECES = [
    "acme", "cloud", "Acme", "ACME", "beta", "acme.com", "café", "東京", "'s", "!", "and",
    '"', "\\", "(", ")", "AND", "OR", "NOT", "-", " ", " ", " ", "\n",
    "*", "acm*", "clou*", "NEAR/3", "NEAR/1", "NEAR", "NEAR/0", ":", "foo:",
    "case:", "source:", "author:", "lang:", "site:", "subreddit:", "reddit", "en", "example.com",
]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(QUERY_PIECES), max_size=30).map("".join))
def test_fuzz_query_like_text(source: str) -> None:
    check_parse(source)


# Valid-by-construction queries paired with what they mean, as predicates over a post;
# parentheses are only added where precedence needs them (or at random), so the fuzz also
# checks precedence, implicit AND and which "-" are exclusions.
@dataclass(frozen=True)
class Post:
    words: list[str]  # casefolded
    exact: list[str]  # as written
    fields: PostFields | None = None


EMPTY_POST = Post([], [])
Predicate = Callable[[Post], bool]
VOCABULARY = ["acme", "cloud", "beta"]


@dataclass(frozen=True)
class Expr:
    source: str
    meaning: Predicate  # what it means inside parentheses: plain boolean logic
    loosest: int  # loosest operator outside parentheses: 0 atom, 1 NOT, 2 AND, 3 OR
    # The OR branches outside parentheses, each a list of operands (meaning, is an exclusion,
    # whether it could hold in a post without words).
    branches: tuple[tuple[tuple[Predicate, bool, bool], ...], ...]
    # Whether it, or its negation, could hold in a post without words, each field filter
    # taken as possibly true and possibly false: what parse() requires to be False.
    wordless: tuple[bool, bool] = (False, True)

    def as_query(self, post: Post) -> bool:
        """What it means as a whole query: the rest AND NOT any "-" outside parentheses."""
        operands = [operand for branch in self.branches for operand in branch]
        looked_for = any(
            all(meant(post) for meant, excluded, _ in branch if not excluded)
            for branch in self.branches
        )
        return looked_for and all(meant(post) for meant, excluded, _ in operands if excluded)

    def matches_without_words(self) -> bool:
        operands = [operand for branch in self.branches for operand in branch]
        looked_for = any(
            all(loose for _, excluded, loose in branch if not excluded) for branch in self.branches
        )
        return looked_for and all(loose for _, excluded, loose in operands if excluded)

    def grouped(self, loosest_allowed: int, force: bool) -> Expr:
        if not force and self.loosest <= loosest_allowed:
            return self
        single = (((self.meaning, False, self.wordless[0]),),)
        return Expr(f"({self.source})", self.meaning, 0, single, self.wordless)


def _atom(source: str, present: Predicate, wordless: tuple[bool, bool] = (False, True)) -> Expr:
    return Expr(source, present, 0, (((present, False, wordless[0]),),), wordless)


def _occurrences(post: Post, sequence: Sequence[str]) -> list[int]:
    width = len(sequence)
    return [i for i in range(len(post.words)) if post.words[i : i + width] == list(sequence)]


def word_atom(word: str) -> Expr:
    return _atom(word, lambda post: word in post.words)


def _phrase(first: str, second: str) -> Expr:
    return _atom(
        f'"{first.upper()}, {second}"', lambda post: bool(_occurrences(post, [first, second]))
    )


def _prefix(word: str) -> Expr:
    stem = word[:3]
    return _atom(f"{stem}*", lambda post: any(w.startswith(stem) for w in post.words))


def _case(word: str) -> Expr:
    written = word.capitalize()
    return _atom(f"case:{written}", lambda post: written in post.exact)


def _near(first: str, second: str, distance: int) -> Expr:
    def near(post: Post) -> bool:
        return any(
            i != j and abs(i - j) <= distance
            for i in _occurrences(post, [first])
            for j in _occurrences(post, [second])
        )

    return _atom(f"{first} NEAR/{distance} {second}", near)


def _field(name: str) -> Expr:
    def source(post: Post) -> bool:
        return post.fields is not None and (post.fields.source or "").startswith("reddit")

    def language(post: Post) -> bool:
        return post.fields is not None and (post.fields.language or "").startswith("en")

    if name == "source":
        return _atom("source:reddit", source, (True, True))
    return _atom("lang:en", language, (True, True))


words = st.sampled_from(VOCABULARY)
atoms: st.SearchStrategy[Expr] = st.one_of(
    words.map(word_atom),
    st.tuples(words, words).map(lambda pair: _phrase(*pair)),
    words.map(_prefix),
    words.map(_case),
    st.tuples(words, words, st.integers(1, 3)).map(lambda args: _near(*args)),
    st.sampled_from(["source", "lang"]).map(_field),
)


def _negate(expr: Expr, operator: str, force: bool) -> Expr:
    operand = expr.grouped(0, force)

    def negated(post: Post) -> bool:
        return not operand.meaning(post)

    excluded = operator == "-"
    wordless = (operand.wordless[1], operand.wordless[0])
    return Expr(
        f"{operator}{operand.source}", negated, 1, (((negated, excluded, wordless[0]),),), wordless
    )


def conjoin(left: Expr, right: Expr, operator: str, force: bool) -> Expr:
    left, right = left.grouped(2, force), right.grouped(2, force)

    def both(post: Post) -> bool:
        return left.meaning(post) and right.meaning(post)

    # Neither has an OR outside parentheses, so each is a single branch.
    branches = ((*left.branches[0], *right.branches[0]),)
    wordless = (
        left.wordless[0] and right.wordless[0],
        left.wordless[1] or right.wordless[1],
    )
    return Expr(f"{left.source}{operator}{right.source}", both, 2, branches, wordless)


def _disjoin(left: Expr, right: Expr, force: bool) -> Expr:
    left, right = left.grouped(3, force), right.grouped(3, force)

    def either(post: Post) -> bool:
        return left.meaning(post) or right.meaning(post)

    wordless = (
        left.wordless[0] or right.wordless[0],
        left.wordless[1] and right.wordless[1],
    )
    branches = left.branches + right.branches
    return Expr(f"{left.source} OR {right.source}", either, 3, branches, wordless)


def combine(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    flags = st.booleans()
    return st.one_of(
        st.builds(_negate, children, st.sampled_from(["-", "-", "NOT "]), flags),
        st.builds(conjoin, children, children, st.sampled_from([" ", " AND "]), flags),
        st.builds(_disjoin, children, children, flags),
    )


def _user_query(branches: list[list[tuple[Expr, bool]]]) -> Expr:
    """An OR of ANDs, some operands excluded with "-": the shape of most users' queries."""
    ands = [
        functools.reduce(
            lambda left, right: conjoin(left, right, " ", force=False),
            [_negate(expr, "-", force=False) if excluded else expr for expr, excluded in branch],
        )
        for branch in branches
    ]
    return functools.reduce(lambda left, right: _disjoin(left, right, force=False), ands)


expressions = st.recursive(atoms, combine, max_leaves=10)
# Arbitrary expressions seldom have both an OR and a "-" outside parentheses; these always can.
user_queries = st.lists(
    st.lists(
        st.tuples(st.recursive(atoms, combine, max_leaves=3), st.booleans()),
        min_size=1,
        max_size=3,
    ),
    min_size=2,
    max_size=3,
).map(_user_query)
texts = st.lists(
    st.tuples(
        st.sampled_from([*VOCABULARY, "acmeville", "clouds", "other"]),
        st.sampled_from([str.lower, str.upper, str.capitalize]),
    ),
    max_size=8,
)
separators = st.sampled_from([" ", ", ", "-", "... ", "'s "])
post_fields = st.sampled_from(
    [
        None,
        PostFields(),
        PostFields(source="reddit:r/python", language="en-GB"),
        PostFields(source="reddit", language="de"),
        PostFields(source="hn", language="en"),
    ]
)


@pytest.mark.parametrize(("operator", "expected"), [("-", False), ("NOT ", True)])
def test_the_fuzz_oracle_tells_exclusions_from_not(operator: str, expected: bool) -> None:
    acmeville = _negate(word_atom("acmeville"), operator, force=False)
    cloud = conjoin(_phrase("acme", "cloud"), acmeville, " ", force=False)
    example = _disjoin(word_atom("acme"), cloud, force=False)
    assert example.source == f'acme OR "ACME, cloud" {operator}acmeville'
    assert example.as_query(Post(["acme", "acmeville"], ["acme", "acmeville"])) is expected
    assert matches(example.source, "acme acmeville") is expected


def test_the_fuzz_oracle_knows_fields_alone_match_without_words() -> None:
    example = _disjoin(word_atom("acme"), _field("source"), force=False)
    assert example.matches_without_words()
    assert not conjoin(word_atom("acme"), _field("lang"), " ", force=False).matches_without_words()


@FUZZ
@given(st.one_of(expressions, user_queries), texts, separators, post_fields)
def test_fuzz_matches_the_meaning_of_the_query(
    expr: Expr,
    words_and_case: list[tuple[str, Callable[[str], str]]],
    separator: str,
    fields: PostFields | None,
) -> None:
    if expr.matches_without_words():
        with pytest.raises(QuerySyntaxError, match="word"):
            parse(expr.source)
        return
    query = parse(expr.source)
    text = separator.join(case(word) for word, case in words_and_case)
    post = Post(tokenize_words(text), re.findall(r"[A-Za-z]+", text), fields)
    assert (query.match(text, fields) is not None) == expr.as_query(post)
    check_parse(expr.source)


def test_query_type_is_what_parse_returns() -> None:
    assert isinstance(parse("acme"), Query)
    assert repr(parse("acme  OR x")) == "Query('acme  OR x')"
