"""Sentiment of a post with VADER, after cleaning the parts of social text VADER misreads."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# A huge post must not stall a scoring burst, and the opening of a post carries its tone.
MAX_ANALYSED_CHARS = 5_000
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

# VADER's lexicon was built from general social text. In posts about a company, "support",
# "help" and "care" name a department ("support never replies"), and "please" opens a demand
# ("please fix this"), so they carry no tone; and the lexicon lacks the words people use for a
# failing product, without which a furious bug report would score neutral. Values follow
# VADER's scale (-4 … 4) and its nearest entries ("crash" -1.7, "broken" -2.1).
DOMAIN_LEXICON: dict[str, float] = {
    "support": 0.0,
    "help": 0.0,
    "care": 0.0,
    "please": 0.0,
    "crashes": -1.7,
    "crashing": -1.7,
    "crashed": -1.7,
    "buggy": -1.6,
    "glitchy": -1.6,
    "laggy": -1.4,
    "unusable": -2.3,
    "garbage": -2.1,
    "outage": -1.5,
}

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
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _HASHTAG.sub(_split_hashtag, text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()


_analyzer: SentimentIntensityAnalyzer | None = None
_analyzer_lock = threading.Lock()


def _get_analyzer() -> SentimentIntensityAnalyzer:
    # Built once per process (it loads the lexicon from disk); the lock keeps a burst of
    # threads scoring at start-up from each building their own.
    global _analyzer
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                analyzer = SentimentIntensityAnalyzer()
                analyzer.lexicon.update(DOMAIN_LEXICON)
                _analyzer = analyzer
    return _analyzer


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
    cleaned = clean_social_text(text[: MAX_ANALYSED_CHARS * 2])[:MAX_ANALYSED_CHARS]
    sentences = _sentences(cleaned)
    if not sentences:
        return Sentiment(compound=0.0, label="neutral")
    analyzer = _get_analyzer()
    # VADER looks up to three words back for a negation, across sentence ends too, so
    # "support never replies. Worst experience ever" reads "never … worst" as positive.
    # Scoring each sentence alone and adding their raw valences keeps VADER's
    # sum-then-normalize behaviour without that leak.
    raw = sum(_raw(analyzer.polarity_scores(s)["compound"]) for s in sentences)
    # Posts up to WORDS_AT_FULL_WEIGHT words are not scaled; a longer one scores as its average
    # passage of that many words, so it does not saturate towards ±1. Words, not sentences,
    # because social posts come in fragments ("Ugh. Again. Down. Worst.").
    raw *= min(1.0, WORDS_AT_FULL_WEIGHT / len(cleaned.split()))
    compound = round(_normalize(raw), 4)
    return Sentiment(compound=compound, label=label_for(compound))
