"""Matching posts against every active watch at once.

Each watch is a compiled query plus an optional exclusion query. ``Matcher.match`` answers,
for one post, which watches it matched and with which terms.

Every match a query makes contains one of its positive text terms (``parse`` guarantees it),
so a watch need only be evaluated for posts that contain one of its ``Query.anchors``. All
watches' anchors go into one Aho-Corasick automaton over ``TextIndex.joined``; one scan of a
post finds every watch worth evaluating, and only those are. The cost of a post then grows
with how many watches it could concern, not with how many watches there are.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick

from watchers.query import Match, Pattern, PostFields, Query, QuerySyntaxError, TextIndex, parse

log = logging.getLogger(__name__)

# A watch as the matcher needs it, in plain data that pickles cheaply to a worker process:
# (watch id, query, exclusion query).
RuleSpec = tuple[int, str, str | None]


@lru_cache(maxsize=20_000)
def compiled_query(text: str) -> Query:
    return parse(text)


def compiled_exclusion(text: str | None) -> Query | None:
    return compiled_query(text) if text else None


@dataclass(frozen=True, slots=True)
class WatchRule:
    key: Hashable  # the caller's id for the watch
    query: Query
    exclude: Query | None = None


class Matcher:
    def __init__(self, rules: Sequence[WatchRule]) -> None:
        self._rules = list(rules)
        # How many watches look for each pattern: a pattern many watches share is likely a
        # common word ("outage"), so a watch that can be found by a rarer one of its own
        # ("acme" in "acme NEAR/3 outage") is indexed under that one.
        sharing = Counter(p for rule in self._rules for p in rule.query.patterns())

        def cost(pattern: Pattern) -> float:
            return sharing[pattern]

        by_anchor: dict[str, list[int]] = {}
        for number, rule in enumerate(self._rules):
            for anchor in sorted({p.anchor for p in rule.query.anchors(cost)}):
                by_anchor.setdefault(anchor, []).append(number)
        # The automaton reports an anchor's number; the rules behind it are looked up here, so
        # a post mentioning one anchor many times costs a set insertion per mention, not a
        # list copy.
        self._anchored: list[tuple[int, ...]] = []
        self._automaton: ahocorasick.Automaton | None = None
        if by_anchor:
            automaton = ahocorasick.Automaton()
            for number, (anchor, rule_numbers) in enumerate(by_anchor.items()):
                automaton.add_word(anchor, number)
                self._anchored.append(tuple(rule_numbers))
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        return len(self._rules)

    def match(self, text: str, fields: PostFields | None = None) -> list[tuple[Hashable, Match]]:
        """The watches ``text`` matches (and its exclusion does not), in rule order."""
        if self._automaton is None:
            return []
        index = TextIndex.build(text)
        anchors = {number for _, number in self._automaton.iter(index.joined)}
        if not anchors:
            return []
        candidates: set[int] = set()
        for number in anchors:
            candidates.update(self._anchored[number])
        hits: list[tuple[Hashable, Match]] = []
        for number in sorted(candidates):
            rule = self._rules[number]
            found = rule.query.match(index, fields)
            if found is None:
                continue
            if rule.exclude is not None and rule.exclude.match(index, fields) is not None:
                continue
            hits.append((rule.key, found))
        return hits


@dataclass(frozen=True, slots=True)
class MatchRules:
    """The rules of a set of watches; ``key`` changes whenever they do, so a worker process
    can keep the matcher it built from them."""

    key: str
    specs: tuple[RuleSpec, ...]


def build_matcher(specs: Iterable[RuleSpec]) -> tuple[Matcher, set[int]]:
    """The matcher over these rules, and the ids of the watches it holds; a saved query that
    no longer parses is skipped."""
    rules = []
    for watch_id, query, exclude in specs:
        try:
            rule = WatchRule(
                key=watch_id, query=compiled_query(query), exclude=compiled_exclusion(exclude)
            )
        except QuerySyntaxError:
            # Saved queries were valid when saved; one that no longer parses (after a
            # grammar change) must not stop the others.
            log.exception("watch #%s has a query that no longer parses", watch_id)
            continue
        rules.append(rule)
    return Matcher(rules), {int(rule.key) for rule in rules}  # type: ignore[call-overload]
