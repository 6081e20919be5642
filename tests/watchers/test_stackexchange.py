"""StackExchangeSource against a local server answering like api.stackexchange.com/2.3.

Bodies follow the documented common wrapper (``items``, ``has_more``, ``quota_max``,
``quota_remaining``, ``backoff``) and the question type with the ``withbody`` filter. Errors
come as the API sends them: HTTP 400 with ``error_id``, ``error_name`` and ``error_message``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tests.support.local_http import LocalServer, local_policy
from watchers.base import SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.http import HttpFetcher, RateLimited
from watchers.source_settings import SourceSettings
from watchers.stackexchange import OVERLAP_SECONDS, PAGE_SIZE, StackExchangeSource

PATH = "/2.3/search/advanced"
T0 = 1_704_189_600  # 2024-01-02T10:00:00Z
ACME = SearchSpec(terms=("acme",))


class Clock:
    def __init__(self, now: float = T0 + 3_600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def question(qid: int, created: int, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tags": ["python", "acme"],
        "owner": {
            "account_id": 1000 + qid,
            "reputation": 1234,
            "user_id": 42,
            "user_type": "registered",
            "profile_image": "https://www.gravatar.com/avatar/x?s=256&d=identicon&r=PG",
            "display_name": "J&#246;rg &amp; Co",
            "link": "https://stackoverflow.com/users/42/jorg",
        },
        "is_answered": False,
        "view_count": 12,
        "answer_count": 0,
        "score": 1,
        "last_activity_date": created,
        "creation_date": created,
        "question_id": qid,
        "content_license": "CC BY-SA 4.0",
        "link": f"https://stackoverflow.com/questions/{qid}/why-does-acme-crash",
        "title": f"Why does Acme&#39;s SDK crash on &lt;init&gt; ({qid})?",
        "body": (
            "<p>The <code>acme</code> SDK crashes &amp; burns.</p>\n<pre><code>x = 1\n</code></pre>"
        ),
    }
    item.update(overrides)
    return item


def wrapper(items: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "items": items,
        "has_more": False,
        "quota_max": 300,
        "quota_remaining": 250,
        **fields,
    }


def serve(
    server: LocalServer,
    answer: Callable[[dict[str, str]], Any],
    *,
    status: int = 200,
) -> None:
    """Answer every search with ``answer(query)`` as JSON."""

    async def handler(request: web.Request) -> web.Response:
        document = answer(dict(request.query))
        return web.Response(
            text=json.dumps(document), status=status, content_type="application/json"
        )

    server.route("GET", PATH, handler)


def serve_error(
    server: LocalServer, error_id: int, name: str, message: str, *, status: int = 400
) -> None:
    """Answer every search with Stack Exchange's error wrapper, as the API does (HTTP 400)."""
    server.json(
        PATH,
        {"error_id": error_id, "error_name": name, "error_message": message},
        status=status,
    )


def make_source(
    server: LocalServer,
    fetcher: HttpFetcher,
    *,
    site: str = "stackoverflow",
    key: str | None = None,
    clock: Clock | None = None,
) -> StackExchangeSource:
    settings = SourceSettings(stackexchange_api_url=server.base + "/2.3/", stackexchange_key=key)
    return StackExchangeSource(site, fetcher=fetcher, settings=settings, clock=clock or Clock())


def ids(posts: list[Any]) -> list[str]:
    return [post.external_id for post in posts]


async def test_first_poll_parses_questions_into_posts(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve(local_server, lambda q: wrapper([question(77700002, T0 + 5), question(77700001, T0)]))
    source = make_source(local_server, fetcher)

    result = await source.fetch(SourceState(), ACME)

    assert source.spec == "stackexchange:stackoverflow"
    (request,) = local_server.seen(PATH)
    assert request.query == {
        "q": "acme",
        "site": "stackoverflow",
        "sort": "creation",
        "order": "desc",
        "pagesize": str(PAGE_SIZE),
        "page": "1",
        "filter": "withbody",
    }
    assert "application/json" in request.headers["Accept"]
    assert ids(result.posts) == ["77700002", "77700001"]
    post = result.posts[1]
    assert post.source == "stackexchange:stackoverflow"
    assert post.url == "https://stackoverflow.com/questions/77700001/why-does-acme-crash"
    assert post.author == "Jörg & Co"
    assert post.author_reach == 1234
    assert post.title == "Why does Acme's SDK crash on <init> (77700001)?"
    assert post.text == "The acme SDK crashes & burns. x = 1"
    assert post.published_at == datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    assert post.language is None
    assert post.raw is not None and json.loads(post.raw)["question_id"] == 77700001
    assert not result.not_modified


async def test_localized_site_sets_language_and_excerpt_stands_in_for_body(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    item = question(5, T0, excerpt='Acme <span class="highlight">падает</span>')
    del item["body"]
    item["owner"] = {"user_type": "does_not_exist", "display_name": "гость"}
    serve(local_server, lambda q: wrapper([item]))
    source = make_source(local_server, fetcher, site="ru.stackoverflow")

    (post,) = (await source.fetch(SourceState(), ACME)).posts

    assert local_server.seen(PATH)[0].query["site"] == "ru.stackoverflow"
    assert post.source == "stackexchange:ru.stackoverflow"
    assert post.language == "ru"
    assert post.text == "Acme падает"
    assert post.author == "гость"
    assert post.author_reach is None


async def test_one_query_per_term_and_a_question_found_twice_is_returned_once(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    by_query = {
        "acme": [question(1, T0), question(2, T0 + 1)],
        '"acme cloud"': [question(2, T0 + 1)],
        '"acme.io"': [question(3, T0 + 2)],
    }
    serve(local_server, lambda q: wrapper(by_query[q["q"]]))
    source = make_source(local_server, fetcher)

    result = await source.fetch(
        SourceState(), SearchSpec(terms=("acme", 'acme "cloud"', "acme.io", "acme"))
    )

    assert [r.query["q"] for r in local_server.seen(PATH)] == [
        "acme",
        '"acme cloud"',
        '"acme.io"',
    ]
    assert sorted(ids(result.posts)) == ["1", "2", "3"]


async def test_resume_after_restart_returns_only_new_questions_including_same_second(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    clock = Clock(T0 + 90)
    serve(local_server, lambda q: wrapper([question(11, T0 + 60), question(10, T0)]))
    first = await make_source(local_server, fetcher, clock=clock).fetch(SourceState(), ACME)
    assert ids(first.posts) == ["11", "10"]

    # Oldest first from the overlap before the previous poll: the overlap's questions come
    # back, one new question shares the newest second, one arrived late in the index, one is
    # newer.
    serve(
        local_server,
        lambda q: wrapper(
            [
                question(10, T0),
                question(11, T0 + 60),
                question(12, T0 + 60),
                question(9, T0 + 30),
                question(13, T0 + 90),
            ]
        ),
    )
    clock.now = T0 + 200
    # A new instance, as after a restart.
    restarted = make_source(local_server, fetcher, clock=clock)
    second = await restarted.fetch(first.state, ACME)

    request = local_server.seen(PATH)[-1]
    assert request.query["order"] == "asc"
    assert request.query["fromdate"] == str(T0 + 90 - OVERLAP_SECONDS)
    assert sorted(ids(second.posts)) == ["12", "13", "9"]

    third = await make_source(local_server, fetcher, clock=clock).fetch(second.state, ACME)
    assert third.posts == []
    assert local_server.seen(PATH)[-1].query["fromdate"] == str(T0 + 200 - OVERLAP_SECONDS)


async def test_busy_period_pages_forward_and_continues_next_poll_without_gap(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve(local_server, lambda q: wrapper([question(1, T0)]))
    first = await make_source(local_server, fetcher).fetch(SourceState(), ACME)

    # 500 new questions, two a second, oldest first in pages of 100.
    backlog = [question(100 + n, T0 + 1 + n // 2) for n in range(500)]

    def answer(query: dict[str, str]) -> Any:
        since = int(query["fromdate"])
        matching = [item for item in backlog if item["creation_date"] >= since]
        start = (int(query["page"]) - 1) * PAGE_SIZE
        page = matching[start : start + PAGE_SIZE]
        return wrapper(page, has_more=start + PAGE_SIZE < len(matching))

    serve(local_server, answer)
    returned: list[str] = []
    state = first.state
    for _ in range(3):
        result = await make_source(local_server, fetcher).fetch(state, ACME)
        returned += ids(result.posts)
        state = result.state

    assert len(returned) == len(set(returned))
    assert sorted(returned, key=int) == [str(100 + n) for n in range(500)]
    assert max(int(r.query["page"]) for r in local_server.seen(PATH)) == 3


async def test_backoff_skips_polls_without_a_request_until_it_has_passed(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    by_query = {"acme": [question(1, T0)], "widget": [question(2, T0)]}
    serve(local_server, lambda q: wrapper(by_query[q["q"]], backoff=30))
    terms = SearchSpec(terms=("acme", "widget"))

    first = await make_source(local_server, fetcher, clock=clock).fetch(SourceState(), terms)
    assert ids(first.posts) == ["1"]
    assert len(local_server.seen(PATH)) == 1  # the backoff covers the second term too

    clock.now += 29
    with caplog.at_level(logging.INFO, logger="watchers.stackexchange"):
        skipped = await make_source(local_server, fetcher, clock=clock).fetch(first.state, terms)
    assert skipped.posts == [] and skipped.state == first.state
    assert len(local_server.seen(PATH)) == 1
    assert "backoff" in caplog.text

    clock.now += 2
    serve(local_server, lambda q: wrapper(by_query[q["q"]]))
    resumed = await make_source(local_server, fetcher, clock=clock).fetch(first.state, terms)
    # The term the backoff cut short goes first, from scratch (newest page).
    assert [r.query["q"] for r in local_server.seen(PATH)[1:]] == ["widget", "acme"]
    assert local_server.seen(PATH)[1].query["order"] == "desc"
    assert ids(resumed.posts) == ["2"]


async def test_quota_used_up_keeps_the_posts_then_raises_until_utc_midnight(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    clock = Clock(datetime(2024, 1, 2, 23, 0, tzinfo=UTC).timestamp())
    serve(local_server, lambda q: wrapper([question(1, T0)], quota_remaining=0))
    terms = SearchSpec(terms=("acme", "widget"))

    first = await make_source(local_server, fetcher, clock=clock).fetch(SourceState(), terms)
    assert ids(first.posts) == ["1"]
    assert len(local_server.seen(PATH)) == 1

    clock.now += 600
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher, clock=clock).fetch(first.state, terms)
    assert raised.value.retry_after == pytest.approx(3_000)
    assert "quota" in str(raised.value)
    assert len(local_server.seen(PATH)) == 1

    clock.now += 3_000
    serve(local_server, lambda q: wrapper([]))
    await make_source(local_server, fetcher, clock=clock).fetch(first.state, terms)
    assert len(local_server.seen(PATH)) == 3


async def test_key_is_sent_only_when_configured_and_never_shown(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve(local_server, lambda q: wrapper([]))
    await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    await make_source(local_server, fetcher, key="s3cr3t-key((").fetch(SourceState(), ACME)
    anonymous, keyed = local_server.seen(PATH)
    assert "key" not in anonymous.query
    assert keyed.query["key"] == "s3cr3t-key(("

    serve_error(local_server, 400, "bad_parameter", "key s3cr3t-key(( is not valid")
    with pytest.raises(SourceError) as raised:
        await make_source(local_server, fetcher, key="s3cr3t-key((").fetch(SourceState(), ACME)
    assert "s3cr3t" not in str(raised.value)
    assert "bad_parameter: key *** is not valid" in str(raised.value)


@pytest.mark.parametrize(
    ("message", "retry_after"),
    [
        ("too many requests from this IP, more requests available in 82367 seconds", 82_367.0),
        ("Violation of backoff parameter", None),
    ],
)
async def test_throttle_violation_is_rate_limited(
    local_server: LocalServer, fetcher: HttpFetcher, message: str, retry_after: float | None
) -> None:
    serve_error(local_server, 502, "throttle_violation", message)
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert raised.value.retry_after == retry_after
    assert raised.value.status == 400
    assert f"throttle_violation: {message}" in str(raised.value)
    assert len(local_server.seen(PATH)) == 1  # a throttle is not hammered with quick retries


@pytest.mark.parametrize(
    ("error_id", "name", "blocked"),
    [
        (403, "access_denied", True),
        (401, "access_token_required", True),
        (402, "invalid_access_token", True),
        (406, "access_token_compromised", True),
        (405, "key_required", True),
        (400, "key_invalid", True),
        (400, "bad_parameter", False),
        (404, "no_method", False),
        (500, "internal_error", False),
        (503, "temporarily_unavailable", False),
    ],
)
async def test_api_errors(
    local_server: LocalServer, fetcher: HttpFetcher, error_id: int, name: str, blocked: bool
) -> None:
    serve_error(local_server, error_id, name, "No site found for name `stackoverfow`")
    with pytest.raises(SourceError) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert isinstance(raised.value, SourceBlocked) is blocked
    assert not isinstance(raised.value, RateLimited)
    assert f"{name}: No site found for name `stackoverfow`" in str(raised.value)


async def test_long_error_message_is_capped(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_error(local_server, 400, "bad_parameter", "q " + "x" * 5_000)
    with pytest.raises(SourceError, match="bad_parameter") as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert len(str(raised.value)) < 400


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, b"Bad Request"), (400, b'{"message": "nope"}'), (502, b""), (404, b"[1, 2]")],
)
async def test_error_status_without_an_error_document_keeps_the_status(
    local_server: LocalServer, fetcher: HttpFetcher, status: int, body: bytes
) -> None:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="text/plain")

    local_server.route("GET", PATH, handler)
    with pytest.raises(SourceError, match=f"HTTP {status}") as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert not isinstance(raised.value, SourceBlocked)


async def test_malformed_question_is_skipped_and_the_rest_kept(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    broken = question(2, T0)
    broken["creation_date"] = "yesterday"
    serve(local_server, lambda q: wrapper([question(1, T0), broken, "nonsense", question(3, T0)]))
    with caplog.at_level(logging.WARNING, logger="watchers.stackexchange"):
        result = await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert ids(result.posts) == ["1", "3"]
    assert caplog.text.count("skipping malformed question") == 2


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"quota_max": 300, "quota_remaining": 299},
        {"items": {"question_id": 1}, "has_more": False},
    ],
)
async def test_unexpected_shapes_are_errors(
    local_server: LocalServer, fetcher: HttpFetcher, document: Any
) -> None:
    serve(local_server, lambda q: document)
    with pytest.raises(SourceError, match="unexpected answer"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_unreadable_cursor_starts_over(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    serve(local_server, lambda q: wrapper([question(1, T0)]))
    with caplog.at_level(logging.WARNING, logger="watchers.stackexchange"):
        result = await make_source(local_server, fetcher).fetch(
            SourceState(cursor='{"terms": {"acme": {"newest": "soon"}}}'), ACME
        )
    assert ids(result.posts) == ["1"]
    assert local_server.seen(PATH)[0].query["order"] == "desc"
    assert "unreadable cursor" in caplog.text


# Faults --------------------------------------------------------------------------------------


async def test_timeout(local_server: LocalServer) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response(wrapper([]))

    local_server.route("GET", PATH, slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await make_source(local_server, quick).fetch(SourceState(), ACME)


async def test_server_error(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    serve(local_server, lambda q: {}, status=500)
    with pytest.raises(SourceError, match="HTTP 500"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_429_with_retry_after(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    local_server.json(PATH, {}, status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert raised.value.retry_after == 120


async def test_403_is_blocked(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    local_server.json(PATH, {}, status=403)
    with pytest.raises(SourceBlocked):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_html_page_is_blocked(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><body>Human verification</body></html>",
            content_type="text/html",
        )

    local_server.route("GET", PATH, page)
    with pytest.raises(SourceBlocked, match="HTML"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


@pytest.mark.parametrize("body", ['{"items": [', "", 'earful({"items": []})'])
async def test_malformed_json(local_server: LocalServer, fetcher: HttpFetcher, body: str) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    local_server.route("GET", PATH, broken)
    with pytest.raises(SourceError, match="malformed JSON"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_truncated_body(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "5000"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(json.dumps(wrapper([question(1, T0)])).encode()[:200])
        request.transport.close()  # type: ignore[union-attr]
        return response

    local_server.route("GET", PATH, truncated)
    with pytest.raises(SourceError):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_oversized_body(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    huge = wrapper([question(n, T0, body="<p>" + "acme " * 2_000 + "</p>") for n in range(30)])
    serve(local_server, lambda q: huge)
    with pytest.raises(SourceError, match="larger than"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
