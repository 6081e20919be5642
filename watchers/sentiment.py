"""Sentiment of a post with VADER, after cleaning the parts of social text VADER misreads."""

from __future__ import annotations

import functools
import math
import re
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from watchers.prefilter import Prefilter

# A huge post must not stall a scoring burst, and the opening of a post carries its tone.
MAX_ANALYSED_CHARS = 5_000
# How much of a post is cleaned before the cleaned text is cut to MAX_ANALYSED_CHARS.
MAX_RAW_CHARS = MAX_ANALYSED_CHARS * 2
# VADER adds up the valence of every word, so its score saturates towards ±1 as a text grows;
# past this many words (about two tweets) a post's valence is scaled down to this length.
WORDS_AT_FULL_WEIGHT = 60
# Sentences are scored one by one; a run-on "sentence" is cut into pieces of this size, which
# also bounds VADER's cost, roughly quadratic in the length of what it is given.
MAX_SENTENCE_CHARS = 1_000
# VADER's own recommended cut-offs for the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
_VADER_ALPHA = 15  # the constant in VADER's normalize(); see _raw

# VADER's lexicon was built from general social text; the domain layer in data/sentiment.yml
# (word valences and phrases, documented there) adds what it misses in customer talk.
DOMAIN_LEXICON_PATH = Path(__file__).parent / "data" / "sentiment.yml"

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Mastodon handles carry an instance (@name@host); the look-behind leaves e-mail addresses alone.
_HANDLE = re.compile(r"(?<![\w@])@\w+(?:@[\w.-]+\w)?")
_HASHTAG = re.compile(r"(?<![\w#&])#(\w+)")
# Camel-case words, runs of capitals (kept as one word: "ATTFail" -> "ATT Fail") and numbers.
_HASHTAG_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SPACES = re.compile(r"[ \t]+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


@dataclass(frozen=True, slots=True)
class Sentiment:
    compound: float  # VADER's normalized score, from -1 (most negative) to 1 (most positive)
    label: str  # "negative" | "neutral" | "positive"


class LexiconError(ValueError):
    """The domain lexicon file is malformed. The message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class DomainPhrase:
    regex: re.Pattern[str]
    valence: float


@dataclass(frozen=True, slots=True)
class DomainLexicon:
    words: Mapping[str, float]
    phrases: tuple[DomainPhrase, ...]
    # Names the few phrases that can occur in a sentence, so only those run.
    prefilter: Prefilter[int] | None = field(default=None, compare=False, repr=False)


def _valence(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not -4 <= value <= 4:
        raise LexiconError(f"{where}: valence must be a number from -4 to 4, got {value!r}")
    return float(value)


def parse_lexicon(data: Any, *, source: str = "<lexicon>") -> DomainLexicon:
    """Check and compile a domain lexicon already read from YAML."""
    if not isinstance(data, Mapping):
        raise LexiconError(f"{source}: expected a mapping with 'words' and 'phrases'")
    words_in = data.get("words") or {}
    if not isinstance(words_in, Mapping):
        raise LexiconError(f"{source}: 'words' must be a mapping of word to valence")
    words: dict[str, float] = {}
    for word, value in words_in.items():
        if not isinstance(word, str) or not word or word != word.lower() or " " in word:
            raise LexiconError(f"{source}: words: {word!r} is not one lower-case word")
        words[word] = _valence(value, f"{source}: words.{word}")
    phrases_in = data.get("phrases") or []
    if not isinstance(phrases_in, list):
        raise LexiconError(f"{source}: 'phrases' must be a list")
    phrases: list[DomainPhrase] = []
    for i, entry in enumerate(phrases_in):
        where = f"{source}: phrases[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("re"), str):
            raise LexiconError(f"{where}: expected {{re: '<regex>', valence: <number>}}")
        try:
            regex = re.compile(rf"(?<!\w)(?:{entry['re']})(?!\w)", re.IGNORECASE)
        except re.error as exc:
            raise LexiconError(f"{where}: invalid pattern {entry['re']!r}: {exc}") from exc
        if regex.search(""):
            raise LexiconError(f"{where}: pattern {entry['re']!r} matches the empty string")
        phrases.append(DomainPhrase(regex, _valence(entry.get("valence"), where)))
    return DomainLexicon(
        words=words,
        phrases=tuple(phrases),
        prefilter=Prefilter([(number, phrase.regex) for number, phrase in enumerate(phrases)]),
    )


def load_lexicon(path: Path | None = None) -> DomainLexicon:
    """Read a domain lexicon file; the packaged ``data/sentiment.yml`` when no path is given."""
    if path is None:
        return _default_lexicon()
    return _read_lexicon(path)


def _read_lexicon(path: Path) -> DomainLexicon:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LexiconError(f"{path}: not valid YAML: {exc}") from exc
    return parse_lexicon(data, source=str(path))


@functools.cache
def _default_lexicon() -> DomainLexicon:
    return _read_lexicon(DOMAIN_LEXICON_PATH)


_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})
# Posts write "doesn't", "doesnt", "does n't" (tokenized text) and "does not"; rewriting them all
# to the contraction lets a rule say "doesn't work" once. "can't" is "ca"+"n't", "won't" "wo"+"n't".
_CONTRACTED_NEGATION = re.compile(
    r"\b(ca|do|does|did|is|are|was|were|wo|would|could|should|has|have|had|need|must)"
    r"\s?n'?t\b",
    re.IGNORECASE,
)
_SPELLED_NEGATION = re.compile(
    r"\b(?:(can)\s*|(do|does|did|is|are|was|were|would|could|should|has|have|had|need|must|will)"
    r"\s+)not\b",
    re.IGNORECASE,
)


def _contracted(m: re.Match[str]) -> str:
    return f"{m.group(1)}n't"


def _spelled_to_contracted(m: re.Match[str]) -> str:
    if m.group(1):
        return f"{m.group(1)}'t"
    stem = m.group(2)
    return "won't" if stem.lower() == "will" else f"{stem}n't"


# What each rewrite needs somewhere in the text; most sentences have neither, and these
# literal-led searches are far cheaper than the rewrites' own scans.
_CONTRACTED_HINT = re.compile(r"n'?t\b", re.IGNORECASE)
_SPELLED_HINT = re.compile(r"not\b", re.IGNORECASE)


def normalize_negations(text: str) -> str:
    """Every way posts write a negated auxiliary, as its contraction ("cannot" -> "can't")."""
    if not text.isascii():  # the curly apostrophes are not ASCII; translating is slow
        text = text.translate(_APOSTROPHES)
    if _CONTRACTED_HINT.search(text):
        text = _CONTRACTED_NEGATION.sub(_contracted, text)
    if _SPELLED_HINT.search(text):
        text = _SPELLED_NEGATION.sub(_spelled_to_contracted, text)
    return text


def _split_hashtag(match: re.Match[str]) -> str:
    words: list[str] = []
    for part in match.group(1).split("_"):
        found = _HASHTAG_WORD.findall(part)
        # Tags in scripts without letter case (or mixed with them) stay whole rather than mangled.
        words.extend(found if "".join(found) == part else [part])
    return " ".join(w for w in words if w)


def clean_social_text(text: str) -> str:
    """Social text as words: no URLs or @handles, hashtags split into words.

    Emoji, capitals and repeated punctuation stay: VADER reads them as intensity.
    """
    return clean_social_lines(text).strip()


def clean_social_lines(text: str) -> str:
    """``clean_social_text`` before its final strip: a text's blank lines, leading and trailing
    ones included, stay, so a cleaned title and a cleaned body can be joined into what
    cleaning them joined gives (see ``watchers.enrich``).

    Every rewrite stays within a line: no pattern crosses a line break (``\\S``, ``\\w`` and
    the look-behinds stop at one) and no replacement holds one.
    """
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _HASHTAG.sub(_split_hashtag, text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())


_analyzer: SentimentIntensityAnalyzer | None = None
_analyzer_lock = threading.Lock()
# The characters VADER replaces by their description before reading a text (its emoji
# lexicon also has keys of several characters, which its character-by-character scan never
# meets); set with the analyzer.
_emoji_chars: frozenset[str] = frozenset()


def _get_analyzer() -> SentimentIntensityAnalyzer:
    # Built once per process (it loads the lexicon from disk); the lock keeps a burst of
    # threads scoring at start-up from each building their own.
    global _analyzer, _emoji_chars
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                analyzer = SentimentIntensityAnalyzer()
                analyzer.lexicon.update(load_lexicon().words)
                _emoji_chars = frozenset(key for key in analyzer.emojis if len(key) == 1)
                _analyzer = analyzer
    return _analyzer


def _may_have_valence(sentence: str, analyzer: SentimentIntensityAnalyzer) -> bool:
    """False only when VADER's compound for ``sentence`` is exactly 0.0, so the call can be
    skipped: no word of it, read as VADER reads words, is in VADER's lexicon.

    VADER (``polarity_scores``) first replaces emoji by words; with none, it splits the text on
    whitespace, strips a word's leading and trailing punctuation unless that leaves two
    characters or fewer (``_words_and_emoticons``), and gives a word valence only when its lower
    case is in ``analyzer.lexicon`` (``sentiment_valence``; boosters and "kind of" add 0). With
    every valence 0, the "but" rule halves or raises zeros, the sum is 0, and ``score_valence``
    returns ``normalize(0.0)``, which is 0.0, whatever the punctuation. The test below is that
    reading word for word; a sentence with an emoji always goes to VADER.
    """
    if not sentence.isascii() and not _emoji_chars.isdisjoint(sentence):
        return True
    lexicon = analyzer.lexicon
    for word in sentence.split():
        stripped = word.strip(string.punctuation)
        if (stripped if len(stripped) > 2 else word).lower() in lexicon:
            return True
    return False


def _vader_compound(sentence: str, analyzer: SentimentIntensityAnalyzer) -> float:
    if not _may_have_valence(sentence, analyzer):
        return 0.0
    compound: float = analyzer.polarity_scores(sentence)["compound"]
    return compound


def _sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > MAX_SENTENCE_CHARS:
            sentences.append(sentence[:MAX_SENTENCE_CHARS])
            sentence = sentence[MAX_SENTENCE_CHARS:]
        if sentence.strip():
            sentences.append(sentence)
    return sentences


def _raw(compound: float) -> float:
    # Inverse of VADER's normalize(): x / sqrt(x² + 15). Rounded scores of ±1 are clamped.
    compound = max(min(compound, 0.9999), -0.9999)
    return compound * math.sqrt(_VADER_ALPHA / (1 - compound * compound))


def _normalize(raw: float) -> float:
    return raw / math.sqrt(raw * raw + _VADER_ALPHA)


def _phrase_valence(sentence: str, lexicon: DomainLexicon) -> float:
    # Factual complaints ("still no refund", "on hold for 2 hours") have no word VADER scores;
    # their phrases add valence to the sentence's raw sum, as one more VADER word would.
    text = normalize_negations(sentence)
    if lexicon.prefilter is None:
        return sum(p.valence for p in lexicon.phrases if p.regex.search(text))
    # Summed in file order, as if every phrase had been tried, so the float sum is the same.
    maybe = lexicon.prefilter.mask(text)  # bit n: phrase n may match
    return sum(
        p.valence
        for number, p in enumerate(lexicon.phrases)
        if maybe >> number & 1 and p.regex.search(text)
    )


def label_for(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


def score_sentiment(text: str) -> Sentiment:
    """VADER's compound score and label for one post (title and body joined by the caller)."""
    # Cut before cleaning too, so a megabyte of text never reaches the regexes; the margin
    # leaves room for the URLs and handles that cleaning removes.
    return score_cleaned(clean_social_text(text[:MAX_RAW_CHARS])[:MAX_ANALYSED_CHARS])


def score_cleaned(cleaned: str) -> Sentiment:
    """``score_sentiment`` of a post, given what it does first: the post (at most
    ``MAX_RAW_CHARS`` of it) through ``clean_social_text``, cut to ``MAX_ANALYSED_CHARS``."""
    sentences = _sentences(cleaned)
    if not sentences:
        return Sentiment(compound=0.0, label="neutral")
    analyzer = _get_analyzer()
    # VADER looks up to three words back for a negation, across sentence ends too, so
    # "support never replies. Worst experience ever" reads "never … worst" as positive.
    # Scoring each sentence alone and adding their raw valences keeps VADER's
    # sum-then-normalize behaviour without that leak.
    lexicon = load_lexicon()
    raw = sum(_raw(_vader_compound(s, analyzer)) + _phrase_valence(s, lexicon) for s in sentences)
    # Posts up to WORDS_AT_FULL_WEIGHT words are not scaled; a longer one scores as its average
    # passage of that many words, so it does not saturate towards ±1. Words, not sentences,
    # because social posts come in fragments ("Ugh. Again. Down. Worst.").
    raw *= min(1.0, WORDS_AT_FULL_WEIGHT / len(cleaned.split()))
    compound = round(_normalize(raw), 4)
    return Sentiment(compound=compound, label=label_for(compound))
