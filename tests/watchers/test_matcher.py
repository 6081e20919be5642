from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.watchers.test_query import (
    Expr,
    atoms,
    combine,
    conjoin,
    post_fields,
    separators,
    texts,
    user_queries,
    word_atom,
)
from watchers.matcher import Matcher, WatchRule
from watchers.query import Match, PostFields, TextIndex, parse


def rule(key: Hashable, query: str, exclude: str | None = None) -> WatchRule:
    return WatchRule(key, parse(query), parse(exclude) if exclude else None)


def naive(
    rules: Sequence[WatchRule], text: str, fields: PostFields | None = None
) -> list[tuple[Hashable, Match]]:
    """Every rule evaluated on its own: what the matcher must agree with."""
    hits = []
    for each in rules:
        found = each.query.match(text, fields)
        if found is None:
            continue
        if each.exclude is not None and each.exclude.match(text, fields) is not None:
            continue
        hits.append((each.key, found))
    return hits


RULES = [
    rule("acme", 'acme* OR "acme cloud"', exclude="acmeville"),
    rule("globex", "globex OR (initech NEAR/3 globex)"),
    rule("outage", "(acme OR globex) NEAR/3 outage -source:hn"),
    rule("brand-case", "case:ACME lang:en"),
    rule("reddit-only", "acme subreddit:python"),
]


def test_matches_every_rule_the_post_concerns_in_rule_order() -> None:
    matcher = Matcher(RULES)
    assert len(matcher) == len(RULES)
    fields = PostFields(source="reddit:r/python", language="en")
    assert matcher.match("ACME had an outage; Globex too", fields) == [
        ("acme", Match(("acme*",))),
        ("globex", Match(("globex",))),
        ("outage", Match(("acme", "globex", "outage"))),
        ("brand-case", Match(("case:ACME",))),
        ("reddit-only", Match(("acme",))),
    ]


def test_exclusions_and_fields_apply_per_rule() -> None:
    matcher = Matcher(RULES)
    hn = PostFields(source="hn", language="de")
    assert matcher.match("acme outage in Acmeville", hn) == []
    assert matcher.match("acme outage", hn) == [("acme", Match(("acme*",)))]
    assert matcher.match("acme outage") == [
        ("acme", Match(("acme*",))),
        ("outage", Match(("acme", "outage"))),
    ]


def test_a_post_without_any_watch_term_matches_nothing() -> None:
    matcher = Matcher(RULES)
    assert matcher.match("nothing to see here", PostFields(source="reddit")) == []
    assert matcher.match("") == []


def test_no_rules() -> None:
    matcher = Matcher([])
    assert len(matcher) == 0
    assert matcher.match("acme") == []


def test_case_terms_are_found_in_any_case_and_checked_exactly() -> None:
    matcher = Matcher([rule(1, "case:ACME"), rule(2, "case:acme*")])
    assert matcher.match("Acme and ACME") == [(1, Match(("case:ACME",)))]
    assert matcher.match("acmecorp") == [(2, Match(("case:acme*",)))]
    assert matcher.match("AcmeCorp") == []


def test_prefix_and_phrase_anchors_respect_word_boundaries() -> None:
    matcher = Matcher([rule(1, "acme*"), rule(2, '"acme cloud"'), rule(3, "cloud")])
    assert matcher.match("superacme clouds") == []
    assert matcher.match("acmes cloud") == [(1, Match(("acme*",))), (3, Match(("cloud",)))]
    assert [key for key, _ in matcher.match("ACME, Cloud")] == [1, 2, 3]


def test_many_rules_sharing_a_common_word() -> None:
    rules = [rule(n, f"brand{n} NEAR/3 outage") for n in range(500)]
    rules += [rule("any-outage", "outage -brand7")]
    matcher = Matcher(rules)
    assert matcher.match("brand7 outage") == [(7, Match(("brand7", "outage")))]
    text = "brand5 is fine today. brand12 had an outage; brand499 outage"
    assert matcher.match(text) == [
        (12, Match(("brand12", "outage"))),
        (499, Match(("brand499", "outage"))),
        ("any-outage", Match(("outage",))),
    ]


def test_each_watch_is_indexed_under_its_rarest_terms() -> None:
    # "outage" is shared by every watch, so each is looked at only for its brand.
    rules = [rule(n, f"brand{n} NEAR/3 outage") for n in range(50)]
    matcher = Matcher(rules)
    index = TextIndex.build("outage outage outage")
    hits = list(matcher._automaton.iter(index.joined)) if matcher._automaton else []
    assert hits == []


# --- the matcher agrees with evaluating every rule ---------------------------------------------

FUZZ = settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def anchored(expr: Expr) -> Expr:
    """``expr``, ANDed with a word if it could match a post without any (which parse rejects)."""
    if not expr.matches_without_words():
        return expr
    return conjoin(word_atom("beta"), expr, " ", force=False)


# Smaller than the query fuzz's expressions: a rule set holds several, and drawing them is
# what takes the time.
valid_queries = st.one_of(st.recursive(atoms, combine, max_leaves=5), user_queries).map(anchored)
rule_sets = st.lists(
    st.tuples(valid_queries, st.one_of(st.none(), valid_queries)), min_size=1, max_size=6
)


@FUZZ
@given(rule_sets, st.lists(st.tuples(texts, separators), min_size=1, max_size=4), post_fields)
def test_fuzz_matcher_equals_evaluating_every_rule(
    sources: list[tuple[Expr, Expr | None]],
    posts: list[tuple[list[tuple[str, Callable[[str], str]]], str]],
    fields: PostFields | None,
) -> None:
    rules = [
        WatchRule(number, parse(query.source), parse(exclude.source) if exclude else None)
        for number, (query, exclude) in enumerate(sources)
    ]
    matcher = Matcher(rules)
    for words_and_case, separator in posts:
        text = separator.join(case(word) for word, case in words_and_case)
        assert matcher.match(text, fields) == naive(rules, text, fields)
