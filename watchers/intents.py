"""What a post is: a complaint, a bug report, a feature request… found by rules kept in YAML.

The rules live in ``watchers/data/intents.yml`` so a team can extend the lexicons without code;
that file documents its own format. ``load_rules`` reads and compiles a rules file once;
``detect_intents`` scores a post against it and returns the intents that reached their
threshold, strongest first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
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


# A pattern's key in the prefilter: (rule number, pattern number).
PatternKey = tuple[int, int]


def _prefilter(rules: Iterable[IntentRule]) -> Prefilter[PatternKey]:
    return Prefilter(
        [
            ((rule_number, number), pattern.regex)
            for rule_number, rule in enumerate(rules)
            for number, pattern in enumerate(rule.patterns)
        ]
    )


@dataclass(frozen=True, slots=True)
class IntentRules:
    rules: tuple[IntentRule, ...]  # in file order, which breaks ties between equal scores
    title_weight: float
    source: str
    # Most posts show one or two intents: one scan of a post names the few patterns (of all
    # rules) that can match it, and only those run (see watchers/prefilter.py).
    prefilter: Prefilter[PatternKey] | None = field(default=None, compare=False, repr=False)


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
    return normalize_negations(clean_social_text(text[: MAX_SCANNED_CHARS * 2])[:MAX_SCANNED_CHARS])


def _overlaps(span: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _score(
    rule: IntentRule,
    segments: list[tuple[str, float]],
    runnable: list[list[int]],
) -> IntentHit | None:
    # ``runnable``: per segment, the numbers of this rule's patterns that can match it.
    # Candidates are (weight, segment, start, end, pattern index). Each pattern counts at most
    # once, and overlapping matches count once ("keeps crashing" and "crashing" are one piece
    # of evidence), heaviest first.
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
                    blocked = [b.span() for u in rule.unless for b in u.finditer(text)]
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


def _runnable(rules: IntentRules, segments: list[tuple[str, float]]) -> list[list[list[int]]]:
    """Per rule, per segment, the numbers of the rule's patterns that can match the segment
    (in rule order, so the evidence is weighed as if every pattern had run)."""
    runnable: list[list[list[int]]] = [[[] for _ in segments] for _ in rules.rules]
    for seg_index, (text, _) in enumerate(segments):
        if rules.prefilter is None:
            for rule_number, rule in enumerate(rules.rules):
                runnable[rule_number][seg_index] = list(range(len(rule.patterns)))
            continue
        for rule_number, pat_index in sorted(rules.prefilter.candidates(text)):
            runnable[rule_number][seg_index].append(pat_index)
    return runnable


def detect_intents(
    text: str, *, title: str | None = None, rules: IntentRules | None = None
) -> list[IntentHit]:
    """The intents a post shows, strongest first (ties in rules-file order).

    A title is scored with the file's ``title_weight``: on forums and review sites the title
    is the poster's own summary ("Bug: export crashes").
    """
    rules = rules or _default_rules()
    segments = [(_prepare(text), 1.0)]
    if title:
        segments.insert(0, (_prepare(title), rules.title_weight))
    runnable = _runnable(rules, segments)
    hits = [
        (i, hit)
        for i, rule in enumerate(rules.rules)
        if any(runnable[i]) and (hit := _score(rule, segments, runnable[i]))
    ]
    hits.sort(key=lambda pair: (-pair[1].score, pair[0]))
    return [hit for _, hit in hits]
