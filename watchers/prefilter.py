"""Which of many regular expressions can possibly match a text, found in one scan.

Running a few hundred case-insensitive patterns over every post is most of what scoring
intents used to cost, though a post matches only a handful. Each pattern is read once (with
the parser of :mod:`re`) for literals that every match of it must contain, e.g. ``sued`` or
``lawsuit`` for ``lawsuits?|sued``; all those literals go into one Aho-Corasick automaton.
One scan of a post then names the patterns worth running; a pattern whose literals are absent
cannot match, so running only the others gives the same answer. A pattern with no usable
literal (``\\w+\\d``) is always run.

Texts and literals are compared after the same case folding the regex engine uses for
``re.IGNORECASE`` (simple lower case, plus the few letters it treats as equal, like ``ſ`` and
``s``), so a literal is found wherever an ignore-case pattern could match it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Hashable, Sequence
from typing import Any, Generic, TypeVar

import ahocorasick

# The standard library's own parser and case tables: what a pattern means is what ``re``
# says it means. Both are private, so anything unexpected turns the prefilter off (every
# pattern runs) rather than into wrong answers.
try:
    _parser: Any = importlib.import_module("re._parser")
    _constants: Any = importlib.import_module("re._constants")
    _EXTRA_CASES: dict[int, tuple[int, ...]] = importlib.import_module("re._casefix")._EXTRA_CASES
    _tolower: Any = importlib.import_module("_sre").unicode_tolower
except (ImportError, AttributeError):  # pragma: no cover - another Python implementation
    _parser = None
    _EXTRA_CASES = {}

    def _tolower(code: int) -> int:
        return ord(chr(code).lower()[0])


_MAX_ALTERNATIVES = 64  # strings an exact part spells, past which it is not enumerated
_MAX_UNION = 512  # literals one of the branches of an alternation holds
_MIN_LITERAL = 2  # a one-letter literal is in nearly every post: such a pattern always runs
_MAX_BRANCHES = 16  # alternatives of a pattern tracked one by one (see required_alternatives)
_MAX_SETS = 4  # literal sets checked per pattern: past a few, checking costs more than it saves
_MAX_SHORT = 8  # one-character literals checked, at most, for a pattern with no longer one
_FOLDS_KEPT = 20_000  # characters whose folding is remembered: posts use a few hundred

Literals = frozenset[str]
K = TypeVar("K", bound=Hashable)


def _fold_char(char: str) -> str:
    lower = _tolower(ord(char))
    return chr(min((lower, *_EXTRA_CASES.get(lower, ()))))


class _FoldTable(dict[int, str]):
    """``str.translate`` table folding any character, filled in as characters are met."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < _FOLDS_KEPT:  # a post of every Unicode character must not fill memory
            self[code] = folded
        return folded


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """``text`` with every character replaced by its case-folded form, same length."""
    if text.isascii():
        # ASCII letters fold to their lower case, and nothing else folds into ASCII letters
        # that an ASCII text could contain.
        return text.lower()
    return text.translate(_FOLD)


def _product(a: Literals, b: Literals) -> Literals | None:
    if len(a) * len(b) > _MAX_ALTERNATIVES:
        return None
    return frozenset(x + y for x in a for y in b)


class _Reader:
    def __init__(self, min_literal: int = _MIN_LITERAL) -> None:
        c = _constants
        self.min_literal = min_literal
        self.zero_width = {c.AT, c.ASSERT, c.ASSERT_NOT}
        self.repeats = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}
        self.c = c

    def exact(self, sequence: Sequence[tuple[Any, Any]]) -> Literals | None:
        """Every string ``sequence`` can consume, when that is a small finite set."""
        result: Literals | None = frozenset({""})
        for op, av in sequence:
            if op in self.zero_width:
                continue  # consumes nothing; it only narrows where the rest matches
            node = self.exact_node(op, av)
            if node is None or result is None:
                return None
            result = _product(result, node)
        return result

    def exact_node(self, op: Any, av: Any) -> Literals | None:
        c = self.c
        if op is c.LITERAL:
            return frozenset({chr(av)})
        if op is c.IN:
            if any(item_op is not c.LITERAL for item_op, _ in av):
                return None
            return frozenset(chr(value) for _, value in av)
        if op is c.SUBPATTERN:
            return self.exact(av[-1])
        if op is getattr(c, "ATOMIC_GROUP", None):
            return self.exact(av)
        if op is c.BRANCH:
            union: set[str] = set()
            for branch in av[1]:
                found = self.exact(branch)
                if found is None:
                    return None
                union |= found
            return frozenset(union) if len(union) <= _MAX_ALTERNATIVES else None
        if op in self.repeats:
            low, high, body = av
            inner = self.exact(body)
            if inner is None or low != high or low > 4:
                return None
            result: Literals | None = frozenset({""})
            for _ in range(low):
                result = _product(result, inner) if result is not None else None
            return result
        return None

    def required(self, sequence: Sequence[tuple[Any, Any]]) -> list[Literals]:
        """Literal sets such that every match of ``sequence`` contains one literal of each."""
        found: list[Literals] = []
        run: Literals = frozenset({""})  # what the current stretch of exact nodes spells
        for op, av in sequence:
            if op in self.zero_width:
                continue
            node = self.exact_node(op, av)
            if node is not None:
                joined = _product(run, node)
                if joined is not None:
                    run = joined
                    continue
                found.append(run)
                run = node
                continue
            found.append(run)
            run = frozenset({""})
            found.extend(self.required_node(op, av))
        found.append(run)
        return [literals for literals in found if _usable(literals, self.min_literal)]

    def required_node(self, op: Any, av: Any) -> list[Literals]:
        c = self.c
        if op is c.SUBPATTERN:
            return self.required(av[-1])
        if op is getattr(c, "ATOMIC_GROUP", None):
            return self.required(av)
        if op is c.BRANCH:
            # One of the branches matched: its most selective set, united over the branches.
            union: set[str] = set()
            for branch in av[1]:
                best = _best(self.required(branch))
                if best is None:
                    return []
                union |= best
            return [frozenset(union)] if len(union) <= _MAX_UNION else []
        if op in self.repeats and av[0] >= 1:
            return self.required(av[2])
        return []


def _usable(literals: Literals, min_literal: int = _MIN_LITERAL) -> bool:
    return bool(literals) and min(len(s) for s in literals) >= min_literal


def _best(found: Sequence[Literals]) -> Literals | None:
    """The most selective set: the longest shortest literal, then the fewest literals."""
    return max(found, key=lambda s: (min(len(x) for x in s), -len(s)), default=None)


def required_literals(
    pattern: re.Pattern[str], *, min_literal: int = _MIN_LITERAL
) -> list[Literals]:
    """Sets of folded literals such that every text ``pattern`` matches contains one literal
    of each set (the most selective few); empty when nothing is known. Literals shorter than
    ``min_literal`` do not count."""
    if _parser is None:
        return []
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
        found = _Reader(min_literal).required(parsed.data)
    except Exception:  # an unexpected parse tree: run the pattern always
        return []
    return _ranked(found)


def _ranked(found: Sequence[Literals]) -> list[Literals]:
    folded = {frozenset(fold(s) for s in literals) for literals in found}
    ranked = sorted(folded, key=lambda s: (min(len(x) for x in s), -len(s)), reverse=True)
    return ranked[:_MAX_SETS]


def required_alternatives(pattern: re.Pattern[str]) -> list[list[Literals]]:
    """For a pattern that is an alternation (``a|b|c``, maybe in a group between look-arounds),
    per alternative the literal sets of ``required_literals``: every match holds one literal of
    each set of some alternative. One alternative (the whole pattern) otherwise; empty when
    nothing is known. Sharper than ``required_literals``, which keeps one set per branch."""
    if _parser is None:
        return []
    try:
        reader = _Reader()
        sequences = _alternatives(reader, _parser.parse(pattern.pattern, pattern.flags).data)
        found = [_ranked(reader.required(sequence)) for sequence in sequences]
    except Exception:  # an unexpected parse tree: run the pattern always
        return []
    if len(found) > 1 and all(found):
        return found
    whole = required_literals(pattern)
    return [whole] if whole else []


def _alternatives(reader: _Reader, sequence: Sequence[tuple[Any, Any]]) -> list[Any]:
    """The branches of ``sequence`` when all it consumes is one alternation (nested ones
    flattened, up to _MAX_BRANCHES), else ``[sequence]``."""
    c = reader.c
    consuming = [(op, av) for op, av in sequence if op not in reader.zero_width]
    if len(consuming) != 1:
        return [sequence]
    op, av = consuming[0]
    if op is c.SUBPATTERN:
        return _alternatives(reader, av[-1])
    if op is not c.BRANCH:
        return [sequence]
    branches = [inner for branch in av[1] for inner in _alternatives(reader, branch)]
    return branches if len(branches) <= _MAX_BRANCHES else [sequence]


class Prefilter(Generic[K]):
    """Names, for a text, the keys of the patterns that may match it (see the module doc).

    ``mask`` is the fast form: bit ``i`` is set when ``keys[i]``, the i-th pattern given, may
    match. Each literal of the automaton carries one integer: the bits of the patterns it alone
    makes runnable, and, above those, one bit per literal set of a pattern that needs several;
    a scan ORs the integers of the literals it meets, so no match costs more than an OR.
    """

    def __init__(self, patterns: Sequence[tuple[K, re.Pattern[str]]]) -> None:
        self.keys: tuple[K, ...] = tuple(key for key, _ in patterns)
        count = len(self.keys)
        by_literal: dict[str, int] = {}
        always = 0
        # Patterns with no literal of two characters but one of a single character ("?"):
        # (their bit, their literal sets), checked with ``in``.
        self._short: list[tuple[int, tuple[Literals, ...]]] = []
        # Patterns that need one literal of each of several sets, by the bit of their first
        # (most selective) set: (their bit, the bits of all their sets).
        self._several: dict[int, tuple[int, int]] = {}
        self._firsts = 0  # the bits of those first sets
        set_bit = count  # the next bit for a literal set of a pattern that needs several
        for number, (_, pattern) in enumerate(patterns):
            bit = 1 << number
            alternatives = required_alternatives(pattern)
            if not alternatives:
                short = required_literals(pattern, min_literal=1)
                if short and sum(len(literals) for literals in short) <= _MAX_SHORT:
                    self._short.append((bit, tuple(short)))
                else:
                    always |= bit
                continue
            # The pattern may match when all the sets of one of its alternatives are met.
            for sets in alternatives:
                if len(sets) == 1:
                    for literal in sets[0]:
                        by_literal[literal] = by_literal.get(literal, 0) | bit
                    continue
                first, needed = set_bit, 0
                for literals in sets:
                    for literal in literals:
                        by_literal[literal] = by_literal.get(literal, 0) | 1 << set_bit
                    needed |= 1 << (set_bit - count)
                    set_bit += 1
                self._several[first - count] = (bit, needed)
                self._firsts |= 1 << (first - count)
        self._count = count
        self._pattern_bits = (1 << count) - 1
        self._always = always
        self._automaton: Any = None
        if by_literal:
            automaton = ahocorasick.Automaton()
            for literal, bits in by_literal.items():
                automaton.add_word(literal, bits)
            automaton.make_automaton()
            self._automaton = automaton

    def mask(self, text: str) -> int:
        """Bit ``i`` set for every ``keys[i]`` whose pattern can match ``text`` (a superset of
        those that do)."""
        found = self._always
        if self._automaton is None and not self._short:
            return found
        folded = fold(text)
        for bit, sets in self._short:
            if all(any(literal in folded for literal in literals) for literals in sets):
                found |= bit
        if self._automaton is None:
            return found
        met = 0
        for _, bits in self._automaton.iter(folded):
            met |= bits
        found |= met & self._pattern_bits
        satisfied = met >> self._count
        rest = satisfied & self._firsts
        while rest:
            low = rest & -rest
            rest ^= low
            bit, needed = self._several[low.bit_length() - 1]
            if satisfied & needed == needed:
                found |= bit
        return found

    def candidates(self, text: str) -> set[K]:
        """The keys of every pattern that can match ``text``: a superset of those that do."""
        return set(self.keys_of(self.mask(text)))

    def keys_of(self, mask: int) -> list[K]:
        """The keys of the bits set in ``mask``, in the order the patterns were given."""
        keys = self.keys
        found: list[K] = []
        while mask:
            low = mask & -mask
            mask ^= low
            found.append(keys[low.bit_length() - 1])
        return found
