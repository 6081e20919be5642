from __future__ import annotations

import pytest

from watchers.dedup import NearDuplicates, canonical_url, from_bytes, signature, to_bytes


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
