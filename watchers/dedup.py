"""Recognising one story told many times: canonical URLs and near-duplicate text.

Two mentions are the same story when their links are the same once tracking parameters are
removed, or when their texts are near-duplicates (a retweet with a comment, a press release
republished, a post cross-posted to several subreddits). Near-duplicates are found with
MinHash signatures over word 3-grams (datasketch) and locality-sensitive hashing, so checking
a new post against thousands of recent ones costs a few hash lookups, not a comparison each.

Signatures are made in the scoring pool; the long-lived process only compares them. So
datasketch, which imports scipy (tens of MB), is imported where a signature is made, and the
index is datasketch's banding done over one numpy array (see :class:`NearDuplicates`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from datasketch import MinHash

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
    from datasketch import MinHash

    grams = shingles(text)
    if not grams:
        return None
    # The shared permutations: drawing them again is most of what a new MinHash costs.
    minhash = MinHash(num_perm=NUM_PERM, scheme=SCHEME, permutations=_permutations())
    minhash.update_batch(list(grams))
    return minhash


class Signed(Protocol):
    """A MinHash as far as comparing goes: datasketch's, or a stored one read back."""

    @property
    def hashvalues(self) -> npt.NDArray[np.uint64]: ...


class Signature:
    """A stored signature read back: its hash values, comparable with a MinHash's."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: npt.NDArray[np.uint64]) -> None:
        self.hashvalues = hashvalues

    def jaccard(self, other: Signed) -> float:
        """The estimated Jaccard similarity, as :meth:`datasketch.MinHash.jaccard` gives it."""
        return _similarity(self.hashvalues, other.hashvalues)


def _similarity(a: npt.NDArray[np.integer], b: npt.NDArray[np.integer]) -> float:
    return float(np.count_nonzero(a == b)) / NUM_PERM


def to_bytes(minhash: Signed) -> bytes:
    return minhash.hashvalues.astype(np.uint64).tobytes()


@lru_cache(maxsize=1)
def _permutations() -> np.ndarray:
    # Drawn from the default seed, as MinHash would for each new signature; shared, because
    # drawing them is most of what building a MinHash costs.
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations


_MAX_HASH = 0xFFFF_FFFF  # the "affine32" scheme's hash values fit 32 bits


def from_bytes(data: bytes) -> Signature | None:
    values = np.frombuffer(data, dtype=np.uint64)
    if len(values) != NUM_PERM or int(values.max()) > _MAX_HASH:
        return None  # written with other settings: ignore rather than compare apples to pears
    return Signature(values)


# datasketch's MinHashLSH picks (bands, rows per band) for a threshold by numerical integration
# with scipy; the pair for the threshold Earful uses is kept here (a test checks it still
# agrees), so the long-lived process needs neither.
_KNOWN_BANDS = {(SIMILARITY, NUM_PERM): (10, 6)}


@lru_cache(maxsize=8)
def _bands(threshold: float) -> tuple[int, int]:
    known = _KNOWN_BANDS.get((threshold, NUM_PERM))
    if known is not None:
        return known
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    return lsh.b, lsh.r


class NearDuplicates:
    """An LSH index of recent texts; ``find`` returns the key of a near-duplicate, if any.

    ``max_size`` bounds memory: past it, the oldest entries (in insertion order) are dropped,
    which for an index fed in arrival order means the stories least likely to come back.

    The banding is datasketch's (a candidate shares all the hash values of at least one band
    with the query), kept compactly: every signature is one row of a uint32 array, and the
    64-bit digests of all its bands (salted per band) sit in one sorted array, so one
    bisection looks up every band of a query. Rows added since the last sort are found through
    a dict per band until there are enough of them to re-sort; a removed row is only marked
    free. Candidates are confirmed on their values, so a stale or
    colliding digest never makes a match. About 400 bytes an entry, against some 4 KB for
    datasketch's MinHash objects and dictionaries of byte strings.
    """

    _UNSORTED_LIMIT = 2_048  # rows looked up in dicts before the sorted digests are rebuilt
    _RECENT_CAP = 4_096

    def __init__(self, *, threshold: float = SIMILARITY, max_size: int | None = None) -> None:
        self._threshold = threshold
        self._max_size = max_size
        self._band_count, self._band_rows = _bands(threshold)
        # Odd 64-bit multipliers for the band digests, the same in every index of a process.
        self._mixers = np.random.default_rng(0x5EED).integers(
            1, 2**63, size=self._band_rows, dtype=np.uint64
        ) * np.uint64(2) + np.uint64(1)
        # Two bands' equal digests must not look alike once every band shares one array.
        self._salts = np.random.default_rng(0x5A17).integers(
            0, 2**63, size=self._band_count, dtype=np.uint64
        )
        self.clear()

    def clear(self) -> None:
        self._rows: dict[Hashable, int] = {}  # key → row, oldest first
        self._keys: list[Hashable] = []  # row → key (stale for a free row)
        self._free: list[int] = []
        self._values = np.zeros((0, NUM_PERM), dtype=np.uint32)
        self._digests = np.zeros((0, self._band_count), dtype=np.uint64)
        self._order = np.zeros(0, dtype=np.int64)  # row → when it was added (ties go oldest)
        self._added = 0
        # Every band's digests in one sorted array, each salted with its band's number so
        # one bisection looks a query's bands up all at once; and the row of each.
        self._sorted_digests = np.zeros(0, dtype=np.uint64)
        self._sorted_rows = np.zeros(0, dtype=np.int64)
        # Rows added since the last sort, per band: digest → rows.
        self._recent: list[dict[int, list[int]]] = [{} for _ in range(self._band_count)]
        self._unsorted = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._rows

    def keys(self) -> list[Hashable]:
        """Every indexed key, oldest first."""
        return list(self._rows)

    def add(self, key: Hashable, minhash: Signed) -> None:
        if key in self._rows:
            return
        values = self._checked(minhash)
        row = self._free.pop() if self._free else self._grow()
        self._values[row] = values
        self._digests[row] = self._digest(values[np.newaxis])[0]
        self._order[row] = self._added
        self._added += 1
        self._keys[row] = key
        self._rows[key] = row
        for recent, digest in zip(self._recent, self._digests[row].tolist(), strict=True):
            recent.setdefault(digest, []).append(row)
        self._unsorted += 1
        if self._unsorted > self._resort_after():
            self._sort()
        if self._max_size is not None:
            while len(self._rows) > self._max_size:
                self.remove(next(iter(self._rows)))

    def add_all(self, items: Iterable[tuple[Hashable, Signed]]) -> None:
        for key, minhash in items:
            self.add(key, minhash)

    def remove(self, key: Hashable) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._free.append(row)

    def matches(self, minhash: Signed) -> list[tuple[float, Hashable]]:
        """Every indexed key above the threshold with its similarity, most similar first
        (the oldest first among equals).

        LSH only proposes candidates; each is re-checked against its signature, so a key is
        returned only when the estimated similarity really reaches the threshold.
        """
        if not self._rows:
            return []
        values = self._checked(minhash)
        rows = self._candidates(values)
        if not len(rows):
            return []
        stored = self._values[rows]
        # datasketch's rule: all of one band's values equal. Digests only narrowed the search.
        banded = self._band_rows * self._band_count
        band_equal = (
            (stored[:, :banded] == values[:banded])
            .reshape(len(rows), self._band_count, self._band_rows)
            .all(axis=2)
            .any(axis=1)
        )
        rows = rows[band_equal]
        similarities = np.count_nonzero(stored[band_equal] == values, axis=1) / NUM_PERM
        found = [
            (float(similarity), int(row))
            for similarity, row in zip(similarities, rows, strict=True)
            if similarity >= self._threshold
        ]
        found.sort(key=lambda pair: (-pair[0], int(self._order[pair[1]])))
        return [(similarity, self._keys[row]) for similarity, row in found]

    def _checked(self, minhash: Signed) -> npt.NDArray[np.uint32]:
        values = np.asarray(minhash.hashvalues)
        if values.shape != (NUM_PERM,) or int(values.max()) > _MAX_HASH:
            raise ValueError(f"not a {SCHEME} MinHash of {NUM_PERM} values")
        return values.astype(np.uint32)

    def _digest(self, values: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
        """One 64-bit digest per band of each row of ``values``."""
        banded = self._band_rows * self._band_count
        bands = values[:, :banded].reshape(len(values), self._band_count, self._band_rows)
        digests: npt.NDArray[np.uint64] = (bands.astype(np.uint64) * self._mixers).sum(
            axis=2, dtype=np.uint64
        )
        return digests

    def _grow(self) -> int:
        row = len(self._keys)
        if row == len(self._values):
            capacity = max(64, 2 * row)
            if self._max_size is not None:
                capacity = max(row + 1, min(capacity, self._max_size + 1))
            self._values = np.resize(self._values, (capacity, NUM_PERM))
            self._digests = np.resize(self._digests, (capacity, self._band_count))
            self._order = np.resize(self._order, capacity)
        self._keys.append(None)
        return row

    def _resort_after(self) -> int:
        # Re-sorting costs O(n log n): waiting for a share of the index keeps it a few
        # microseconds an addition, and the cap bounds the memory of the recent rows' dicts.
        return min(max(self._UNSORTED_LIMIT, len(self._rows) // 8), self._RECENT_CAP)

    def _candidates(self, values: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
        """Rows that may share a band with ``values``: live, deduplicated, not yet confirmed."""
        digest = self._digest(values[np.newaxis])[0]
        found: list[int] = []
        if len(self._sorted_digests):
            salted = digest ^ self._salts
            low = np.searchsorted(self._sorted_digests, salted, side="left")
            high = np.searchsorted(self._sorted_digests, salted, side="right")
            for start, stop in zip(low.tolist(), high.tolist(), strict=True):
                if stop > start:
                    found.extend(self._sorted_rows[start:stop].tolist())
        for recent, band_digest in zip(self._recent, digest.tolist(), strict=True):
            found.extend(recent.get(band_digest, ()))
        # A freed row may still be listed (until the next sort) under its old or new values.
        rows = sorted({row for row in found if self._rows.get(self._keys[row]) == row})
        return np.asarray(rows, dtype=np.int64)

    def _sort(self) -> None:
        rows = np.fromiter(self._rows.values(), dtype=np.int64, count=len(self._rows))
        salted = (self._digests[rows] ^ self._salts).ravel()
        order = np.argsort(salted, kind="stable")
        self._sorted_digests = salted[order]
        self._sorted_rows = np.repeat(rows, self._band_count)[order]
        self._recent = [{} for _ in range(self._band_count)]
        self._unsorted = 0

    def find(
        self, minhash: MinHash, *, accept: Callable[[Hashable], bool] | None = None
    ) -> Hashable | None:
        """The most similar indexed key above the threshold that ``accept`` allows."""
        for _, key in self.matches(minhash):
            if accept is None or accept(key):
                return key
        return None
