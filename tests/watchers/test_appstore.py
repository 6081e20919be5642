"""AppStoreSource against a local server answering like itunes.apple.com's review feed.

Bodies follow the feed's observed JSON shape: ``feed`` with Atom-like ``{"label": …}`` values,
``entry`` a list (an object for a single review, absent without reviews), each review with
``author.name``, ``im:rating``, ``im:version``, ``id``, ``title``, ``content``, ``updated``,
``link.attributes.href``, ``im:voteSum`` and ``im:voteCount``; the feed's ``link`` list names
the first, last, previous and next pages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web

from tests.support.local_http import LocalServer, local_policy
from watchers.appstore import MAX_PAGES, PAGE_SIZE, AppStoreSource
from watchers.base import SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.http import HttpFetcher, RateLimited
from watchers.source_settings import SourceSettings

APP = "284882215"
NOWHERE = SearchSpec(terms=("acme",))
T0 = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
CUPERTINO = timezone(timedelta(hours=-7))  # Apple writes times in its own zone


def page_path(page: int, country: str = "us") -> str:
    return f"/{country}/rss/customerreviews/page={page}/id={APP}/sortby=mostrecent/json"


def review(review_id: int, updated: datetime, rating: int = 2, **overrides: Any) -> dict[str, Any]:
    local = updated.astimezone(CUPERTINO)
    entry: dict[str, Any] = {
        "author": {
            "uri": {"label": f"https://itunes.apple.com/us/reviews/id{review_id + 7}"},
            "name": {"label": "Sam  Reviewer"},
            "label": "",
        },
        "updated": {"label": local.isoformat()},
        "im:rating": {"label": str(rating)},
        "im:version": {"label": "452.0"},
        "id": {"label": str(review_id)},
        "title": {"label": f"Crashes on launch ({review_id})"},
        "content": {
            "label": "Since the update the app\ncrashes every time I open it.",
            "attributes": {"type": "text"},
        },
        "link": {
            "attributes": {
                "rel": "related",
                "href": f"https://itunes.apple.com/us/review?id={APP}&type=Purple%20Software",
            }
        },
        "im:voteSum": {"label": "4"},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "im:voteCount": {"label": "6"},
    }
    entry.update(overrides)
    return entry


def feed(entries: Any, *, page: int = 1, last: int | None = 10) -> dict[str, Any]:
    base = (
        "https://mzstoreservices-int-st.itunes.apple.com/us/rss/customerreviews/page={}"
        f"/id={APP}/sortby=mostrecent/json"
    )
    links = [
        {
            "attributes": {
                "rel": "alternate",
                "type": "text/html",
                "href": "https://apps.apple.com/",
            }
        },
        {"attributes": {"rel": "self", "href": base.format(page)}},
        {"attributes": {"rel": "first", "href": base.format(1) + "?urlDesc=/customerreviews/id=1"}},
        {"attributes": {"rel": "previous", "href": base.format(max(1, page - 1))}},
        {"attributes": {"rel": "next", "href": base.format(page + 1)}},
    ]
    if last is not None:
        links.append(
            {
                "attributes": {
                    "rel": "last",
                    "href": base.format(last) + "?urlDesc=/customerreviews/page=1/id=1",
                }
            }
        )
    document: dict[str, Any] = {
        "author": {
            "name": {"label": "iTunes Store"},
            "uri": {"label": "http://www.apple.com/us/itunes/"},
        },
        "updated": {"label": "2024-01-02T03:00:00-07:00"},
        "rights": {"label": "Copyright 2008 Apple Inc."},
        "title": {"label": "iTunes Store: Customer Reviews"},
        "icon": {"label": "http://itunes.apple.com/favicon.ico"},
        "link": links,
        "id": {"label": base.format(page)},
    }
    if entries is not None:
        document["entry"] = entries
    return {"feed": document}


def serve_reviews(
    server: LocalServer, reviews: list[dict[str, Any]], *, last: int | None = 10, pages: int = 12
) -> None:
    """Serve ``reviews`` (most recent first) in pages of 50, like Apple."""
    for page in range(1, pages + 1):
        chunk = reviews[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        server.json(page_path(page), feed(chunk, page=page, last=last))


def make_source(
    server: LocalServer, fetcher: HttpFetcher, argument: str = f"{APP}:us"
) -> AppStoreSource:
    return AppStoreSource(
        argument, fetcher=fetcher, settings=SourceSettings(appstore_url=server.base + "/")
    )


def ids(posts: list[Any]) -> list[str]:
    return [post.external_id for post in posts]


def newest_first(first_id: int, count: int, start: datetime = T0) -> list[dict[str, Any]]:
    """``count`` reviews, ids and times going down from ``first_id`` and ``start``."""
    return [review(first_id - n, start - timedelta(minutes=n)) for n in range(count)]


async def test_first_poll_parses_reviews_into_posts(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_reviews(local_server, [review(11, T0, rating=2), review(10, T0 - timedelta(hours=1))])
    source = make_source(local_server, fetcher)

    result = await source.fetch(SourceState(), NOWHERE)

    assert source.spec == f"appstore:{APP}:us"
    assert [r.path for r in local_server.requests] == [page_path(1)]
    assert ids(result.posts) == ["11", "10"]
    post = result.posts[0]
    assert post.source == f"appstore:{APP}:us"
    assert post.url == f"https://itunes.apple.com/us/review?id={APP}&type=Purple%20Software"
    assert post.author == "Sam Reviewer"
    assert post.title == "★★☆☆☆ 2/5 · Crashes on launch (11)"
    assert post.text == "Since the update the app crashes every time I open it."
    assert post.language == "en"
    assert post.published_at == T0
    assert post.published_at.tzinfo == UTC
    assert post.author_reach == 4
    assert post.raw is not None and json.loads(post.raw)["im:rating"]["label"] == "2"
    assert not result.not_modified


async def test_single_review_is_an_object_and_no_reviews_is_no_entry(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    local_server.json(page_path(1), feed(review(5, T0, rating=5)))
    (post,) = (await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)).posts
    assert post.title == "★★★★★ 5/5 · Crashes on launch (5)"

    local_server.json(page_path(1), feed(None))
    empty = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert empty.posts == []

    # An app without reviews: every review that appears later is new.
    serve_reviews(local_server, [review(2, T0), review(1, T0 - timedelta(days=300))])
    later = await make_source(local_server, fetcher).fetch(empty.state, NOWHERE)
    assert ids(later.posts) == ["2", "1"]


async def test_the_apps_own_entry_in_older_feeds_is_skipped(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    app_entry = {
        "im:name": {"label": "YouTube: Watch, Listen, Stream"},
        "rights": {"label": "© Google LLC"},
        "im:price": {"label": "Get", "attributes": {"amount": "0.00000", "currency": "USD"}},
        "id": {"label": f"https://apps.apple.com/us/app/youtube/id{APP}?uo=2"},
        "title": {"label": "YouTube - Google LLC"},
    }
    local_server.json(page_path(1), feed([app_entry, review(3, T0)]))
    result = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert ids(result.posts) == ["3"]


async def test_resume_after_restart_returns_only_new_reviews(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_reviews(local_server, newest_first(100, 10))
    first = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert len(first.posts) == 10

    # Three new reviews, one in the same second as the previous newest.
    new = [review(103, T0 + timedelta(hours=2)), review(102, T0 + timedelta(hours=1))]
    new.append(review(101, T0))
    serve_reviews(local_server, new + newest_first(100, 10))
    # A new instance, as after a restart.
    restarted = make_source(local_server, fetcher)
    second = await restarted.fetch(first.state, NOWHERE)

    assert ids(second.posts) == ["103", "102", "101"]
    assert [r.path for r in local_server.requests][-1] == page_path(1)

    third = await make_source(local_server, fetcher).fetch(second.state, NOWHERE)
    assert third.posts == []


async def test_pages_through_until_reaching_seen_reviews(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_reviews(local_server, newest_first(1_000, 5))
    first = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)

    new = newest_first(1_120, 120, start=T0 + timedelta(days=1))
    serve_reviews(local_server, new + newest_first(1_000, 5))
    local_server.requests.clear()
    second = await make_source(local_server, fetcher).fetch(first.state, NOWHERE)

    assert [r.path for r in local_server.requests] == [page_path(1), page_path(2), page_path(3)]
    assert ids(second.posts) == [str(1_120 - n) for n in range(120)]


async def test_paging_stops_at_apples_last_page_and_at_ten(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    serve_reviews(local_server, newest_first(10, 5))
    first = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    flood = newest_first(5_000, 12 * PAGE_SIZE, start=T0 + timedelta(days=30))

    serve_reviews(local_server, flood, last=4)
    local_server.requests.clear()
    capped = await make_source(local_server, fetcher).fetch(first.state, NOWHERE)
    assert len(local_server.requests) == 4
    assert len(capped.posts) == 4 * PAGE_SIZE

    serve_reviews(local_server, flood, last=None)
    local_server.requests.clear()
    with caplog.at_level(logging.WARNING, logger="watchers.appstore"):
        flooded = await make_source(local_server, fetcher).fetch(first.state, NOWHERE)
    assert [r.path for r in local_server.requests][-1] == page_path(MAX_PAGES)
    assert len(local_server.requests) == MAX_PAGES
    assert len(flooded.posts) == MAX_PAGES * PAGE_SIZE
    assert "may be missed" in caplog.text


async def test_an_edited_old_review_is_not_returned_again_and_does_not_stop_paging(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_reviews(local_server, newest_first(100, 3))
    first = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)

    edited = review(99, T0 + timedelta(days=2))  # an old review, edited: it moves to the top
    new = newest_first(260, 60, start=T0 + timedelta(days=1))
    serve_reviews(local_server, [edited, *new, *newest_first(100, 3)])
    second = await make_source(local_server, fetcher).fetch(first.state, NOWHERE)

    assert ids(second.posts) == [str(260 - n) for n in range(60)]


async def test_conditional_get(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    body = json.dumps(feed([review(1, T0)]))

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(text=body, content_type="application/json", headers={"ETag": '"v1"'})

    local_server.route("GET", page_path(1), handler)
    first = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert first.state.etag == '"v1"'
    assert "If-None-Match" not in local_server.requests[0].headers

    second = await make_source(local_server, fetcher).fetch(first.state, NOWHERE)
    assert second.not_modified
    assert second.posts == []
    assert second.state == first.state
    assert local_server.requests[1].headers["If-None-Match"] == '"v1"'


@pytest.mark.parametrize(("country", "language"), [("jp", "ja"), ("ch", None), ("de", "de")])
async def test_language_comes_from_the_country(
    local_server: LocalServer, fetcher: HttpFetcher, country: str, language: str | None
) -> None:
    local_server.json(page_path(1, country), feed([review(1, T0)]))
    source = make_source(local_server, fetcher, f"id{APP}:{country}")
    (post,) = (await source.fetch(SourceState(), NOWHERE)).posts
    assert source.spec == f"appstore:{APP}:{country}"
    assert post.language == language


def test_bad_arguments_are_refused(fetcher: HttpFetcher) -> None:
    for argument in (None, "", "youtube:us", f"{APP}:usa"):
        with pytest.raises(SourceError, match="numeric app id"):
            AppStoreSource(argument, fetcher=fetcher, settings=SourceSettings())


async def test_malformed_review_is_skipped_and_the_rest_kept(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    no_rating = review(2, T0)
    del no_rating["im:rating"]
    bad_date = review(3, T0)
    bad_date["updated"] = {"label": "last Tuesday"}
    local_server.json(
        page_path(1), feed([review(4, T0), no_rating, bad_date, "nonsense", review(1, T0)])
    )
    with caplog.at_level(logging.WARNING, logger="watchers.appstore"):
        result = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert ids(result.posts) == ["4", "1"]
    assert caplog.text.count("skipping malformed review") == 3


async def test_unreadable_cursor_starts_over(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    serve_reviews(local_server, newest_first(100, 3))
    with caplog.at_level(logging.WARNING, logger="watchers.appstore"):
        result = await make_source(local_server, fetcher).fetch(
            SourceState(cursor='{"id": "many"}'), NOWHERE
        )
    assert len(result.posts) == 3
    assert "unreadable cursor" in caplog.text


# Faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "  \n"])
async def test_empty_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, body: str
) -> None:
    async def empty(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    local_server.route("GET", page_path(1), empty)
    with pytest.raises(SourceError, match="empty answer"):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)


async def test_html_page_is_blocked(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><body>Connecting to the App Store…</body></html>",
            content_type="text/html",
        )

    local_server.route("GET", page_path(1), page)
    with pytest.raises(SourceBlocked, match="HTML page"):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)


async def test_403_is_blocked(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    local_server.json(page_path(1), {}, status=403)
    with pytest.raises(SourceBlocked):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)


async def test_503_is_an_error_and_with_retry_after_a_rate_limit(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    local_server.json(page_path(1), {}, status=503)
    with pytest.raises(SourceError, match="HTTP 503"):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)

    local_server.json(page_path(1), {}, status=503, headers={"Retry-After": "300"})
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert raised.value.retry_after == 300


async def test_429_with_retry_after(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    local_server.json(page_path(1), {}, status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    assert raised.value.retry_after == 120


async def test_failure_on_a_later_page_fails_the_poll(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_reviews(local_server, newest_first(10, 2))
    first = await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
    serve_reviews(local_server, newest_first(500, 120, start=T0 + timedelta(days=1)))
    local_server.json(page_path(2), {}, status=500)
    # Returning page 1 alone would move the cursor past page 2's reviews: a gap.
    with pytest.raises(SourceError, match="HTTP 500"):
        await make_source(local_server, fetcher).fetch(first.state, NOWHERE)


async def test_timeout(local_server: LocalServer) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response(feed(None))

    local_server.route("GET", page_path(1), slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await make_source(local_server, quick).fetch(SourceState(), NOWHERE)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"feed": {"entry": [', "malformed JSON"),
        ("[]", "no feed"),
        ('{"feed": "none"}', "no feed"),
        ('{"feed": {"entry": "many"}}', "not a list"),
    ],
)
async def test_malformed_or_unexpected_json(
    local_server: LocalServer, fetcher: HttpFetcher, document: str, message: str
) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(text=document, content_type="application/json")

    local_server.route("GET", page_path(1), broken)
    with pytest.raises(SourceError, match=message):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)


async def test_truncated_body(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "5000"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(json.dumps(feed([review(1, T0)])).encode()[:200])
        request.transport.close()  # type: ignore[union-attr]
        return response

    local_server.route("GET", page_path(1), truncated)
    with pytest.raises(SourceError):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)


async def test_oversized_body(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    long_text = {"label": "crash " * 2_000, "attributes": {"type": "text"}}
    local_server.json(page_path(1), feed([review(n, T0, content=long_text) for n in range(1, 40)]))
    with pytest.raises(SourceError, match="larger than"):
        await make_source(local_server, fetcher).fetch(SourceState(), NOWHERE)
