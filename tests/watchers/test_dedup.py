from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from watchers.dedup import (
    NUM_PERM,
    SCHEME,
    SIMILARITY,
    NearDuplicates,
    Signature,
    _bands,
    canonical_url,
    from_bytes,
    links,
    signature,
    story_url,
    to_bytes,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "https://www.example.com/news/acme-outage?utm_source=twitter&utm_medium=social",
            "http://example.com/news/acme-outage/",
        ),
        ("https://example.com/a?id=7&fbclid=XYZ&gclid=1", "https://example.com/a?id=7"),
        ("https://m.example.com/a?b=2&a=1#comments", "https://example.com/a?a=1&b=2"),
        ("https://example.com/story/amp", "https://example.com/story"),
    ],
)
def test_shares_of_one_page_have_one_canonical_url(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a?id=7", "https://example.com/a?id=8"),
        ("https://example.com/a", "https://example.org/a"),
        ("https://www.example.com/a", "https://shop.example.com/a"),
    ],
)
def test_different_pages_stay_different(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


@pytest.mark.parametrize(
    "url", [None, "", "ftp://example.com/x", "not a url", "javascript:alert(1)"]
)
def test_non_web_links_have_no_canonical_form(url: str | None) -> None:
    assert canonical_url(url) is None


STORY = (
    "Acme Cloud suffered a major outage this morning, taking down customer dashboards and the "
    "public API for nearly three hours before engineers restored service"
)


def test_retold_story_is_a_near_duplicate_and_other_news_is_not() -> None:
    index = NearDuplicates()
    original = signature(STORY)
    assert original is not None
    index.add("first", original)
    retold = signature("BREAKING: " + STORY + " according to the status page #acme")
    other = signature(
        "Acme announced a new partnership with Globex to bring analytics dashboards to small "
        "businesses across Europe starting next quarter"
    )
    assert retold is not None and other is not None
    assert index.find(retold) == "first"
    assert index.find(other) is None


def test_short_texts_are_never_called_duplicates() -> None:
    assert signature("acme is down") is None


def test_signatures_survive_storage() -> None:
    original = signature(STORY)
    assert original is not None
    restored = from_bytes(to_bytes(original))
    assert restored is not None and restored.jaccard(original) == 1.0
    assert from_bytes(b"\x00" * 8) is None


def test_links_lose_the_punctuation_that_ends_a_sentence() -> None:
    text = "See (https://x.example/a_(b)), https://y.example/q?x=1. And https://z.example/p)!"
    assert links(text) == [
        "https://x.example/a_(b)",
        "https://y.example/q?x=1",
        "https://z.example/p",
    ]
    assert links("no links, ftp://x.example or www.example.com") == []


def test_a_shared_link_is_the_story_where_posts_share_links() -> None:
    hn = "https://news.ycombinator.com/item?id=1"
    text = "Acme is down https://news.ycombinator.com/item?id=0 https://www.status.example/x?utm_source=hn"
    assert story_url(hn, text, shares_links=True) == "https://status.example/x"
    assert story_url(hn, text, shares_links=False) == canonical_url(hn)
    assert story_url(hn, "no link here", shares_links=True) == canonical_url(hn)
    assert story_url(None, "", shares_links=True) is None


def test_the_index_keeps_only_the_newest_and_filters_matches() -> None:
    index = NearDuplicates(max_size=2)
    story = signature(STORY)
    retold = signature("UPDATE " + STORY)
    assert story is not None and retold is not None
    index.add("old", story)
    index.add("mid", signature(STORY + " more at eleven") or story)
    index.add("new", retold)
    assert len(index) == 2 and "old" not in index and index.keys() == ["mid", "new"]
    found = index.matches(story)
    assert {key for _, key in found} == {"mid", "new"}
    assert [score for score, _ in found] == sorted((score for score, _ in found), reverse=True)
    assert index.find(story, accept=lambda key: key == "mid") == "mid"
    assert index.find(story, accept=lambda key: False) is None
    index.clear()
    assert len(index) == 0 and index.find(story) is None


def _variant(rng: np.random.Generator, base: np.ndarray, changed: int) -> Signature:
    """``base`` with ``changed`` of its hash values replaced: a text that much retold."""
    values = base.copy()
    where = rng.choice(NUM_PERM, size=changed, replace=False)
    values[where] = rng.integers(0, 2**32, size=changed, dtype=np.uint64)
    return Signature(values)


def test_the_index_finds_what_datasketchs_lsh_finds() -> None:
    """Same candidates (a whole band in common) and same answers as MinHashLSH plus the
    similarity check, through removals, reused rows and re-sorts of the band digests."""
    rng = np.random.default_rng(7)
    index = NearDuplicates()
    reference = MinHashLSH(threshold=SIMILARITY, num_perm=NUM_PERM)
    signatures: dict[int, Signature] = {}
    bases = [rng.integers(0, 2**32, size=NUM_PERM, dtype=np.uint64) for _ in range(60)]

    def as_minhash(sig: Signature) -> MinHash:
        return MinHash(num_perm=NUM_PERM, hashvalues=sig.hashvalues, scheme=SCHEME)

    def expected(query: Signature) -> list[tuple[float, int]]:
        found = []
        for key in reference.query(as_minhash(query)):
            similarity = query.jaccard(signatures[key])
            if similarity >= SIMILARITY:
                found.append((similarity, key))
        return sorted(found, key=lambda pair: (-pair[0], pair[1]))

    checked = 0
    for key in range(6_000):  # past the unsorted limit, so sorted digests are searched too
        sig = _variant(rng, bases[key % len(bases)], int(rng.integers(0, 40)))
        index.add(key, sig)
        reference.insert(key, as_minhash(sig))
        signatures[key] = sig
        if key % 7 == 3:  # forget some, so rows are freed and reused
            gone = int(rng.integers(0, key + 1))
            if gone in signatures:
                index.remove(gone)
                reference.remove(gone)
                del signatures[gone]
        if key % 50 == 0:
            query = _variant(rng, bases[int(rng.integers(0, len(bases)))], 20)
            assert index.matches(query) == expected(query)
            checked += len(expected(query))
    assert len(index) == len(signatures) and checked > 100


def test_the_bands_are_datasketchs() -> None:
    lsh = MinHashLSH(threshold=SIMILARITY, num_perm=NUM_PERM)
    assert _bands(SIMILARITY) == (lsh.b, lsh.r)


def test_signatures_of_another_scheme_are_ignored_or_refused() -> None:
    too_big = np.full(NUM_PERM, 2**40, dtype=np.uint64)
    assert from_bytes(too_big.tobytes()) is None
    with pytest.raises(ValueError):
        NearDuplicates().add("x", Signature(too_big))


def test_a_reused_row_is_not_found_under_the_signature_it_replaced() -> None:
    """A removed entry's row is reused before the band digests are sorted again: the new text
    must be found only by its own bands, as datasketch would (here: none in common)."""
    rng = np.random.default_rng(3)
    query = rng.integers(0, 2**32, size=NUM_PERM, dtype=np.uint64)
    bands, rows = _bands(SIMILARITY)
    similar = query.copy()
    similar[[band * rows for band in range(bands)]] += 1  # one value off in every band
    assert Signature(similar).jaccard(Signature(query)) >= SIMILARITY
    index = NearDuplicates()
    index.add("old", Signature(query))
    index._sort()  # as after many more entries
    assert [key for _, key in index.matches(Signature(query))] == ["old"]
    index.remove("old")
    index.add("new", Signature(similar))
    assert index.matches(Signature(query)) == []
