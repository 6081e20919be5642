"""Recognising one story told many times: canonical URLs and near-duplicate text.

Two mentions are the same story when their links are the same once tracking parameters are
removed, or when their texts are near-duplicates (a retweet with a comment, a press release
republished, a post cross-posted to several subreddits). Near-duplicates are found with
MinHash signatures over word 3-grams and locality-sensitive hashing (datasketch), so checking
a new post against thousands of recent ones costs a few hash lookups, not a comparison each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from datasketch import MinHash, MinHashLSH

from watchers.query import tokenize_words

NUM_PERM = 64
# Estimated Jaccard similarity of word 3-grams above which two texts are one story.
SIMILARITY = 0.6
MIN_WORDS = 8  # below this, texts are too short to call near-duplicates safely
SHINGLE = 3
# Stored signatures are only comparable with ones made by the same hashing scheme.
SCHEME = "affine32"

_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "hsa_", "vero_", "oly_", "__hs", "_hs")
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "igsh",
        "si",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "source",
        "spm",
        "cmpid",
        "cmp",
        "mkt_tok",
        "trk",
        "trkcampaign",
        "_ga",
        "_gl",
        "s",
        "share",
        "feature",
        "smid",
        "smtyp",
        "ncid",
        "sr_share",
        "amp",
        "output",
        "rss",
        "cid",
        "campaign",
    }
)
_DROPPED_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")


def canonical_url(url: str | None) -> str | None:
    """The link with everything that varies between shares of the same page removed."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    for prefix in _DROPPED_HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
            break
    port = parts.port
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=False)
        if key.lower() not in _TRACKING_PARAMS and not key.lower().startswith(_TRACKING_PREFIXES)
    ]
    path = parts.path or "/"
    for suffix in ("/amp", "/amp/"):
        if path.endswith(suffix) and len(path) > len(suffix):
            path = path[: -len(suffix)]
    if len(path) > 1:
        path = path.rstrip("/")
    # http and https are the same story; a canonical form should not split them.
    return urlunsplit(("https", host, path, urlencode(sorted(query)), ""))


_LINK = re.compile(r"https?://[^\s<>\"'`{}|\\^\[\]]+", re.IGNORECASE)
_SENTENCE_END = ".,;:!?'\""


def links(text: str) -> list[str]:
    """The http(s) links written in a plain text, without the punctuation that ends a sentence."""
    found = []
    for match in _LINK.finditer(text):
        link = match.group(0)
        while link and (
            link[-1] in _SENTENCE_END or (link[-1] == ")" and link.count(")") > link.count("("))
        ):
            # "(see https://x.example/a)." : the ")" and "." close the sentence, not the URL.
            link = link[:-1]
        found.append(link)
    return found


def story_url(url: str | None, text: str, *, shares_links: bool) -> str | None:
    """The canonical URL of what a post is about.

    On a source where posts share links (a Hacker News story, a Reddit link post, a toot
    with a link), the post's own URL is only the discussion page; the story is the first link
    to another site in its text. Everywhere else (a blog's feed, an app review, an issue) the
    post's own URL is the story.
    """
    own = canonical_url(url)
    if shares_links:
        own_host = urlsplit(own).hostname if own else None
        for link in links(text):
            shared = canonical_url(link)
            if shared is not None and urlsplit(shared).hostname != own_host:
                return shared
    return own


def shingles(text: str) -> set[bytes]:
    words = tokenize_words(text)
    if len(words) < MIN_WORDS:
        return set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def signature(text: str) -> MinHash | None:
    """A MinHash of the text's word 3-grams, or None when the text is too short to judge."""
    grams = shingles(text)
    if not grams:
        return None
    minhash = MinHash(num_perm=NUM_PERM, scheme=SCHEME)
    minhash.update_batch(list(grams))
    return minhash


def to_bytes(minhash: MinHash) -> bytes:
    return minhash.hashvalues.astype(np.uint64).tobytes()


@lru_cache(maxsize=1)
def _permutations() -> np.ndarray:
    # Drawn from the default seed, as MinHash would for each new signature; shared, because
    # drawing them is most of what building a MinHash costs, and a copy per indexed mention
    # would be most of the index's memory.
    return MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations


def from_bytes(data: bytes) -> MinHash | None:
    values = np.frombuffer(data, dtype=np.uint64)
    if len(values) != NUM_PERM:
        return None  # written with other settings: ignore rather than compare apples to pears
    return MinHash(hashvalues=values, permutations=_permutations(), scheme=SCHEME)


@lru_cache(maxsize=8)
def _bands(threshold: float) -> tuple[int, int]:
    # datasketch derives the bands from the threshold by numerical integration, which costs
    # milliseconds; an index is made per batch of posts, so the answer is kept.
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    return lsh.b, lsh.r


def _lsh(threshold: float) -> MinHashLSH:
    return MinHashLSH(threshold=threshold, num_perm=NUM_PERM, params=_bands(threshold))


class NearDuplicates:
    """An LSH index of recent texts; ``find`` returns the key of a near-duplicate, if any.

    ``max_size`` bounds memory: past it, the oldest entries (in insertion order) are dropped,
    which for an index fed in arrival order means the stories least likely to come back.
    """

    def __init__(self, *, threshold: float = SIMILARITY, max_size: int | None = None) -> None:
        self._threshold = threshold
        self._max_size = max_size
        self._lsh = _lsh(threshold)
        self._signatures: dict[Hashable, MinHash] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._signatures

    def keys(self) -> list[Hashable]:
        """Every indexed key, oldest first."""
        return list(self._signatures)

    def add(self, key: Hashable, minhash: MinHash) -> None:
        if key in self._signatures:
            return
        self._lsh.insert(key, minhash)
        self._signatures[key] = minhash
        if self._max_size is not None:
            while len(self._signatures) > self._max_size:
                self.remove(next(iter(self._signatures)))

    def add_all(self, items: Iterable[tuple[Hashable, MinHash]]) -> None:
        for key, minhash in items:
            self.add(key, minhash)

    def remove(self, key: Hashable) -> None:
        if self._signatures.pop(key, None) is not None:
            self._lsh.remove(key)

    def clear(self) -> None:
        self._lsh = _lsh(self._threshold)
        self._signatures.clear()

    def matches(self, minhash: MinHash) -> list[tuple[float, Hashable]]:
        """Every indexed key above the threshold with its similarity, most similar first.

        LSH only proposes candidates; each is re-checked against its signature, so a key is
        returned only when the estimated similarity really reaches the threshold.
        """
        found = []
        for key in self._lsh.query(minhash):
            similarity = minhash.jaccard(self._signatures[key])
            if similarity >= self._threshold:
                found.append((similarity, key))
        found.sort(key=lambda pair: pair[0], reverse=True)
        return found

    def find(
        self, minhash: MinHash, *, accept: Callable[[Hashable], bool] | None = None
    ) -> Hashable | None:
        """The most similar indexed key above the threshold that ``accept`` allows."""
        for _, key in self.matches(minhash):
            if accept is None or accept(key):
                return key
        return None
