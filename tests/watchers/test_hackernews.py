"""HackerNewsSource against a local server that answers like the Algolia HN Search API."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from tests.support.local_http import LocalServer, local_policy
from watchers.base import SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.hackernews import (
    HITS_PER_PAGE,
    LOOKBACK_SECONDS,
    MAX_PAGES,
    MAX_TERMS,
    HackerNewsSource,
)
from watchers.http import HttpFetcher, RateLimited
from watchers.source_settings import SourceSettings

SEARCH_PATH = "/api/v1/search_by_date"
NOW = 1_717_000_000
ACME = SearchSpec(terms=("acme",))


def story(object_id: int, created: int, title: str, **fields: Any) -> dict[str, Any]:
    """A story hit as search_by_date returns it."""
    author = fields.pop("author", "pg")
    return {
        "created_at": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "title": title,
        "url": fields.pop("url", None),
        "author": author,
        "points": fields.pop("points", 1),
        "story_text": fields.pop("story_text", None),
        "comment_text": None,
        "num_comments": 0,
        "story_id": None,
        "story_title": None,
        "story_url": None,
        "parent_id": None,
        "created_at_i": created,
        "updated_at": "2024-05-29T16:26:40Z",
        "_tags": ["story", f"author_{author}", f"story_{object_id}"],
        "objectID": str(object_id),
        "_highlightResult": {"title": {"value": title, "matchLevel": "full"}},
        **fields,
    }


def comment(
    object_id: int, created: int, text_html: str, *, story_id: int = 1, **fields: Any
) -> dict[str, Any]:
    """A comment hit as search_by_date returns it (no title, no points)."""
    return {
        "created_at": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "title": None,
        "url": None,
        "author": fields.pop("author", "dang"),
        "points": None,
        "story_text": None,
        "comment_text": text_html,
        "num_comments": None,
        "story_id": story_id,
        "story_title": fields.pop("story_title", "Acme launches"),
        "story_url": fields.pop("story_url", "https://acme.example/launch"),
        "parent_id": story_id,
        "created_at_i": created,
        "updated_at": "2024-05-29T16:26:40Z",
        "_tags": ["comment", "author_dang", f"story_{story_id}"],
        "objectID": str(object_id),
        "_highlightResult": {"comment_text": {"value": text_html, "matchLevel": "full"}},
        **fields,
    }


@dataclass
class FakeAlgolia:
    """Filters, sorts and pages hits the way search_by_date does (for the parts we use)."""

    hits: list[dict[str, Any]] = field(default_factory=list)

    def add(self, *hits: dict[str, Any]) -> None:
        self.hits.extend(hits)

    @staticmethod
    def _matches(hit: dict[str, Any], query: str) -> bool:
        haystack = " ".join(
            str(hit.get(key) or "") for key in ("title", "story_text", "comment_text", "url")
        ).lower()
        # Algolia requires every query word.
        return all(word in haystack for word in query.lower().split())

    async def handle(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        tags = request.query.get("tags", "")
        kinds = set(tags.strip("()").split(",")) if tags else {"story", "comment"}
        per_page = int(request.query.get("hitsPerPage", "20"))
        page = int(request.query.get("page", "0"))
        selected = [
            hit for hit in self.hits if self._matches(hit, query) and kinds & set(hit["_tags"])
        ]
        for numeric in filter(None, request.query.get("numericFilters", "").split(",")):
            match = re.fullmatch(r"created_at_i(>=|>)(\d+)", numeric)
            assert match, numeric
            bound = int(match.group(2))
            selected = [
                hit
                for hit in selected
                if hit["created_at_i"] > bound
                or (match.group(1) == ">=" and hit["created_at_i"] == bound)
            ]
        selected.sort(key=lambda hit: hit.get("created_at_i", 0), reverse=True)
        pages = (len(selected) + per_page - 1) // per_page
        body = {
            "hits": selected[page * per_page : (page + 1) * per_page],
            "nbHits": len(selected),
            "page": page,
            "nbPages": pages,
            "hitsPerPage": per_page,
            "exhaustiveNbHits": True,
            "exhaustiveTypo": True,
            "exhaustive": {"nbHits": True, "typo": True},
            "query": query,
            "params": request.query_string,
            "processingTimeMS": 1,
        }
        date = format_datetime(datetime.fromtimestamp(NOW, UTC), usegmt=True)
        return web.json_response(body, headers={"Date": date})


@pytest.fixture
def algolia(local_server: LocalServer) -> FakeAlgolia:
    fake = FakeAlgolia()
    local_server.route("GET", SEARCH_PATH, fake.handle)
    return fake


@pytest.fixture
def settings(local_server: LocalServer) -> SourceSettings:
    return SourceSettings(hn_api_url=local_server.base + "/api/v1/")


def hn(fetcher: HttpFetcher, settings: SourceSettings) -> HackerNewsSource:
    return HackerNewsSource(None, fetcher=fetcher, settings=settings)


def searches(server: LocalServer) -> list[dict[str, str]]:
    return [request.query for request in server.seen(SEARCH_PATH)]


async def test_stories_and_comments_become_posts(
    algolia: FakeAlgolia, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    algolia.add(
        story(
            101, NOW - 30, "Acme  launches  Widgets", url="https://acme.example/launch", points=42
        ),
        story(
            102,
            NOW - 20,
            "Ask HN: Is Acme any good?",
            story_text="<p>We tried &quot;Acme&quot;.</p><p>It&#x27;s <i>slow</i></p>",
            author="alice",
            points=7,
        ),
        comment(103, NOW - 10, 'Acme support<p>was <a href="https://x.example">great</a> &gt; ok'),
    )
    result = await hn(fetcher, settings).fetch(SourceState(), ACME)

    comment_post, ask, link = result.posts  # newest first
    assert link.source == "hn"
    assert link.external_id == "101"
    assert link.url == "https://news.ycombinator.com/item?id=101"
    assert link.author == "pg"
    assert link.author_reach == 42
    assert link.title == "Acme launches Widgets"
    assert link.text == "https://acme.example/launch"  # the story's own link stays matchable
    assert link.published_at == datetime.fromtimestamp(NOW - 30, UTC)
    assert link.published_at is not None and link.published_at.tzinfo is UTC
    assert link.language is None
    assert link.raw is not None
    raw = json.loads(link.raw)
    assert raw["objectID"] == "101"
    assert "_highlightResult" not in raw

    assert ask.title == "Ask HN: Is Acme any good?"
    assert ask.text == 'We tried "Acme". It\'s slow'
    assert ask.author == "alice"
    assert ask.author_reach == 7

    assert comment_post.external_id == "103"
    assert comment_post.url == "https://news.ycombinator.com/item?id=103"
    assert comment_post.title == "Re: Acme launches"
    assert comment_post.text == "Acme support was great > ok"
    assert comment_post.author == "dang"
    assert comment_post.author_reach is None  # comments have no points
    assert comment_post.published_at == datetime.fromtimestamp(NOW - 10, UTC)


async def test_first_poll_asks_for_the_newest_page_of_stories_and_comments(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    algolia.add(*(story(i, NOW - 1_000 + i, f"Acme {i}") for i in range(250)))
    result = await hn(fetcher, settings).fetch(SourceState(), ACME)

    assert searches(local_server) == [
        {"query": "acme", "tags": "(story,comment)", "hitsPerPage": "100", "page": "0"}
    ]
    # History is not crawled: only the newest page.
    assert [p.external_id for p in result.posts] == [str(i) for i in range(249, 149, -1)]
    assert result.state.cursor is not None
    assert json.loads(result.state.cursor)["newest"] == NOW - 1_000 + 249


async def test_each_term_is_searched_on_its_own_and_hits_are_not_repeated(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    algolia.add(
        story(1, NOW - 3, "Acme Cloud is down"),
        story(2, NOW - 2, "Widgetco raises money"),
        story(3, NOW - 1, "Nothing to see"),
    )
    spec = SearchSpec(terms=("acme", '"acme cloud"', "Widgetco", "ACME"))
    result = await hn(fetcher, settings).fetch(SourceState(), spec)

    assert [q["query"] for q in searches(local_server)] == ["acme", "acme cloud", "Widgetco"]
    assert sorted(p.external_id for p in result.posts) == ["1", "2"]


@pytest.mark.parametrize("terms", [(), tuple(f"brand{i}" for i in range(MAX_TERMS + 1))])
async def test_without_terms_or_with_too_many_the_whole_stream_is_read(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    terms: tuple[str, ...],
) -> None:
    algolia.add(story(1, NOW - 2, "brand3 news"), story(2, NOW - 1, "unrelated"))
    result = await hn(fetcher, settings).fetch(SourceState(), SearchSpec(terms=terms))

    assert [q["query"] for q in searches(local_server)] == [""]
    assert [p.external_id for p in result.posts] == ["2", "1"]


async def test_resume_after_restart_returns_only_new_items(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    algolia.add(story(1, NOW - 100, "Acme one"), story(2, NOW - 50, "Acme two"))
    first = await hn(fetcher, settings).fetch(SourceState(), ACME)
    assert [p.external_id for p in first.posts] == ["2", "1"]

    # Busy second: another hit at exactly the newest timestamp, one indexed late with an
    # older timestamp, one newer, and one outside the lookback that was returned long ago.
    algolia.add(
        story(3, NOW - 50, "Acme three, same second"),
        comment(4, NOW - 60, "late acme comment"),
        story(5, NOW - 10, "Acme five"),
    )
    second = await hn(fetcher, settings).fetch(first.state, ACME)  # a new instance
    assert [p.external_id for p in second.posts] == ["5", "3", "4"]
    assert searches(local_server)[-1]["numericFilters"] == (
        f"created_at_i>={NOW - 50 - LOOKBACK_SECONDS}"
    )

    third = await hn(fetcher, settings).fetch(second.state, ACME)
    assert third.posts == []
    assert third.state.cursor == second.state.cursor


async def test_hits_older_than_the_lookback_are_not_returned_again(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    algolia.add(story(1, NOW - 5_000, "Acme old"), story(2, NOW, "Acme new"))
    first = await hn(fetcher, settings).fetch(SourceState(), ACME)
    cursor = json.loads(first.state.cursor or "")
    assert cursor["seen"] == {"2": NOW}  # id 1 is below the floor: the filter excludes it

    # A server that ignores numericFilters still cannot make old hits come back.
    stale = story(7, NOW - LOOKBACK_SECONDS - 1, "Acme stale")
    local_server.json(SEARCH_PATH, {"hits": [algolia.hits[1], stale], "nbPages": 1})
    second = await hn(fetcher, settings).fetch(first.state, ACME)
    assert second.posts == []


async def test_pages_are_read_until_the_cursor_is_reached(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    algolia.add(story(1, NOW - 10_000, "Acme first"))
    first = await hn(fetcher, settings).fetch(SourceState(), ACME)
    algolia.add(*(story(100 + i, NOW - 5_000 + i, f"Acme {i}") for i in range(250)))

    second = await hn(fetcher, settings).fetch(first.state, ACME)

    assert [q["page"] for q in searches(local_server)[1:]] == ["0", "1", "2"]
    assert len(second.posts) == 250
    assert len({p.external_id for p in second.posts}) == 250


async def test_page_cap_bounds_a_poll_and_says_so(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    algolia.add(story(1, NOW - 10_000, "Acme first"))
    first = await hn(fetcher, settings).fetch(SourceState(), ACME)
    algolia.add(*(story(1_000 + i, NOW - 5_000 + i, f"Acme {i}") for i in range(600)))

    with caplog.at_level(logging.WARNING, logger="watchers.hackernews"):
        second = await hn(fetcher, settings).fetch(first.state, ACME)

    assert len(searches(local_server)) == 1 + MAX_PAGES
    assert len(second.posts) == MAX_PAGES * HITS_PER_PAGE
    assert "more than 500 new hits" in caplog.text


async def test_empty_first_poll_starts_the_cursor_at_server_time(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    first = await hn(fetcher, settings).fetch(SourceState(), ACME)
    assert first.posts == []
    assert json.loads(first.state.cursor or "") == {"newest": NOW, "seen": {}}

    algolia.add(*(story(i, NOW + i, f"Acme {i}") for i in range(1, 151)))
    second = await hn(fetcher, settings).fetch(first.state, ACME)
    assert len(second.posts) == 150  # everything since, not just the newest page


async def test_unreadable_cursor_starts_over(
    algolia: FakeAlgolia,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    algolia.add(story(1, NOW, "Acme"))
    with caplog.at_level(logging.WARNING, logger="watchers.hackernews"):
        result = await hn(fetcher, settings).fetch(SourceState(cursor='{"newest": "x"}'), ACME)
    assert [p.external_id for p in result.posts] == ["1"]
    assert "numericFilters" not in searches(local_server)[0]
    assert "unreadable Hacker News cursor" in caplog.text


async def test_one_malformed_hit_is_skipped_and_the_rest_kept(
    algolia: FakeAlgolia,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    algolia.add(
        story(1, NOW - 3, "Acme good"),
        story(2, NOW - 2, "Acme bad", author={"name": "not a string"}),
        {"objectID": "3", "title": "Acme without a date", "_tags": ["story"]},
        story(4, NOW - 1, "Acme good too"),
    )
    with caplog.at_level(logging.WARNING, logger="watchers.hackernews"):
        result = await hn(fetcher, settings).fetch(SourceState(), ACME)

    assert [p.external_id for p in result.posts] == ["4", "1"]
    assert "skipping malformed Hacker News hit 2" in caplog.text
    assert "no integer created_at_i" in caplog.text
    # The malformed hit counts as seen: it is not retried forever.
    assert "2" in json.loads(result.state.cursor or "")["seen"]


async def test_long_texts_are_capped(
    algolia: FakeAlgolia, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    algolia.add(comment(1, NOW, "acme " * 10_000))
    (post,) = (await hn(fetcher, settings).fetch(SourceState(), ACME)).posts
    assert len(post.text) == 20_000
    assert post.raw is not None and len(post.raw) <= 16_384


def test_spec_and_argument(settings: SourceSettings) -> None:
    fetcher = HttpFetcher(local_policy())
    assert HackerNewsSource(None, fetcher=fetcher, settings=settings).spec == "hn"
    with pytest.raises(ValueError, match="no argument"):
        HackerNewsSource("x", fetcher=fetcher, settings=settings)


# Faults -------------------------------------------------------------------------------------


def serve(server: LocalServer, handler: Any) -> None:
    server.route("GET", SEARCH_PATH, handler)


async def test_timeout(local_server: LocalServer, settings: SourceSettings) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({"hits": []})

    serve(local_server, slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3, retries=0)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await hn(quick, settings).fetch(SourceState(), ACME)


async def test_server_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(SEARCH_PATH, {"message": "Internal error", "status": 500}, status=500)
    with pytest.raises(SourceError, match="HTTP 500") as caught:
        await hn(fetcher, settings).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_rate_limited_with_retry_after(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(
        SEARCH_PATH,
        {"message": "Too many requests", "status": 429},
        status=429,
        headers={"Retry-After": "3600"},
    )
    with pytest.raises(RateLimited) as caught:
        await hn(fetcher, settings).fetch(SourceState(), ACME)
    assert caught.value.retry_after == 3600


async def test_forbidden_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(SEARCH_PATH, {"message": "Invalid Application-ID", "status": 403}, status=403)
    with pytest.raises(SourceBlocked, match="HTTP 403"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)


async def test_html_page_instead_of_json_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def wall(_: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><body>Checking your browser…</body></html>",
            content_type="text/html",
        )

    serve(local_server, wall)
    with pytest.raises(SourceBlocked, match="HTML page"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)


async def test_api_error_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(SEARCH_PATH, {"message": "invalid numericFilters", "status": 400})
    with pytest.raises(SourceError, match="Hacker News search failed: invalid numericFilters"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)


async def test_bad_request_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(SEARCH_PATH, {"message": "bad", "status": 400}, status=400)
    with pytest.raises(SourceError, match="HTTP 400"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)


@pytest.mark.parametrize(
    "document",
    [[], {"hits": {"0": {}}}, {"hits": [], "nbPages": "2"}, {"nbHits": 0}],
    ids=["list", "hits-not-a-list", "nbPages-not-a-number", "no-hits"],
)
async def test_unexpected_shapes_are_errors(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings, document: Any
) -> None:
    local_server.json(SEARCH_PATH, document)
    with pytest.raises(SourceError, match="unexpected answer from Hacker News search"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)


@pytest.mark.parametrize("body", [b"{not json", b'{"hits": [{"objectID": "1", "ti'])
async def test_malformed_or_cut_off_json_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings, body: bytes
) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    serve(local_server, broken)
    with pytest.raises(SourceError, match="malformed JSON") as caught:
        await hn(fetcher, settings).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_truncated_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 5_000
        response.force_close()
        await response.prepare(request)
        await response.write(b'{"hits": [')
        return response

    serve(local_server, truncated)
    with pytest.raises(SourceError, match="broke mid-response"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)


async def test_oversized_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    huge = [story(i, NOW, "Acme " + "x" * 1_000) for i in range(300)]
    local_server.json(SEARCH_PATH, {"hits": huge, "nbPages": 1})
    with pytest.raises(SourceError, match="larger than 200000 bytes"):
        await hn(fetcher, settings).fetch(SourceState(), ACME)
