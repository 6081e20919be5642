"""MastodonSource against a local server playing a Mastodon instance's REST API.

The fake pages like Mastodon: statuses newest first, ``max_id``/``since_id`` as bounds, ``min_id``
as "the statuses immediately newer than this id", a ``Link`` header, ``X-RateLimit-*`` headers
on every answer and ``{"error": "..."}`` bodies on errors (shapes from docs.joinmastodon.org).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from tests.support.local_http import LocalServer, local_policy
from watchers.base import RAW_PAYLOAD_CAP, SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.http import HttpBlocked, HttpFetcher, RateLimited, UnsafeURLError
from watchers.mastodon import MastodonSource
from watchers.source_settings import SourceSettings

TOKEN = "mastodon-test-token-do-not-log"

# Whether HttpFetcher hands the headers and body of an error response to its callers; the
# instance's own error message, a 429's X-RateLimit-Reset and the JSON-or-HTML 404 depend on it.
FETCHER_KEEPS_ERROR_RESPONSES = hasattr(HttpBlocked("probe", status=400), "body")
needs_error_responses = pytest.mark.xfail(
    not FETCHER_KEEPS_ERROR_RESPONSES,
    strict=True,
    reason="HttpFetcher does not pass on the headers and body of error responses",
)


def status(
    status_id: int | str,
    *,
    content: str = "<p>Loving <a href='https://m.example/tags/acme' class='mention hashtag'>"
    "#<span>acme</span></a> today</p>",
    acct: str = "alice",
    followers: int = 120,
    created_at: str = "2024-05-01T10:00:00.000Z",
    language: str | None = "en",
    spoiler_text: str = "",
    visibility: str = "public",
    reblog: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Status entity with the fields Mastodon 4.x sends (see docs.joinmastodon.org, Status)."""
    username = acct.split("@", 1)[0]
    domain = acct.split("@", 1)[1] if "@" in acct else "m.example"
    return {
        "id": str(status_id),
        "created_at": created_at,
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "sensitive": bool(spoiler_text),
        "spoiler_text": spoiler_text,
        "visibility": visibility,
        "language": language,
        "uri": f"https://{domain}/users/{username}/statuses/{status_id}",
        "url": f"https://{domain}/@{username}/{status_id}",
        "replies_count": 0,
        "reblogs_count": 1,
        "favourites_count": 3,
        "edited_at": None,
        "content": "" if reblog else content,
        "reblog": reblog,
        "application": None,
        "account": {
            "id": "109",
            "username": username,
            "acct": acct,
            "display_name": username.title(),
            "locked": False,
            "bot": False,
            "discoverable": True,
            "group": False,
            "created_at": "2022-11-01T00:00:00.000Z",
            "note": "<p>hi</p>",
            "url": f"https://{domain}/@{username}",
            "avatar": f"https://{domain}/avatars/original/missing.png",
            "avatar_static": f"https://{domain}/avatars/original/missing.png",
            "header": f"https://{domain}/headers/original/missing.png",
            "header_static": f"https://{domain}/headers/original/missing.png",
            "followers_count": followers,
            "following_count": 7,
            "statuses_count": 42,
            "last_status_at": "2024-05-01",
            "emojis": [],
            "fields": [],
        },
        "media_attachments": [],
        "mentions": [],
        "tags": [{"name": "acme", "url": "https://m.example/tags/acme"}],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def reset_header(seconds: float = 240) -> str:
    # Mastodon's rack-attack sends the window's end as ISO 8601 with microseconds.
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


@dataclass
class FakeInstance:
    """A Mastodon instance's hashtag timelines and search, paging the way Mastodon does."""

    server: LocalServer
    tags: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    searchable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def spec_argument(self) -> str:
        return self.server.base  # "http://127.0.0.1:<port>", as the registry stores it

    def tag(self, name: str, statuses: list[dict[str, Any]]) -> None:
        self.tags[name] = statuses
        self.server.route("GET", f"/api/v1/timelines/tag/{name}", self._timeline(name))

    def search(self, statuses: list[dict[str, Any]]) -> None:
        self.searchable = statuses
        self.server.route("GET", "/api/v2/search", self._search)

    def _timeline(self, name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            page = paginate(self.tags[name], request.query)
            headers = {"X-RateLimit-Remaining": "299", "X-RateLimit-Reset": reset_header()}
            if page:
                base = f"{self.server.base}{request.path}"
                headers["Link"] = (
                    f'<{base}?max_id={page[-1]["id"]}>; rel="next", '
                    f'<{base}?min_id={page[0]["id"]}>; rel="prev"'
                )
            return web.json_response(page, headers=headers)

        return handler

    async def _search(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "The access token is invalid"}, status=401)
        words = request.query["q"].strip('"').lower()
        matching = [s for s in self.searchable if words in s["content"].lower()]
        ordered = sorted(matching, key=lambda s: int(s["id"]), reverse=True)
        if "min_id" in request.query:
            # Mastodon turns min_id into a date filter, which lets the cursor status through.
            ordered = [s for s in ordered if int(s["id"]) >= int(request.query["min_id"])]
        offset = int(request.query.get("offset", 0))
        limit = min(int(request.query.get("limit", 20)), 40)
        page = ordered[offset : offset + limit]
        return web.json_response({"accounts": [], "statuses": page, "hashtags": []})


def paginate(statuses: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
    ordered = sorted(statuses, key=lambda s: int(s["id"]), reverse=True)
    limit = min(int(query.get("limit", 20)), 40)
    if "max_id" in query:
        ordered = [s for s in ordered if int(s["id"]) < int(query["max_id"])]
    if "since_id" in query:
        ordered = [s for s in ordered if int(s["id"]) > int(query["since_id"])]
    if "min_id" in query:
        newer = [s for s in ordered if int(s["id"]) > int(query["min_id"])]
        return newer[-limit:]
    return ordered[:limit]


@pytest.fixture
def instance(local_server: LocalServer) -> FakeInstance:
    return FakeInstance(local_server)


def source(
    instance: FakeInstance,
    fetcher: HttpFetcher,
    *,
    token: str | None = None,
    token_instance: str | None = None,
) -> MastodonSource:
    bound = token_instance if token_instance is not None else instance.spec_argument
    settings = SourceSettings(mastodon_access_token=token, mastodon_instance=bound)
    return MastodonSource(instance.spec_argument, fetcher=fetcher, settings=settings)


async def test_token_is_never_sent_to_another_instance(
    instance: FakeInstance, fetcher: HttpFetcher, local_server: LocalServer
) -> None:
    polled = source(instance, fetcher, token="secret-token", token_instance="mastodon.social")
    with contextlib.suppress(SourceError):
        await polled.fetch(SourceState(), ACME)
    assert local_server.requests, "the hashtag timeline is still polled"
    for request in local_server.requests:
        assert "secret-token" not in str(request.headers)
        assert "/api/v2/search" not in request.path


ACME = SearchSpec(terms=("acme",))


def ids(posts: list[Any]) -> list[str]:
    return [post.external_id.rsplit("/", 1)[1] for post in posts]


# --- parsing -------------------------------------------------------------------------------


async def test_hashtag_statuses_become_posts(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    local = status(
        "110000000000000002",
        content="<p>Acme &amp; friends<br>rock</p><script>x()</script>",
        created_at="2024-05-01T12:30:00.123+02:00",
        spoiler_text="  product  talk ",
        language="EN",
    )
    boosted = status("110000000000000001", acct="bob@other.example", followers=5_000)
    boost = status("110000000000000003", acct="carol", reblog=boosted)
    instance.tag("acme", [local, boost])

    result = await source(instance, fetcher).fetch(SourceState(), ACME)

    by_author = {post.author: post for post in result.posts}
    assert set(by_author) == {"alice@127.0.0.1", "bob@other.example"}
    post = by_author["alice@127.0.0.1"]
    assert post.source == f"mastodon:{instance.server.base}"
    assert post.external_id == "https://m.example/users/alice/statuses/110000000000000002"
    assert post.url == "https://m.example/@alice/110000000000000002"
    assert post.author_reach == 120
    assert post.title is None
    assert post.text == "product talk\n\nAcme & friends rock"
    assert post.language == "en"
    assert post.published_at == datetime(2024, 5, 1, 10, 30, 0, 123000, tzinfo=UTC)
    assert post.raw is not None and json.loads(post.raw)["id"] == "110000000000000002"
    # A boost is the boosted status, by its author; the booster's id is still the cursor.
    reblogged = by_author["bob@other.example"]
    assert reblogged.external_id == "https://other.example/users/bob/statuses/110000000000000001"
    assert reblogged.author_reach == 5_000
    assert reblogged.text == "Loving #acme today"
    assert json.loads(result.state.cursor or "") == {"tag:acme": "110000000000000003"}


async def test_long_content_and_raw_are_capped(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.tag("acme", [status(1, content="<p>" + "acme " * 10_000 + "</p>")])
    [post] = (await source(instance, fetcher).fetch(SourceState(), ACME)).posts
    assert len(post.text) == 20_000
    assert post.raw is not None and len(post.raw) == RAW_PAYLOAD_CAP


async def test_one_malformed_status_is_skipped_and_logged(
    instance: FakeInstance, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    broken = status(2)
    del broken["account"]
    page = [status(3), "not a status", broken, status(1)]
    instance.server.json("/api/v1/timelines/tag/acme", page)
    with caplog.at_level(logging.WARNING, logger="watchers.mastodon"):
        result = await source(instance, fetcher).fetch(SourceState(), ACME)
    assert sorted(ids(result.posts)) == ["1", "3"]
    assert any(record.exc_info for record in caplog.records)
    # The broken status still moves the cursor, so it is not retried (and logged) every poll.
    assert json.loads(result.state.cursor or "") == {"tag:acme": "3"}


async def test_ids_are_compared_as_numbers(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    instance.tag("acme", [status(9), status(10), status(8)])
    result = await source(instance, fetcher).fetch(SourceState(), ACME)
    assert json.loads(result.state.cursor or "") == {"tag:acme": "10"}


# --- query building ------------------------------------------------------------------------


async def test_single_words_are_followed_as_hashtags_without_a_token(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.tag("acme", [status(1)])
    instance.tag("acmecloud", [status(2, content="<p>#AcmeCloud</p>")])
    instance.search([status(3)])
    terms = SearchSpec(terms=("Acme", "acme cloud", "#AcmeCloud", "2024", "acme.io", "ACME"))

    result = await source(instance, fetcher).fetch(SourceState(), terms)

    paths = [request.path for request in instance.server.requests]
    assert paths == ["/api/v1/timelines/tag/acme", "/api/v1/timelines/tag/acmecloud"]
    assert instance.server.requests[0].query == {"limit": "40"}
    assert all("Authorization" not in r.headers for r in instance.server.requests)
    assert sorted(ids(result.posts)) == ["1", "2"]


async def test_phrases_only_without_a_token_is_an_error_not_silence(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    with pytest.raises(SourceError, match="MASTODON_ACCESS_TOKEN"):
        await source(instance, fetcher).fetch(SourceState(), SearchSpec(terms=("acme cloud",)))
    assert instance.server.requests == []


async def test_token_adds_search_for_words_and_phrases(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.tag("acme", [status(1), status(2)])
    instance.search(
        [
            status(2),  # also on the hashtag timeline: one post
            status(5, content="<p>we moved to acme cloud</p>"),
            status(6, content="<p>acme cloud for friends</p>", visibility="private"),
            status(7, content="<p>acme cloud in a DM</p>", visibility="direct"),
        ]
    )
    terms = SearchSpec(terms=("acme", "acme cloud"))

    result = await source(instance, fetcher, token=TOKEN).fetch(SourceState(), terms)

    searches = instance.server.seen("/api/v2/search")
    assert [r.query for r in searches] == [
        {"q": "acme", "type": "statuses", "resolve": "false", "limit": "40"},
        {"q": '"acme cloud"', "type": "statuses", "resolve": "false", "limit": "40"},
    ]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in searches)
    # Hashtag timelines are public; the token is only sent where it is needed.
    [tag_request] = instance.server.seen("/api/v1/timelines/tag/acme")
    assert "Authorization" not in tag_request.headers
    # Followers-only and direct statuses the token may see never become posts.
    assert sorted(ids(result.posts)) == ["1", "2", "5"]
    assert json.loads(result.state.cursor or "") == {
        'search:"acme cloud"': "7",
        "search:acme": "7",
        "tag:acme": "2",
    }


# --- resuming ------------------------------------------------------------------------------


async def test_first_poll_takes_the_newest_page_only(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.tag("acme", [status(n) for n in range(1, 101)])
    result = await source(instance, fetcher).fetch(SourceState(), ACME)
    assert len(instance.server.requests) == 1
    assert sorted(map(int, ids(result.posts))) == list(range(61, 101))


async def test_restart_returns_only_new_statuses(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    statuses = [status(n) for n in (10, 11)]
    instance.tag("acme", statuses)
    first = await source(instance, fetcher).fetch(SourceState(), ACME)
    assert sorted(ids(first.posts)) == ["10", "11"]

    statuses += [status(12), status(13)]
    instance.server.requests.clear()
    second = await source(instance, fetcher).fetch(first.state, ACME)  # a new instance

    assert sorted(ids(second.posts)) == ["12", "13"]
    assert instance.server.requests[0].query == {"limit": "40", "min_id": "11"}
    third = await source(instance, fetcher).fetch(second.state, ACME)
    assert third.posts == []
    assert third.state.cursor == second.state.cursor


async def test_a_burst_is_paged_forward_and_finished_next_poll_without_gaps(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    statuses = [status(1)]
    instance.tag("acme", statuses)
    first = await source(instance, fetcher).fetch(SourceState(), ACME)

    statuses += [status(n) for n in range(2, 252)]  # 250 new: more than 5 pages of 40
    second = await source(instance, fetcher).fetch(first.state, ACME)
    third = await source(instance, fetcher).fetch(second.state, ACME)

    assert sorted(map(int, ids(second.posts))) == list(range(2, 202))
    assert sorted(map(int, ids(third.posts))) == list(range(202, 252))


async def test_search_resumes_past_the_cursor_status_it_gets_back(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    found = [status(n, content="<p>acme cloud</p>") for n in (1, 2)]
    instance.search(found)
    phrase = SearchSpec(terms=("acme cloud",))
    first = await source(instance, fetcher, token=TOKEN).fetch(SourceState(), phrase)
    assert sorted(ids(first.posts)) == ["1", "2"]

    found += [status(n, content="<p>acme cloud</p>") for n in range(3, 90)]
    second = await source(instance, fetcher, token=TOKEN).fetch(first.state, phrase)

    assert sorted(map(int, ids(second.posts))) == list(range(3, 90))
    pages = [r.query for r in instance.server.seen("/api/v2/search")][1:]
    assert [(p["min_id"], p.get("offset")) for p in pages] == [
        ("2", None),
        ("2", "40"),
        ("2", "80"),
    ]


async def test_unreadable_cursor_starts_afresh(
    instance: FakeInstance, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    instance.tag("acme", [status(1)])
    with caplog.at_level(logging.WARNING, logger="watchers.mastodon"):
        result = await source(instance, fetcher).fetch(SourceState(cursor="[oops"), ACME)
    assert ids(result.posts) == ["1"]
    assert "unreadable cursor" in caplog.text


# --- the instance is user-supplied ---------------------------------------------------------


def test_spec_and_base_url_follow_the_registry_forms(fetcher: HttpFetcher) -> None:
    settings = SourceSettings()
    bare = MastodonSource("mastodon.social", fetcher=fetcher, settings=settings)
    assert (bare.spec, bare.base_url) == ("mastodon:mastodon.social", "https://mastodon.social")
    full = MastodonSource("http://10.1.2.3:8080", fetcher=fetcher, settings=settings)
    assert (full.spec, full.base_url) == ("mastodon:http://10.1.2.3:8080", "http://10.1.2.3:8080")


async def test_private_instance_is_refused_by_the_fetchers_guard(instance: FakeInstance) -> None:
    instance.tag("acme", [status(1)])
    async with HttpFetcher(local_policy(allow_private=False)) as guarded:
        with pytest.raises(UnsafeURLError, match="loopback"):
            await source(instance, guarded).fetch(SourceState(), ACME)
    assert instance.server.requests == []


# --- faults --------------------------------------------------------------------------------


async def test_timeout(instance: FakeInstance) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response([])

    instance.server.route("GET", "/api/v1/timelines/tag/acme", slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await source(instance, quick).fetch(SourceState(), ACME)


async def test_server_error(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    instance.server.json("/api/v1/timelines/tag/acme", {"error": "boom"}, status=500)
    with pytest.raises(SourceError, match="HTTP 500") as caught:
        await source(instance, fetcher).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_429_with_retry_after(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    instance.server.json(
        "/api/v1/timelines/tag/acme",
        {"error": "Too many requests"},
        status=429,
        headers={"Retry-After": "90"},
    )
    with pytest.raises(RateLimited) as caught:
        await source(instance, fetcher).fetch(SourceState(), ACME)
    assert caught.value.retry_after == 90


async def test_429_waits_for_the_reset_the_instance_announced(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    # Mastodon's 429 has no Retry-After; the previous answer's X-RateLimit-Reset says when.
    instance.tag("acme", [status(1)])
    instance.server.json("/api/v1/timelines/tag/widget", {"error": "Too many requests"}, status=429)
    terms = SearchSpec(terms=("acme", "widget"))
    with pytest.raises(RateLimited, match="retry after") as caught:
        await source(instance, fetcher).fetch(SourceState(), terms)
    assert caught.value.retry_after is not None
    assert 200 <= caught.value.retry_after <= 240


@needs_error_responses
async def test_429_reads_x_ratelimit_reset(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    instance.server.json(
        "/api/v1/timelines/tag/acme",
        {"error": "Too many requests"},
        status=429,
        headers={"X-RateLimit-Reset": reset_header(120), "X-RateLimit-Remaining": "0"},
    )
    with pytest.raises(RateLimited) as caught:
        await source(instance, fetcher).fetch(SourceState(), ACME)
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120


async def test_401_on_a_hashtag_is_blocked(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    instance.server.json(
        "/api/v1/timelines/tag/acme",
        {"error": "This API requires an authenticated user"},
        status=401,
    )
    with pytest.raises(SourceBlocked, match=r"refused #acme \(HTTP 401") as caught:
        await source(instance, fetcher).fetch(SourceState(), ACME)
    assert "logged-in" in str(caught.value)


async def test_refused_token_is_blocked_and_not_echoed(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.search([status(1)])
    with pytest.raises(SourceBlocked, match="MASTODON_ACCESS_TOKEN") as caught:
        await source(instance, fetcher, token="wrong-token").fetch(
            SourceState(), SearchSpec(terms=("acme cloud",))
        )
    assert "wrong-token" not in str(caught.value)


@needs_error_responses
async def test_blocked_message_carries_the_instances_reason(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.search([status(1)])
    with pytest.raises(SourceBlocked, match="The access token is invalid"):
        await source(instance, fetcher, token="wrong-token").fetch(
            SourceState(), SearchSpec(terms=("acme cloud",))
        )


async def test_403_login_wall_is_blocked(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    async def wall(_: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><body>Please log in</body></html>",
            status=403,
            content_type="text/html",
        )

    instance.server.route("GET", "/api/v1/timelines/tag/acme", wall)
    with pytest.raises(SourceBlocked, match="HTTP 403"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


async def test_html_instead_of_json_is_blocked(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Just a moment…</body></html>", content_type="text/html"
        )

    instance.server.route("GET", "/api/v1/timelines/tag/acme", page)
    with pytest.raises(SourceBlocked, match="HTML page"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


@needs_error_responses
async def test_json_404_for_an_unused_tag_is_an_empty_tag(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.tag("acme", [status(1)])
    instance.server.json("/api/v1/timelines/tag/widget", {"error": "Record not found"}, status=404)
    result = await source(instance, fetcher).fetch(
        SourceState(), SearchSpec(terms=("acme", "widget"))
    )
    assert ids(result.posts) == ["1"]
    assert json.loads(result.state.cursor or "") == {"tag:acme": "1"}


async def test_html_404_is_an_error(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    async def missing(_: web.Request) -> web.Response:
        return web.Response(text="<html>Not Found</html>", status=404, content_type="text/html")

    instance.server.route("GET", "/api/v1/timelines/tag/acme", missing)
    with pytest.raises(SourceError, match="HTTP 404"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


async def test_error_body_with_200_is_an_error(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.server.json("/api/v1/timelines/tag/acme", {"error": "Search is disabled"})
    with pytest.raises(SourceError, match="Search is disabled"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


@pytest.mark.parametrize(
    "document",
    [{"statuses": []}, "acme", 42, None],
    ids=["object", "string", "number", "null"],
)
async def test_unexpected_shapes_are_errors(
    instance: FakeInstance, fetcher: HttpFetcher, document: Any
) -> None:
    instance.server.json("/api/v1/timelines/tag/acme", document)
    with pytest.raises(SourceError, match="not a list of statuses"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


async def test_search_without_statuses_list_is_an_error(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    instance.server.json("/api/v2/search", {"accounts": [], "hashtags": []})
    with pytest.raises(SourceError, match="not a list of statuses"):
        await source(instance, fetcher, token=TOKEN).fetch(
            SourceState(), SearchSpec(terms=("acme cloud",))
        )


async def test_malformed_json(instance: FakeInstance, fetcher: HttpFetcher) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(text='[{"id": "1", "content": ', content_type="application/json")

    instance.server.route("GET", "/api/v1/timelines/tag/acme", broken)
    with pytest.raises(SourceError, match="malformed JSON"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


async def test_body_shorter_than_its_content_length(
    instance: FakeInstance, fetcher: HttpFetcher
) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 5_000
        response.force_close()
        await response.prepare(request)
        await response.write(b'[{"id": "1"')
        return response

    instance.server.route("GET", "/api/v1/timelines/tag/acme", cut)
    with pytest.raises(SourceError, match=r"broke mid-response|malformed JSON"):
        await source(instance, fetcher).fetch(SourceState(), ACME)


async def test_oversized_body(instance: FakeInstance) -> None:
    instance.tag("acme", [status(n, content="<p>" + "x" * 5_000 + "</p>") for n in range(40)])
    async with HttpFetcher(local_policy(max_bytes=50_000)) as small:
        with pytest.raises(SourceError, match="larger than 50000 bytes"):
            await source(instance, small).fetch(SourceState(), ACME)
