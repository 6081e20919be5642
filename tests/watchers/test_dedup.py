from __future__ import annotations

import pytest

from watchers.dedup import (
    NearDuplicates,
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
