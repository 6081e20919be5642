"""What a post is: a complaint, a bug report, a feature request… found by rules kept in YAML.

The rules live in ``watchers/data/intents.yml`` so a team can extend the lexicons without code;
that file documents its own format. ``load_rules`` reads and compiles a rules file once;
``detect_intents`` scores a post against it and returns the intents that reached their
threshold, strongest first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchers.departments import Intent
from watchers.prefilter import Prefilter
from watchers.sentiment import clean_social_text

# Rules are written against this normalization; callers and tests import it from here too.
from watchers.sentiment import normalize_negations as normalize_negations

DEFAULT_RULES_PATH = Path(__file__).parent / "data" / "intents.yml"
# Rules are regular expressions run once each over the post; capping the text bounds the work
# per post, and the part of a post that says what it is about comes first.
MAX_SCANNED_CHARS = 10_000
# How much of a text is cleaned before the cleaned text is cut to MAX_SCANNED_CHARS.
MAX_RAW_CHARS = MAX_SCANNED_CHARS * 2
DEFAULT_TITLE_WEIGHT = 1.5

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})


class RulesError(ValueError):
    """An intents rules file is malformed. The message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class IntentHit:
    intent: Intent
    triggers: tuple[str, ...]  # the words or phrases of the post that fired it, in text order
    score: float = field(default=0.0, compare=False)  # summed trigger weights; ranks the hits


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str  # as written in the rules file, for error messages and debugging
    regex: re.Pattern[str]
    weight: float


@dataclass(frozen=True, slots=True)
class IntentRule:
    intent: Intent
    patterns: tuple[Pattern, ...]
    unless: tuple[re.Pattern[str], ...]  # spans where this intent's patterns do not count
    min_score: float


# A pattern's key in the prefilter: (rule number, pattern number), and for the n-th pattern of
# a rule's ``unless``, (rule number, -1 - n).
PatternKey = tuple[int, int]


def _prefilter(rules: Sequence[IntentRule]) -> Prefilter[PatternKey]:
    # Every rule's patterns, in rule order, then every rule's ``unless`` patterns: the bits of
    # one rule's patterns (or of its ``unless``) are a run of the prefilter's mask.
    return Prefilter(
        [
            *(
                ((rule_number, number), pattern.regex)
                for rule_number, rule in enumerate(rules)
                for number, pattern in enumerate(rule.patterns)
            ),
            *(
                ((rule_number, -1 - number), regex)
                for rule_number, rule in enumerate(rules)
                for number, regex in enumerate(rule.unless)
            ),
        ]
    )


def _runs(rules: Sequence[IntentRule]) -> tuple[tuple[int, int, int, int], ...]:
    """Per rule, where its bits are in the prefilter's mask (see ``_prefilter``): the first bit
    of its patterns and their all-ones mask, then the same for its ``unless`` patterns."""
    runs: list[tuple[int, int, int, int]] = []
    first = 0
    first_unless = sum(len(rule.patterns) for rule in rules)
    for rule in rules:
        runs.append(
            (first, (1 << len(rule.patterns)) - 1, first_unless, (1 << len(rule.unless)) - 1)
        )
        first += len(rule.patterns)
        first_unless += len(rule.unless)
    return tuple(runs)


@dataclass(frozen=True, slots=True)
class IntentRules:
    rules: tuple[IntentRule, ...]  # in file order, which breaks ties between equal scores
    title_weight: float
    source: str
    # Most posts show one or two intents: one scan of a post names the few patterns (of all
    # rules, ``unless`` ones too) that can match it, and only those run (watchers/prefilter.py).
    prefilter: Prefilter[PatternKey] | None = field(default=None, compare=False, repr=False)
    # Where each rule's bits are in the prefilter's mask (see ``_runs``).
    runs: tuple[tuple[int, int, int, int], ...] = field(default=(), compare=False, repr=False)


def _token_regex(token: str) -> str:
    # Posts are matched after normalize_negations, so an apostrophe may only be left out.
    return re.escape(token.translate(_APOSTROPHES)).replace("'", "'?")


def _phrase_regex(phrase: str) -> str:
    tokens = phrase.split()
    # Words may be joined by spaces or hyphens: "log in", "log-in"; "follow-up", "follow up".
    body = r"[\s-]+".join(_token_regex(t) for t in tokens)
    if tokens and (tokens[0][0].isalnum() or tokens[0][0] == "_"):
        body = rf"(?<!\w){body}"
    if tokens and (tokens[-1][-1].isalnum() or tokens[-1][-1] == "_"):
        body = rf"{body}(?!\w)"
    return body


def _compile(entry: Any, where: str) -> Pattern:
    if isinstance(entry, str):
        entry = {"phrase": entry}
    if not isinstance(entry, Mapping):
        raise RulesError(f"{where}: expected a phrase or a mapping, got {entry!r}")
    unknown = set(entry) - {"phrase", "re", "weight", "boundary"}
    if unknown or ("phrase" in entry) == ("re" in entry):
        raise RulesError(
            f"{where}: give exactly one of 'phrase' or 're' (plus optional 'weight', "
            f"'boundary'), got {dict(entry)!r}"
        )
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise RulesError(f"{where}: weight must be a positive number, got {weight!r}")
    if "phrase" in entry:
        text = str(entry["phrase"]).strip()
        if not text:
            raise RulesError(f"{where}: empty phrase")
        source = _phrase_regex(text)
    else:
        text = str(entry["re"])
        source = text
        if entry.get("boundary", True):
            source = rf"(?<!\w)(?:{text})(?!\w)"
    try:
        regex = re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise RulesError(f"{where}: invalid pattern {text!r}: {exc}") from exc
    if regex.search(""):
        # A pattern that matches nothing-at-all would fire on every post.
        raise RulesError(f"{where}: pattern {text!r} matches the empty string")
    return Pattern(text=text, regex=regex, weight=float(weight))


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RulesError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def parse_rules(data: Any, *, source: str = "<rules>") -> IntentRules:
    """Compile rules already read from YAML (or built in code)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("intents"), Mapping):
        raise RulesError(f"{source}: expected a mapping with an 'intents' mapping")
    title_weight = data.get("title_weight", DEFAULT_TITLE_WEIGHT)
    if not isinstance(title_weight, int | float) or title_weight <= 0:
        raise RulesError(f"{source}: title_weight must be a positive number")
    rules: list[IntentRule] = []
    for name, spec in data["intents"].items():
        try:
            intent = Intent(name)
        except ValueError:
            known = ", ".join(i.value for i in Intent)
            raise RulesError(f"{source}: unknown intent {name!r} (known: {known})") from None
        where = f"{source}: {name}"
        if not isinstance(spec, Mapping):
            raise RulesError(f"{where}: expected a mapping with 'patterns'")
        patterns = tuple(
            _compile(e, f"{where}.patterns[{i}]")
            for i, e in enumerate(_as_list(spec.get("patterns"), f"{where}.patterns"))
        )
        if not patterns:
            raise RulesError(f"{where}: no patterns")
        unless = tuple(
            _compile(e, f"{where}.unless[{i}]").regex
            for i, e in enumerate(_as_list(spec.get("unless"), f"{where}.unless"))
        )
        min_score = spec.get("min_score", 1.0)
        if not isinstance(min_score, int | float) or min_score <= 0:
            raise RulesError(f"{where}: min_score must be a positive number")
        rules.append(IntentRule(intent, patterns, unless, float(min_score)))
    return IntentRules(
        rules=tuple(rules),
        title_weight=float(title_weight),
        source=source,
        prefilter=_prefilter(rules),
        runs=_runs(rules),
    )


def load_rules(path: Path | None = None) -> IntentRules:
    """Read and compile a rules file; the packaged ``data/intents.yml`` when no path is given."""
    if path is None:
        return _default_rules()
    return _read_rules(path)


def _read_rules(path: Path) -> IntentRules:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from exc
    return parse_rules(data, source=str(path))


@functools.cache
def _default_rules() -> IntentRules:
    # Compiled once per process: every post in a burst reuses the same regexes.
    return _read_rules(DEFAULT_RULES_PATH)


def _prepare(text: str) -> str:
    return prepare_cleaned(clean_social_text(text[:MAX_RAW_CHARS])[:MAX_SCANNED_CHARS])


def prepare_cleaned(cleaned: str) -> str:
    """A text as rules see it, from the text (at most ``MAX_RAW_CHARS`` of it) through
    ``clean_social_text``, cut to ``MAX_SCANNED_CHARS``."""
    return normalize_negations(cleaned)


def _overlaps(span: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _bits(mask: int) -> list[int]:
    """The numbers of the bits set in ``mask``, lowest first."""
    numbers: list[int] = []
    while mask:
        low = mask & -mask
        mask ^= low
        numbers.append(low.bit_length() - 1)
    return numbers


def _score(
    rule: IntentRule,
    segments: list[tuple[str, float]],
    runnable: list[list[int]],
    unless: list[int] | None,
) -> IntentHit | None:
    # ``runnable``: per segment, the numbers of this rule's patterns that can match it;
    # ``unless``: per segment, a mask of the rule's ``unless`` patterns that can match it
    # (None: all can). Candidates are (weight, segment, start, end, pattern index). Each
    # pattern counts at most once, and overlapping matches count once ("keeps crashing" and
    # "crashing" are one piece of evidence), heaviest first.
    candidates: list[tuple[float, int, int, int, int]] = []
    for seg_index, (text, multiplier) in enumerate(segments):
        if not runnable[seg_index]:
            continue
        # The spans where this rule's patterns do not count, found once something matched.
        blocked: list[tuple[int, int]] | None = None
        for pat_index in runnable[seg_index]:
            pattern = rule.patterns[pat_index]
            for m in pattern.regex.finditer(text):
                if m.end() == m.start():
                    continue
                if blocked is None:
                    # An ``unless`` pattern the prefilter rules out has no span here.
                    regexes = (
                        rule.unless
                        if unless is None
                        else [rule.unless[n] for n in _bits(unless[seg_index])]
                    )
                    blocked = [b.span() for u in regexes for b in u.finditer(text)]
                if not _overlaps(m.span(), blocked):
                    candidates.append(
                        (pattern.weight * multiplier, seg_index, m.start(), m.end(), pat_index)
                    )
                    break
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_patterns: set[int] = set()
    taken: list[tuple[int, int, int]] = []
    score = 0.0
    for weight, seg_index, start, end, pat_index in candidates:
        if pat_index in used_patterns:
            continue
        if _overlaps((start, end), [(s, e) for seg, s, e in taken if seg == seg_index]):
            continue
        used_patterns.add(pat_index)
        taken.append((seg_index, start, end))
        score += weight
    if not taken or score < rule.min_score:
        return None
    triggers: list[str] = []
    for seg_index, start, end in sorted(taken):
        trigger = " ".join(segments[seg_index][0][start:end].split())
        if trigger.lower() not in (t.lower() for t in triggers):
            triggers.append(trigger)
    return IntentHit(intent=rule.intent, triggers=tuple(triggers), score=round(score, 3))


def detect_intents(
    text: str, *, title: str | None = None, rules: IntentRules | None = None
) -> list[IntentHit]:
    """The intents a post shows, strongest first (ties in rules-file order).

    A title is scored with the file's ``title_weight``: on forums and review sites the title
    is the poster's own summary ("Bug: export crashes").
    """
    return detect_prepared(_prepare(text), title=_prepare(title) if title else None, rules=rules)


def detect_prepared(
    text: str, *, title: str | None = None, rules: IntentRules | None = None
) -> list[IntentHit]:
    """``detect_intents`` of a post whose text and title are already through ``_prepare``
    (``prepare_cleaned`` of their cleaned form); a title of None means none."""
    rules = rules or _default_rules()
    segments = [(text, 1.0)]
    if title is not None:
        segments.insert(0, (title, rules.title_weight))
    prefilter = rules.prefilter if rules.runs else None
    masks = [prefilter.mask(segment) for segment, _ in segments] if prefilter else []
    hits: list[tuple[int, IntentHit]] = []
    for number, rule in enumerate(rules.rules):
        unless: list[int] | None = None
        if prefilter is None:
            # Every pattern runs: the evidence weighed as if there were no prefilter.
            runnable = [list(range(len(rule.patterns))) for _ in segments]
        else:
            first, ones, first_unless, unless_ones = rules.runs[number]
            runnable = [_bits(mask >> first & ones) for mask in masks]
            if not any(runnable):
                continue
            unless = [mask >> first_unless & unless_ones for mask in masks]
        hit = _score(rule, segments, runnable, unless)
        if hit:
            hits.append((number, hit))
    hits.sort(key=lambda pair: (-pair[1].score, pair[0]))
    return [hit for _, hit in hits]
