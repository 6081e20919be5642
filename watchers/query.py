"""The watch query language: what a watch looks for in a post.

A query is a boolean expression over words, "quoted phrases" and a few other terms::

    acme OR "acme cloud" -acmeville
    (acme* OR globex) NEAR/3 outage source:reddit
    case:ACME -author:acmebot

Grammar, from loosest to tightest binding (OR, AND, NOT, NEAR)::

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*        -- terms side by side mean AND
    unary    := ("NOT" | "-") unary | near
    near     := primary ["NEAR/n" primary]    -- each side an atom or "(" atom ("OR" atom)* ")"
    primary  := atom | field | "(" or_expr ")"
    atom     := WORD | WORD"*" | PHRASE | "case:" (WORD | PHRASE)
    field    := ("source" | "author" | "subreddit" | "lang" | "site") ":" (VALUE | PHRASE)

A ``-`` outside all parentheses excludes, as in a web search: the query is everything else
AND NOT any of those exclusions, so the first example is ``(acme OR "acme cloud") AND NOT
acmeville``. Inside parentheses ``-`` is an ordinary NOT, and the keyword ``NOT`` always is one:
``acme OR "acme cloud" NOT acmeville`` only keeps acmeville out of the "acme cloud" branch.

Matching is on words, never on substrings: both the query and the post are cut into words by
``tokenize_words`` and compared word for word, so ``acme`` finds "ACME!" and "Acme's" but not
"acmeville". A bare query word that contains punctuation (``acme.com``) is several words and
must appear as consecutive words, exactly like a phrase.

Prefixes
    ``acme*`` matches any word that starts with "acme" (acme, acmes, acmecorp). The ``*`` goes
    right after the last letter or digit of a bare word, with at least 3 letters or digits
    before it (``acme.c*`` is "acme" followed by a word starting with "c"); a ``*`` anywhere
    else in a bare word is an error. In a phrase, a ``*`` right after its last word makes that
    word a prefix (``"acme clou*"`` finds "Acme Cloudflare"); any other ``*`` in a phrase is
    punctuation like the rest of a phrase's text (``"5 * 3"`` is the words 5 and 3).

Proximity
    ``a NEAR/n b`` (n from 1 to 50) matches where an occurrence of ``a`` and one of ``b``, in
    either order and sharing no word, are at most ``n`` words apart: counting word positions,
    the later one starts at most ``n`` positions after the last word of the earlier one. So
    ``a NEAR/1 b`` means adjacent ("a b" or "b a") and ``a NEAR/3 b`` allows up to two words
    in between. Each side is an atom or a parenthesised OR of atoms, never a field filter.
    NEAR binds tighter than NOT, so ``-acme NEAR/3 outage`` excludes posts where the two are
    near. NEARs do not chain (``a NEAR/2 b NEAR/2 c`` is an error: join two NEARs with AND).
    Like AND, OR and NOT, only the upper-case ``NEAR`` is an operator, and it needs its ``/n``.

Case-sensitive terms
    ``case:ACME`` and ``case:"ACME Cloud"`` match only where the words have exactly that
    casing, still as whole words (compatibility forms such as full-width letters compare
    equal); ``case:ACME*`` is a case-sensitive prefix.

Field filters
    They test a post's metadata, given to ``Query.match`` as ``PostFields``, and combine with
    AND, OR, NOT and ``-`` like terms. Values ignore case; a value with spaces or parentheses
    goes in double quotes (``author:"Jane Doe"``).

    - ``source:reddit`` — the post's source type, or a prefix of its source spec ending where
      the spec has a ":" or "/" (``source:reddit:r/python``, ``source:rss:https://acme.com``).
    - ``author:bob`` — the author, exactly but for case.
    - ``subreddit:python`` (or ``subreddit:r/python``) — from a reddit.com URL's ``/r/<name>/``
      or a ``reddit:r/<name>`` source.
    - ``lang:en`` — the post's language: ``en`` matches "en" and "en-US".
    - ``site:example.com`` — the URL's host is example.com or ends with ".example.com".

    A filter whose metadata the post lacks is not satisfied, and without ``PostFields`` none
    is, so ``-author:bob`` keeps such posts. Field names ignore case; any other ``name:`` at
    the start of a bare word is an error listing the fields, so words that contain a colon go
    in quotes (``"acme:cloud"``).

Every match contains a word
    A query must be unable to match a post that has none of its words, taking every field
    filter as possibly satisfied: ``source:reddit`` alone, ``acme OR source:reddit`` and
    ``acme OR -foo`` are errors. Each match therefore contains at least one of the query's
    positive text terms, which is what lets ``watchers.matcher`` look only at the watches
    whose terms a post contains.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from functools import cache, cached_property
from itertools import islice
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = [
    "FIELDS",
    "MAX_DEPTH",
    "MAX_DISTANCE",
    "MAX_LENGTH",
    "MIN_PREFIX",
    "And",
    "Field",
    "Match",
    "Near",
    "Not",
    "Or",
    "Pattern",
    "Phrase",
    "PostFields",
    "Query",
    "QuerySyntaxError",
    "Term",
    "TextIndex",
    "find_spans",
    "parse",
    "tokenize_words",
]

# Whitespace is not counted: the canonical form (``str(query)``) may space a query out more
# than its author did, and it must still parse within the limit.
MAX_LENGTH = 1_000
MAX_DEPTH = 32  # levels of parentheses
MAX_DISTANCE = 50  # the largest n in NEAR/n
MIN_PREFIX = 3  # letters or digits before a "*": "ac*" would match a good part of any post
FIELDS = ("author", "case", "lang", "site", "source", "subreddit")


class QuerySyntaxError(Exception):
    """A query could not be parsed. ``str(err)`` is shown to users as it is."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


# --- words -------------------------------------------------------------------------------------

# Han, kana and Hangul are written without spaces between words (and Korean glues particles
# onto nouns), so a "run of letters" there is a whole clause. Each of these characters is
# made a word of its own instead; a query such as 東京 then becomes a two-word sequence that
# is found inside 東京タワー, the way people expect a brand name to be found.
_SPACELESS_SCRIPTS = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x3134F),  # CJK Extensions B-G and compatibility supplement
)

# Combining marks live only in these planes (checked by a test against a full scan), so the
# one-off scan that builds the word pattern costs milliseconds instead of a tenth of a second.
_PLANES_WITH_MARKS = (range(0x20000), range(0xE0000, 0xE1000))


def _char_class(ranges: Sequence[tuple[int, int]]) -> str:
    return "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)


def _combining_mark_ranges() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for plane in _PLANES_WITH_MARKS:
        for code in plane:
            if unicodedata.category(chr(code)).startswith("M"):
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1] = (ranges[-1][0], code)
                else:
                    ranges.append((code, code))
    return ranges


@cache
def _word_pattern() -> re.Pattern[str]:
    # A word starts with a letter or digit and keeps its combining marks, so a decomposed
    # "Cafe\u0301" stays one word and Devanagari vowel signs do not split a word apart.
    # Python's \w has no \p{M}, hence the explicit mark class.
    marks = _char_class(_combining_mark_ranges())
    spaceless = _char_class(_SPACELESS_SCRIPTS)
    return re.compile(
        f"[{spaceless}][{marks}]*+|[^\\W_{spaceless}](?:[^\\W_{spaceless}]|[{marks}])*+"
    )


def _fold(word: str) -> str:
    if word.isascii():
        return word.lower()
    # NFKC first so that composed and decomposed accents, full-width letters and ligatures
    # compare equal; again after casefold(), which can leave a string unnormalised.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())


def tokenize_words(text: str) -> list[str]:
    """The casefolded words of ``text``, in order: what queries are matched against.

    Words are runs of letters and digits (with their accents); everything else separates
    words, apostrophes included, so "Acme's" is the words ``acme`` and ``s``.
    """
    return [_fold(word) for word in _word_pattern().findall(text)]


def _exact(word: str) -> str:
    """A word as a case term compares it: compatibility forms unified, case kept."""
    return word if word.isascii() else unicodedata.normalize("NFKC", word)


def _split_star(text: str) -> tuple[str, bool]:
    """``text`` without a final ``*`` that makes its last word a prefix, and whether it had one.

    Only a ``*`` right after a letter, digit or mark counts: in ``"acme *"`` it is punctuation.
    The query lexer and ``find_spans`` both read terms through this, so they agree.
    """
    if not text.endswith("*"):
        return text, False
    body = text[:-1]
    last = None
    for last in _word_pattern().finditer(body):  # noqa: B007 - only the last one matters
        pass
    return (body, True) if last is not None and last.end() == len(body) else (text, False)


# --- what one term looks for -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Pattern:
    """The words one text term looks for, consecutive, in a post.

    ``words`` are casefolded; with ``prefix`` the last one only has to start a word; ``exact``
    holds the words with their casing (see ``_exact``) for a case term, which must match both
    ways. ``anchor`` is what the pattern looks like in ``TextIndex.joined``: every occurrence
    of the pattern puts it there, so a post whose joined form lacks it cannot contain it.
    """

    words: tuple[str, ...]
    prefix: bool = False
    exact: tuple[str, ...] | None = None
    anchor: str = field(init=False, repr=False)
    _key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        anchor = " " + " ".join(self.words) + ("" if self.prefix else " ")
        object.__setattr__(self, "anchor", anchor)
        # A str caches its hash, and TextIndex looks patterns up once per term per query.
        exact = "" if self.exact is None else "\x00" + "\x00".join(self.exact)
        object.__setattr__(self, "_key", anchor + exact)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def _pattern(raw_words: Sequence[str], *, prefix: bool, exact: bool) -> Pattern:
    return Pattern(
        tuple(_fold(word) for word in raw_words),
        prefix,
        tuple(_exact(word) for word in raw_words) if exact else None,
    )


# --- the post side -----------------------------------------------------------------------------


class TextIndex:
    """A post's text cut into words once, for every query that looks at it.

    ``words`` are casefolded (what terms compare), ``exact_words`` keep their case (for case
    terms), ``positions`` maps each word to where it occurs, and ``joined`` is the words
    between single spaces with a space at each end, where a whole word ``w`` shows up as
    ``" w "`` (see ``Pattern.anchor``). Where a pattern occurs is worked out once per text.
    """

    __slots__ = ("_exact", "_joined", "_occurrences", "_raw", "_vocabulary", "positions", "words")

    def __init__(self, raw_words: Sequence[str]) -> None:
        self._raw = raw_words
        self.words: tuple[str, ...] = tuple(map(_fold, raw_words))
        self.positions: dict[str, list[int]] = {}
        for index, word in enumerate(self.words):
            self.positions.setdefault(word, []).append(index)
        self._exact: tuple[str, ...] | None = None
        self._joined: str | None = None
        self._vocabulary: list[str] | None = None
        self._occurrences: dict[Pattern, tuple[int, ...]] = {}

    @classmethod
    def build(cls, text: str) -> TextIndex:
        return cls(_word_pattern().findall(text))

    @property
    def exact_words(self) -> tuple[str, ...]:
        if self._exact is None:
            self._exact = tuple(map(_exact, self._raw))
        return self._exact

    @property
    def joined(self) -> str:
        if self._joined is None:
            self._joined = " " + " ".join(self.words) + " "
        return self._joined

    def occurrences(self, pattern: Pattern) -> tuple[int, ...]:
        """Where ``pattern`` starts, as sorted word positions."""
        found = self._occurrences.get(pattern)
        if found is None:
            found = self._occurrences[pattern] = self._find(pattern)
        return found

    def contains(self, pattern: Pattern) -> bool:
        return bool(self.occurrences(pattern))

    def _find(self, pattern: Pattern) -> tuple[int, ...]:
        words, width = self.words, len(pattern.words)
        first, last = pattern.words[0], pattern.words[-1]
        if width == 1 and pattern.prefix:
            starts: Iterable[int] = sorted(
                position for word in self._starting_with(first) for position in self.positions[word]
            )
        else:
            starts = self.positions.get(first, ())
        if width > 1:
            middle = pattern.words[1:-1]
            limit = len(words) - width
            starts = [
                start
                for start in starts
                if start <= limit
                and tuple(words[start + 1 : start + width - 1]) == middle
                and (
                    words[start + width - 1].startswith(last)
                    if pattern.prefix
                    else words[start + width - 1] == last
                )
            ]
        if pattern.exact is not None:
            starts = [start for start in starts if self._exactly(pattern, start)]
        return tuple(starts)

    def _exactly(self, pattern: Pattern, start: int) -> bool:
        assert pattern.exact is not None
        written = self.exact_words[start : start + len(pattern.exact)]
        *whole, last = pattern.exact
        if pattern.prefix:
            return tuple(written[:-1]) == tuple(whole) and written[-1].startswith(last)
        return written == pattern.exact

    def _starting_with(self, stem: str) -> Iterator[str]:
        if self._vocabulary is None:
            self._vocabulary = sorted(self.positions)
        vocabulary = self._vocabulary
        for word in islice(vocabulary, bisect_left(vocabulary, stem), None):
            if not word.startswith(stem):
                return
            yield word


# --- the post's metadata -----------------------------------------------------------------------

_SUBREDDIT_PATH = re.compile(r"/r/([A-Za-z0-9_]+)(?:/|$)")


@dataclass(frozen=True)
class PostFields:
    """What field filters test: the post's source spec, author, language and URL.

    ``subreddit`` and ``site`` are derived from these, once per post.
    """

    source: str | None = None
    author: str | None = None
    language: str | None = None
    url: str | None = None

    @cached_property
    def site(self) -> str | None:
        """The URL's host name, lower case, without a port or a final dot."""
        if not self.url:
            return None
        try:
            host = urlsplit(self.url.strip()).hostname
        except ValueError:  # a malformed IPv6 literal, say: no host to compare
            return None
        return host.rstrip(".") if host else None

    @cached_property
    def subreddit(self) -> str | None:
        """From a reddit.com URL's path (/r/<name>/…), else from a ``reddit:r/<name>`` source."""
        site = self.site
        if site is not None and (site == "reddit.com" or site.endswith(".reddit.com")):
            assert self.url is not None
            path = urlsplit(self.url.strip()).path
            if found := _SUBREDDIT_PATH.match(path):
                return found.group(1).casefold()
        kind, _, argument = (self.source or "").partition(":")
        if kind == "reddit" and argument.casefold().startswith("r/"):
            return argument[2:].strip("/").casefold() or None
        return None

    @cached_property
    def _folded(self) -> tuple[str | None, str | None, str | None]:
        def fold(value: str | None) -> str | None:
            return value.strip().casefold() if value else None

        language = fold(self.language)
        return fold(self.source), fold(self.author), language and language.replace("_", "-")


def _source_matches(value: str, fields: PostFields) -> bool:
    spec = fields._folded[0]
    if spec is None or not spec.startswith(value):
        return False
    return len(spec) == len(value) or spec[len(value)] in ":/" or value[-1] in ":/"


def _author_matches(value: str, fields: PostFields) -> bool:
    return fields._folded[1] == value


def _language_matches(value: str, fields: PostFields) -> bool:
    language = fields._folded[2]
    return language is not None and (language == value or language.startswith(value + "-"))


def _subreddit_matches(value: str, fields: PostFields) -> bool:
    return fields.subreddit == value


def _site_matches(value: str, fields: PostFields) -> bool:
    site = fields.site
    return site is not None and (site == value or site.endswith("." + value))


_LANGUAGE = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")
_SUBREDDIT = re.compile(r"[a-z0-9_]{2,21}")
_HOST = re.compile(r"[^\s/:@?#\[\]]+")


def _field_value(name: str, value: str) -> str | None:
    """``value`` as its field compares it, or None if it can never be valid there."""
    folded = value.strip().casefold()
    if name == "lang":
        folded = folded.replace("_", "-")
        return folded if _LANGUAGE.fullmatch(folded) else None
    if name == "subreddit":
        folded = folded.removeprefix("/").removeprefix("r/").rstrip("/")
        return folded if _SUBREDDIT.fullmatch(folded) else None
    if name == "site":
        folded = folded.rstrip(".")
        return folded if _HOST.fullmatch(folded) else None
    return folded or None


_FIELD_TESTS: dict[str, Callable[[str, PostFields], bool]] = {
    "source": _source_matches,
    "author": _author_matches,
    "lang": _language_matches,
    "subreddit": _subreddit_matches,
    "site": _site_matches,
}
_FIELD_EXAMPLES = {
    "source": "source:reddit",
    "author": "author:bob",
    "lang": "lang:en",
    "subreddit": "subreddit:python",
    "site": "site:example.com",
}


# --- highlighting ------------------------------------------------------------------------------


def _highlight_pattern(term: str) -> Pattern | None:
    """The pattern behind one of ``Match.terms``: a word or phrase, ``acme*``, ``case:ACME``,
    or a phrase in quotes (see ``_match_text``)."""
    exact = term.startswith("case:")
    if exact:
        term = term[5:]
    if len(term) >= 2 and term[0] == term[-1] == '"':
        term = term[1:-1].replace('\\"', '"')
    body, prefix = _split_star(term)
    raw = _word_pattern().findall(body)
    return _pattern(raw, prefix=prefix, exact=exact) if raw else None


def find_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """Where any of ``terms`` occurs in ``text``, as sorted ``(start, end)`` character offsets.

    Terms are read as ``Match.terms`` writes them and matched exactly as ``Query.match`` does:
    words as whole words, phrases as consecutive words, ``acme*`` as any word starting with
    "acme", ``case:ACME`` (or ``case:"ACME Cloud"``) only in that casing. Spans that overlap
    or touch are merged, so each span can be highlighted on its own.
    """
    patterns = {p for p in map(_highlight_pattern, terms) if p is not None}
    if not patterns:
        return []
    matches = list(_word_pattern().finditer(text))
    index = TextIndex([m.group() for m in matches])
    found = sorted(
        (matches[start].start(), matches[start + len(p.words) - 1].end())
        for p in patterns
        for start in index.occurrences(p)
    )
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


# --- syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A bare word as written, e.g. ``Acme``, ``acme.com`` (two words) or ``acme*``.

    For a case term (``case:ACME``) ``text`` is the value after ``case:``.
    """

    text: str
    pattern: Pattern

    @property
    def words(self) -> tuple[str, ...]:
        return self.pattern.words


@dataclass(frozen=True, slots=True)
class Phrase:
    """A quoted phrase; ``text`` is what was between the quotes, unescaped."""

    text: str
    pattern: Pattern

    @property
    def words(self) -> tuple[str, ...]:
        return self.pattern.words


@dataclass(frozen=True, slots=True)
class Field:
    """A filter on the post's metadata, e.g. ``source:reddit``; ``value`` as written."""

    name: str  # one of FIELDS other than "case", lower case
    value: str
    compared: str = field(compare=False, repr=False)  # the value as the field compares it

    def test(self, fields: PostFields | None) -> bool:
        return fields is not None and _FIELD_TESTS[self.name](self.compared, fields)


@dataclass(frozen=True, slots=True)
class Near:
    """``left NEAR/distance right``; each side a Term, a Phrase or an Or of them."""

    left: Node
    right: Node
    distance: int


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Atom = Term | Phrase
Node = Term | Phrase | Field | Near | And | Or | Not


def _and_of(operands: list[Node]) -> Node:
    # Flattening keeps the tree (and the canonical form's parentheses) no deeper than the
    # query's own parentheses, which is what lets the canonical form parse within MAX_DEPTH.
    flat: list[Node] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, And) else (operand,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or_of(operands: list[Node]) -> Node:
    flat: list[Node] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, Or) else (operand,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _negate(node: Node) -> Node:
    return node.operand if isinstance(node, Not) else Not(node)


def _side(node: Node) -> tuple[Atom, ...]:
    """The atoms of one side of a NEAR."""
    return node.operands if isinstance(node, Or) else (node,)  # type: ignore[return-value]


def _spans(index: TextIndex, side: Node) -> list[tuple[int, int]]:
    return [
        (start, start + len(atom.pattern.words))
        for atom in _side(side)
        for start in index.occurrences(atom.pattern)
    ]


def _near(index: TextIndex, node: Near) -> bool:
    left = _spans(index, node.left)
    if not left:
        return False
    right = _spans(index, node.right)
    if not right:
        return False
    # For each span of one side, is there a span of the other ending within ``distance``
    # before it, or starting within ``distance`` after it? Sorted ends and starts answer
    # that by bisection, so a long post full of both sides stays n log n.
    ends = sorted(end for _, end in right)
    starts = sorted(start for start, _ in right)
    distance = node.distance
    for start, end in left:
        # A right span ending at ``e`` (exclusive) is before this one when e <= start, and
        # near it when start - (e - 1) <= distance.
        i = bisect_left(ends, start - distance + 1)
        if i < len(ends) and ends[i] <= start:
            return True
        # A right span starting at ``s`` is after this one when s >= end, near when
        # s - (end - 1) <= distance.
        j = bisect_left(starts, end)
        if j < len(starts) and starts[j] <= end - 1 + distance:
            return True
    return False


def _evaluate(node: Node, index: TextIndex, fields: PostFields | None) -> bool:
    if isinstance(node, Term | Phrase):
        return index.contains(node.pattern)
    if isinstance(node, And):
        return all(_evaluate(operand, index, fields) for operand in node.operands)
    if isinstance(node, Or):
        return any(_evaluate(operand, index, fields) for operand in node.operands)
    if isinstance(node, Not):
        return not _evaluate(node.operand, index, fields)
    if isinstance(node, Field):
        return node.test(fields)
    return _near(index, node)


def _atoms(node: Node, positive: bool = True) -> Iterator[tuple[Atom, bool]]:
    """Every text term in query order, with whether it sits under an even number of NOTs."""
    if isinstance(node, Term | Phrase):
        yield node, positive
    elif isinstance(node, Not):
        yield from _atoms(node.operand, not positive)
    elif isinstance(node, Near):
        yield from _atoms(node.left, positive)
        yield from _atoms(node.right, positive)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            yield from _atoms(operand, positive)


def _cover(
    node: Node, cost: Callable[[Pattern], float], negated: bool = False
) -> frozenset[Pattern] | None:
    """Patterns one of which every post the node matches contains, or None if there are none.

    Read with field filters as possibly true either way and NOT-ed terms as possibly absent
    (an over-approximation: "source:a -source:a" counts as satisfiable). Where any of several
    covers will do (the operands of an AND, the sides of a NEAR), the cheapest is taken.
    """
    if isinstance(node, Term | Phrase):
        return None if negated else frozenset((node.pattern,))
    if isinstance(node, Field):
        return None
    if isinstance(node, Not):
        return _cover(node.operand, cost, not negated)
    if isinstance(node, Near):
        if negated:
            return None
        sides = [frozenset(atom.pattern for atom in _side(s)) for s in (node.left, node.right)]
        return min(sides, key=lambda side: sum(map(cost, side)))
    covers = [_cover(operand, cost, negated) for operand in node.operands]
    if isinstance(node, And) is not negated:  # all operands must hold: any one's cover will do
        usable = [c for c in covers if c is not None]
        return min(usable, key=lambda c: sum(map(cost, c))) if usable else None
    if any(c is None for c in covers):  # one operand holding is enough: each needs a cover
        return None
    return frozenset().union(*covers)  # type: ignore[arg-type]


def _render_atom(node: Atom) -> str:
    case = "case:" if node.pattern.exact is not None else ""
    if isinstance(node, Term):
        return case + node.text
    return case + '"' + node.text.replace('"', '\\"') + '"'


_BARE_VALUE = re.compile(r'[^\s()"]+')


def _render_value(value: str) -> str:
    return value if _BARE_VALUE.fullmatch(value) else '"' + value.replace('"', '\\"') + '"'


def _render_side(node: Node) -> str:
    return f"({_render(node)})" if isinstance(node, Or) else _render(node)


def _render(node: Node) -> str:
    # Only the parentheses precedence requires, "-" for NOT and a space for AND: the result is
    # never longer (spaces aside) nor deeper than the query it came from.
    if isinstance(node, Term | Phrase):
        return _render_atom(node)
    if isinstance(node, Field):
        return f"{node.name}:{_render_value(node.value)}"
    if isinstance(node, Near):
        return f"{_render_side(node.left)} NEAR/{node.distance} {_render_side(node.right)}"
    if isinstance(node, Not):
        inner = _render(node.operand)
        return f"-({inner})" if isinstance(node.operand, And | Or) else f"-{inner}"
    if isinstance(node, And):
        return " ".join(
            f"({_render(operand)})" if isinstance(operand, Or) else _render(operand)
            for operand in node.operands
        )
    return " OR ".join(_render(operand) for operand in node.operands)


def _depth(node: Node) -> int:
    """How deeply ``_render(node)`` nests parentheses."""
    if isinstance(node, Term | Phrase | Field):
        return 0
    if isinstance(node, Near):
        return int(isinstance(node.left, Or) or isinstance(node.right, Or))
    if isinstance(node, Not):
        return _depth(node.operand) + isinstance(node.operand, And | Or)
    if isinstance(node, And):
        return max(_depth(operand) + isinstance(operand, Or) for operand in node.operands)
    return max(_depth(operand) for operand in node.operands)


def _render_operand(node: Node) -> str:
    """``node`` written as one operand of an AND."""
    return f"({_render(node)})" if isinstance(node, Or) else _render(node)


def _render_keyword_not(node: Not) -> str:
    operand = node.operand
    if isinstance(operand, And | Or):
        return f"NOT ({_render(operand)})"
    return f"NOT {_render(operand)}"


def _has_loose_not(node: Node) -> bool:
    """Whether ``node``, written outside parentheses, would start a "-" there."""
    if isinstance(node, Not):
        return True
    return isinstance(node, And) and any(isinstance(operand, Not) for operand in node.operands)


def _render_query(root: Node) -> str:
    """The canonical form of a whole query, where a "-" outside parentheses excludes.

    The NOT operands of a top-level AND mean the same as exclusions, so they are written with
    "-"; after an OR they save its parentheses. A NOT inside a top-level OR must stay a
    boolean NOT, which ``_render_unexcluded`` sees to.
    """
    if isinstance(root, Or):
        return _render_unexcluded(root.operands, in_and=False)
    if isinstance(root, And):
        first, *rest = root.operands
        if isinstance(first, Or) and all(isinstance(operand, Not) for operand in rest):
            positive = _render_unexcluded(first.operands, in_and=False)
            return " ".join([positive, *map(_render, rest)])
    return _render(root)


def _render_unexcluded(operands: Sequence[Node], *, in_and: bool) -> str:
    """OR branches (or an AND's operands) outside parentheses, their NOTs kept boolean.

    A run of operands with a NOT among them goes in parentheses, where "-" is a NOT; a run of
    one NOT is written with the keyword instead. An operand already ``MAX_DEPTH`` deep cannot
    go in parentheses: its NOT takes the keyword, or its own operands are split into runs.
    Each run stands for parentheses or a ``NOT`` keyword the query itself needed, since a
    "-" outside parentheses would have excluded: the canonical form stays within MAX_LENGTH
    and, being only ever deeper where it fits, within MAX_DEPTH.
    """
    joiner, render = (" ", _render_operand) if in_and else (" OR ", _render)
    parts: list[str] = []
    run: list[Node] = []

    def end_run() -> None:
        if len(run) == 1 and isinstance(run[0], Not):
            parts.append(_render_keyword_not(run[0]))
        elif any(_has_loose_not(operand) for operand in run):
            parts.append("(" + joiner.join(map(render, run)) + ")")
        else:
            parts.extend(map(render, run))
        run.clear()

    for operand in operands:
        # As an AND operand an OR has parentheses of its own.
        depth = _depth(operand) + (in_and and isinstance(operand, Or))
        if depth < MAX_DEPTH:
            run.append(operand)
            continue
        end_run()
        if isinstance(operand, Not):
            parts.append(_render_keyword_not(operand))
        elif isinstance(operand, And) and _has_loose_not(operand):
            parts.append(_render_unexcluded(operand.operands, in_and=True))
        else:
            parts.append(render(operand))
    end_run()
    return joiner.join(parts)


# --- lexer -------------------------------------------------------------------------------------


class _Kind(Enum):
    ATOM = auto()  # a word, prefix, phrase or case term
    FIELD = auto()
    LPAREN = auto()
    RPAREN = auto()
    AND = auto()
    OR = auto()
    NOT = auto()
    NEAR = auto()
    MINUS = auto()
    END = auto()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str
    position: int
    node: Node | None = None  # for ATOM and FIELD
    distance: int = 0  # for NEAR


_KEYWORDS = {"AND": _Kind.AND, "OR": _Kind.OR, "NOT": _Kind.NOT}
_NEAR = re.compile(r"NEAR/([0-9]+)")
_FIELD_NAME = re.compile(r"([^\W\d_]+):")
_WHITESPACE = re.compile(r"\s+")
_NON_WHITESPACE = re.compile(r"\S")
_BARE = re.compile(r'[^\s()"]+')
# Possessive so that a backslash before the last quote escapes it (the phrase is then
# unterminated) instead of the engine backtracking to read it as a closing quote.
_PHRASE = re.compile(r'"((?:\\"|[^"])*+)"')
_KNOWN_FIELDS = ", ".join(f"{name}:" for name in FIELDS)


def _shown(text: str) -> str:
    return text if len(text) <= 20 else text[:19] + "…"


def _bare_atom(text: str, position: int, *, exact: bool) -> Atom:
    """A bare word, maybe ending in the ``*`` of a prefix."""
    body, prefix = _split_star(text)
    raw = _word_pattern().findall(body)
    if not raw:
        raise QuerySyntaxError(f"'{_shown(text)}' has no letters or digits", position)
    if "*" in body:
        raise QuerySyntaxError("'*' only goes at the end of a word, as in acme*", position)
    if prefix and sum(map(len, raw)) < MIN_PREFIX:
        raise QuerySyntaxError(
            f"a prefix needs at least {MIN_PREFIX} letters or digits before '*'", position
        )
    return Term(text, _pattern(raw, prefix=prefix, exact=exact))


def _phrase_atom(text: str, position: int, *, exact: bool) -> Atom:
    body, prefix = _split_star(text)
    raw = _word_pattern().findall(body)
    if not raw:
        raise QuerySyntaxError("empty phrase", position)
    if prefix and sum(map(len, raw)) < MIN_PREFIX:
        raise QuerySyntaxError(
            f"a prefix needs at least {MIN_PREFIX} letters or digits before '*'", position
        )
    return Phrase(text, _pattern(raw, prefix=prefix, exact=exact))


class _Lexer:
    def __init__(self, query: str) -> None:
        self._query = query

    def tokens(self) -> Iterator[_Token]:
        # A generator, so errors surface in the order the parser reaches them, left to right.
        query = self._query
        position = 0
        length = len(query)
        while position < length:
            char = query[position]
            if spaces := _WHITESPACE.match(query, position):
                position = spaces.end()
            elif char == "(":
                yield _Token(_Kind.LPAREN, char, position)
                position += 1
            elif char == ")":
                yield _Token(_Kind.RPAREN, char, position)
                position += 1
            elif char == '"':
                text, end = self._quoted(position)
                node = _phrase_atom(text, position, exact=False)
                yield _Token(_Kind.ATOM, query[position:end], position, node)
                position = end
            elif char == "-":
                # "acme - cloud" is more likely a dash than a NOT: make the author say which.
                if (
                    position + 1 == length
                    or query[position + 1] == ")"
                    or _WHITESPACE.match(query, position + 1)
                ):
                    raise QuerySyntaxError("stray '-'", position)
                yield _Token(_Kind.MINUS, char, position)
                position += 1
            else:
                bare = _BARE.match(query, position)
                assert bare is not None  # any other character starts a bare word
                token, position = self._bare(bare.group(), position, bare.end())
                yield token
        yield _Token(_Kind.END, "", length)

    def _quoted(self, position: int) -> tuple[str, int]:
        """The unescaped text of the phrase that starts at ``position``, and where it ends."""
        phrase = _PHRASE.match(self._query, position)
        if phrase is None:
            raise QuerySyntaxError("unterminated quote", position)
        return phrase.group(1).replace('\\"', '"'), phrase.end()

    def _bare(self, text: str, position: int, end: int) -> tuple[_Token, int]:
        if text in _KEYWORDS:
            return _Token(_KEYWORDS[text], text, position), end
        if text == "NEAR" or text.startswith("NEAR/"):
            near = _NEAR.fullmatch(text)
            distance = int(near.group(1)) if near else 0
            if not 1 <= distance <= MAX_DISTANCE:
                raise QuerySyntaxError(
                    f"NEAR needs a distance from 1 to {MAX_DISTANCE} words, as in NEAR/3",
                    position,
                )
            return _Token(_Kind.NEAR, f"NEAR/{distance}", position, distance=distance), end
        named = _FIELD_NAME.match(text)
        if named is None:
            return _Token(_Kind.ATOM, text, position, _bare_atom(text, position, exact=False)), end
        name = named.group(1).lower()
        if name not in FIELDS:
            raise QuerySyntaxError(
                f"unknown field '{_shown(named.group())}' (fields are {_KNOWN_FIELDS}; "
                'put words with a colon in double quotes, as in "acme:cloud")',
                position,
            )
        value = text[named.end() :]
        quoted = not value and self._query.startswith('"', end)
        if quoted:
            value, end = self._quoted(end)
        elif not value:
            raise QuerySyntaxError(f"missing value after '{named.group()}'", position)
        source = self._query[position:end]
        if name == "case":
            atom = _phrase_atom if quoted else _bare_atom
            return _Token(_Kind.ATOM, source, position, atom(value, position, exact=True)), end
        compared = _field_value(name, value)
        if compared is None:
            raise QuerySyntaxError(
                f"'{_shown(source)}' is not a valid {name}: write it like {_FIELD_EXAMPLES[name]}",
                position,
            )
        return _Token(_Kind.FIELD, source, position, Field(name, value, compared)), end


# --- parser ------------------------------------------------------------------------------------

_T = TypeVar("_T")

_TERM_START = frozenset({_Kind.ATOM, _Kind.FIELD, _Kind.LPAREN, _Kind.NOT, _Kind.MINUS})
_OPERATORS = frozenset({_Kind.AND, _Kind.OR, _Kind.NOT, _Kind.NEAR, _Kind.MINUS})


class _Parser:
    """Recursive descent; recursion happens only at "(", so MAX_DEPTH bounds the stack."""

    def __init__(self, query: str) -> None:
        self._tokens = _Lexer(query).tokens()
        self._previous: _Token | None = None
        self._current = next(self._tokens)
        self._depth = 0

    def parse(self) -> tuple[Node, Node | None]:
        """The query's tree and, if an OR branch of nothing but exclusions makes the rest of
        the positive part moot (the branch alone lets every post through), that rest."""
        branches = [self._operands(self._top_level_unary)]
        while self._current.kind is _Kind.OR:
            self._advance()
            branches.append(self._operands(self._top_level_unary))
        if self._current.kind is _Kind.RPAREN:
            raise QuerySyntaxError("unexpected ')'", self._current.position)
        if len(branches) == 1:  # without an OR, excluding is simply AND NOT, left in place
            return _and_of([node for node, _ in branches[0]]), None
        exclusions = [node for branch in branches for node, excluded in branch if excluded]
        kept = [[node for node, excluded in branch if not excluded] for branch in branches]
        positives = [_and_of(nodes) for nodes in kept if nodes]
        if len(positives) == len(branches):
            return _and_of([_or_of(positives), *exclusions]), None
        return _and_of(exclusions), _or_of(positives) if positives else None

    def _advance(self) -> None:
        self._previous = self._current
        self._current = next(self._tokens)

    def _or(self) -> Node:
        operands = [self._and()]
        while self._current.kind is _Kind.OR:
            self._advance()
            operands.append(self._and())
        return _or_of(operands)

    def _and(self) -> Node:
        return _and_of(self._operands(self._unary))

    def _operands(self, unary: Callable[[], _T]) -> list[_T]:
        operands = [unary()]
        while True:
            if self._current.kind is _Kind.AND:
                self._advance()
            elif self._current.kind not in _TERM_START:
                return operands
            operands.append(unary())

    def _top_level_unary(self) -> tuple[Node, bool]:
        """An operand outside parentheses, and whether it is an exclusion ("-" first).

        The NOT is kept even over another one ("--acme"), so that the exclusion is written
        back as it came and the canonical form stays within the limits.
        """
        if self._current.kind is _Kind.MINUS:
            self._advance()
            return Not(self._unary()), True
        return self._unary(), False

    def _unary(self) -> Node:
        # A loop rather than recursion: "NOT NOT NOT …" must not grow the stack.
        negations = 0
        while self._current.kind in (_Kind.NOT, _Kind.MINUS):
            self._advance()
            negations += 1
        node = self._near()
        return _negate(node) if negations % 2 else node

    def _near(self) -> Node:
        start = self._current
        left = self._primary()
        if self._current.kind is not _Kind.NEAR:
            return left
        near = self._current
        self._near_side(left, start, near)
        self._advance()
        start = self._current
        if start.kind in (_Kind.NOT, _Kind.MINUS):
            raise self._bad_side(start, near)
        right = self._primary()
        self._near_side(right, start, near)
        if self._current.kind is _Kind.NEAR:
            raise QuerySyntaxError(
                f"'{self._current.text}' follows another NEAR: join two NEARs with AND",
                self._current.position,
            )
        return Near(left, right, near.distance)

    def _near_side(self, node: Node, start: _Token, near: _Token) -> None:
        if not all(isinstance(atom, Term | Phrase) for atom in _side(node)):
            raise self._bad_side(start, near)

    @staticmethod
    def _bad_side(start: _Token, near: _Token) -> QuerySyntaxError:
        return QuerySyntaxError(
            f"each side of {near.text} must be a word, a phrase or several joined by OR in "
            "parentheses",
            start.position,
        )

    def _primary(self) -> Node:
        token = self._current
        if token.kind in (_Kind.ATOM, _Kind.FIELD):
            self._advance()
            assert token.node is not None
            return token.node
        if token.kind is _Kind.LPAREN:
            if self._depth == MAX_DEPTH:
                raise QuerySyntaxError(
                    f"parentheses nested deeper than {MAX_DEPTH} levels", token.position
                )
            self._advance()
            if self._current.kind is _Kind.RPAREN:
                raise QuerySyntaxError("empty parentheses", token.position)
            self._depth += 1
            node = self._or()
            self._depth -= 1
            if self._current.kind is not _Kind.RPAREN:
                raise QuerySyntaxError("unclosed '('", token.position)
            self._advance()
            return node
        raise self._missing_term()

    def _missing_term(self) -> QuerySyntaxError:
        previous, token = self._previous, self._current
        if previous is not None and previous.kind in _OPERATORS:
            return QuerySyntaxError(f"missing term after '{previous.text}'", previous.position)
        if token.kind in (_Kind.AND, _Kind.OR, _Kind.NEAR):
            return QuerySyntaxError(f"missing term before '{token.text}'", token.position)
        if token.kind is _Kind.RPAREN:
            return QuerySyntaxError("unexpected ')'", token.position)
        if previous is not None:  # only "(" is left: the query ended inside a group
            return QuerySyntaxError("unclosed '('", previous.position)
        return QuerySyntaxError("empty query", 0)


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """The query's positive text terms found in a post, first-seen order, as ``find_spans``
    reads them: words, phrases and prefixes as written, case terms with their ``case:``, and a
    phrase whose text starts with ``case:`` or a quote in its quotes (``"case:acme"``)."""

    terms: tuple[str, ...]


def _search_text(atom: Atom) -> str:
    return atom.text


def _match_text(atom: Atom) -> str:
    # find_spans tells terms apart by how they start: "case:" is a case term and a quote a
    # quoted phrase, so a plain phrase whose own text starts with either goes in its quotes.
    if atom.pattern.exact is not None or (
        isinstance(atom, Phrase) and atom.text.startswith(("case:", '"'))
    ):
        return _render_atom(atom)
    return atom.text


class Query:
    """A parsed watch query. Build one with ``parse``.

    ``root`` is the whole query, its exclusions as NOT operands of a top-level AND.
    """

    __slots__ = ("_found", "_terms", "root", "source")

    def __init__(self, source: str, root: Node) -> None:
        self.source = source
        self.root = root
        # Keyed by pattern so that "Acme" and "ACME" are one term, reported as first written.
        positive: dict[Pattern, Atom] = {}
        for atom, is_positive in _atoms(root):
            if is_positive:
                positive.setdefault(atom.pattern, atom)
        self._found = tuple((pattern, _match_text(atom)) for pattern, atom in positive.items())
        self._terms = tuple(dict.fromkeys(_search_text(atom) for atom in positive.values()))

    def match(self, text: str | TextIndex, fields: PostFields | None = None) -> Match | None:
        """The terms that make ``text`` match, or None.

        Pass a ``TextIndex`` to match one post against many queries without cutting it into
        words each time. Without ``fields`` every field filter counts as not satisfied.
        """
        index = TextIndex.build(text) if isinstance(text, str) else text
        if not _evaluate(self.root, index, fields):
            return None
        return Match(tuple(term for pattern, term in self._found if index.contains(pattern)))

    def terms(self) -> tuple[str, ...]:
        """Every text term the query looks for (not those under NOT), to search sources with.

        Words and phrases as written; a prefix keeps its ``*`` (a source that has no
        wildcards searches the stem without the star); a case term is its value without
        ``case:`` (searches ignore case; the casing is checked on every post fetched).
        Field filters are never terms.
        """
        return self._terms

    def patterns(self) -> tuple[Pattern, ...]:
        """The patterns of ``terms()``, for ``watchers.matcher``."""
        return tuple(pattern for pattern, _ in self._found)

    def anchors(self, cost: Callable[[Pattern], float] = lambda _: 1.0) -> frozenset[Pattern]:
        """Patterns at least one of which is in every post the query matches.

        Where several sets would do (``a b`` needs only a's or b's), the one whose patterns
        cost least in total is chosen; ``watchers.matcher`` passes how many watches share a
        pattern, so that a watch is looked at for its rarest terms. ``parse`` guarantees there
        is such a set, whatever the post's fields.
        """
        found = _cover(self.root, cost)
        assert found is not None, "parse() rejects queries that can match without a word"
        return found

    def __str__(self) -> str:
        return _render_query(self.root)

    def __repr__(self) -> str:
        return f"Query({self.source!r})"


def parse(query: str) -> Query:
    """Parse a watch query; raises ``QuerySyntaxError`` for anything that is not one."""
    over = next(islice(_NON_WHITESPACE.finditer(query), MAX_LENGTH, None), None)
    if over is not None:
        raise QuerySyntaxError(
            f"query longer than {MAX_LENGTH:,} characters (not counting spaces)", over.start()
        )
    root, moot = _Parser(query).parse()
    parsed = Query(query, root)
    # A query that matches a post with none of its words would alert on every post. Making a
    # term absent can only make a positive term false and a NOT-ed one true, and a field
    # filter may go either way; if no choice of fields then lets a post without any of the
    # query's words through, every match has one of its positive terms in it.
    if _cover(root, lambda _: 0.0) is None:
        if parsed.match("") is not None:  # without any field filter's help
            # "acme OR -foo" has acme in it, though the bare -foo branch makes it mean NOT foo.
            written = parsed.terms() or (moot is not None and any(p for _, p in _atoms(moot)))
            if not written:
                raise QuerySyntaxError("a query needs at least one word to look for", 0)
            raise QuerySyntaxError(
                "the query also matches posts without any of its words (is a NOT joined by OR?)",
                0,
            )
        if not parsed.terms():
            raise QuerySyntaxError("a query needs at least one word to look for", 0)
        raise QuerySyntaxError(
            "a query needs at least one word to look for in each OR branch (a field filter "
            "only narrows a search down)",
            0,
        )
    return parsed
