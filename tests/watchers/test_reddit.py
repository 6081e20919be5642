"""RedditSource against a local server that answers like Reddit's JSON listings and OAuth API."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from tests.support.local_http import LocalServer, local_policy
from watchers import reddit
from watchers.base import SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.http import HttpFetcher, RateLimited
from watchers.reddit import LOOKBACK_SECONDS, MAX_PAGES, MAX_QUERY_LENGTH, RedditSource
from watchers.source_settings import SourceSettings

NOW = 1_717_000_000.0
USER_AGENT = "EarfulTest/1.0 (by u/earful-tests)"
SECRET = "s3cr3t-value"
ACME = SearchSpec(terms=("acme",))
SUB = "python"


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def t3(number: int) -> str:
    return "t3_" + base36(1_000_000 + number)


def link(
    number: int,
    created: float,
    title: str,
    *,
    sub: str = SUB,
    selftext: str = "",
    url: str | None = None,
    author: str = "alice",
    score: int = 5,
) -> dict[str, Any]:
    """A post (t3) as listings return it, with a realistic subset of its fields."""
    id36 = t3(number).removeprefix("t3_")
    permalink = f"/r/{sub}/comments/{id36}/some_title/"
    return {
        "kind": "t3",
        "data": {
            "approved_at_utc": None,
            "subreddit": sub,
            "selftext": selftext,
            "author_fullname": "t2_abc12",
            "title": title,
            "subreddit_name_prefixed": f"r/{sub}",
            "name": f"t3_{id36}",
            "score": score,
            "ups": score,
            "upvote_ratio": 1.0,
            "is_self": url is None,
            "created": created,
            "created_utc": created,
            "selftext_html": f'<!-- SC_OFF --><div class="md"><p>{selftext}</p></div>'
            if selftext
            else None,
            "id": id36,
            "author": author,
            "num_comments": 0,
            "permalink": permalink,
            "url": url or f"https://www.reddit.com{permalink}",
            "over_18": False,
            "subreddit_id": "t5_2qh0y",
        },
    }


def reply(
    number: int,
    created: float,
    body: str,
    *,
    sub: str = SUB,
    link_title: str = "Acme released a thing",
    author: str = "bob",
    score: int = 3,
) -> dict[str, Any]:
    """A comment (t1) as a subreddit's comments listing returns it."""
    id36 = base36(50_000_000 + number)
    return {
        "kind": "t1",
        "data": {
            "subreddit_id": "t5_2qh0y",
            "link_title": link_title,
            "link_id": "t3_lnk001",
            "link_author": "carol",
            "author": author,
            "name": f"t1_{id36}",
            "id": id36,
            "parent_id": "t3_lnk001",
            "body": body,
            "body_html": f'<div class="md"><p>{body}</p></div>',
            "score": score,
            "ups": score,
            "created": created,
            "created_utc": created,
            "permalink": f"/r/{sub}/comments/lnk001/acme_released_a_thing/{id36}/",
            "link_permalink": f"https://www.reddit.com/r/{sub}/comments/lnk001/acme/",
            "subreddit": sub,
            "subreddit_name_prefixed": f"r/{sub}",
        },
    }


def listing_page(things: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """One Listing slice of ``things`` (newest first) for limit/before/after, as Reddit does."""
    limit = int(query.get("limit", "25"))
    names = [thing["data"]["name"] for thing in things]
    before = after = None
    if "before" in query:
        if query["before"] not in names:
            chunk: list[dict[str, Any]] = []  # a deleted anchor: an empty page
        else:
            newer = things[: names.index(query["before"])]
            chunk = newer[-limit:]
            before = chunk[0]["data"]["name"] if len(newer) > limit else None
            after = chunk[-1]["data"]["name"] if chunk else None
    elif "after" in query:
        if query["after"] not in names:
            chunk = []
        else:
            older = things[names.index(query["after"]) + 1 :]
            chunk = older[:limit]
            after = chunk[-1]["data"]["name"] if len(older) > limit else None
            before = chunk[0]["data"]["name"] if chunk else None
    else:
        chunk = things[:limit]
        after = chunk[-1]["data"]["name"] if len(things) > limit else None
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(chunk),
            "modhash": "",
            "geo_filter": "",
            "children": chunk,
            "before": before,
        },
    }


@dataclass
class FakeReddit:
    """Posts and comments of every subreddit, served as www JSON listings and as the OAuth API."""

    server: LocalServer
    things: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # issued, newest last
    expires_in: int = 86_400
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every listing

    def add(self, *things: dict[str, Any]) -> None:
        self.things.extend(things)

    def remove(self, name: str) -> None:
        self.things = [t for t in self.things if t["data"]["name"] != name]

    def newest_first(self, kind: str, sub: str | None = None) -> list[dict[str, Any]]:
        selected = [
            t
            for t in self.things
            if t["kind"] == kind and (sub is None or t["data"]["subreddit"] == sub)
        ]
        return sorted(
            selected,
            key=lambda t: (t["data"]["created_utc"], int(t["data"]["id"], 36)),
            reverse=True,
        )

    def _respond(self, request: web.Request, document: Any) -> web.Response:
        if request.path.startswith("/oauth/"):
            authorization = request.headers.get("Authorization", "")
            if not self.tokens or authorization != f"bearer {self.tokens[-1]}":
                return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        date = format_datetime(datetime.fromtimestamp(NOW, UTC), usegmt=True)
        return web.json_response(document, headers={"Date": date, **self.headers})

    def install(self, sub: str = SUB) -> None:
        async def new(request: web.Request) -> web.Response:
            return self._respond(request, listing_page(self.newest_first("t3", sub), request.query))

        async def comments(request: web.Request) -> web.Response:
            return self._respond(request, listing_page(self.newest_first("t1", sub), request.query))

        async def search(request: web.Request) -> web.Response:
            wanted = [t.strip('"').lower() for t in request.query["q"].split(" OR ")]
            hits = [
                t
                for t in self.newest_first("t3")
                if any(
                    w in (t["data"]["title"] + " " + t["data"]["selftext"]).lower() for w in wanted
                )
            ]
            return self._respond(request, listing_page(hits, request.query))

        async def token(request: web.Request) -> web.Response:
            self.tokens.append(f"token-{len(self.tokens) + 1}")
            return web.json_response(
                {
                    "access_token": self.tokens[-1],
                    "token_type": "bearer",
                    "expires_in": self.expires_in,
                    "scope": "*",
                }
            )

        for prefix, suffix in (("/www/", ".json"), ("/oauth/", "")):
            self.server.route("GET", f"{prefix}r/{sub}/new{suffix}", new)
            self.server.route("GET", f"{prefix}r/{sub}/comments{suffix}", comments)
            self.server.route("GET", f"{prefix}search{suffix}", search)
        self.server.route("POST", "/www/api/v1/access_token", token)


@pytest.fixture(autouse=True)
def fresh_token_cache() -> Iterator[None]:
    # Ports are reused between tests, so a token cached by one test could reach another.
    reddit._tokens.clear()
    yield
    reddit._tokens.clear()


@pytest.fixture
def fake(local_server: LocalServer) -> FakeReddit:
    fake = FakeReddit(local_server)
    fake.install()
    return fake


@pytest.fixture
def settings(local_server: LocalServer) -> SourceSettings:
    return SourceSettings(
        user_agent=USER_AGENT,
        reddit_url=local_server.base + "/www/",
        reddit_oauth_url=local_server.base + "/oauth/",
    )


@pytest.fixture
def oauth_settings(local_server: LocalServer) -> SourceSettings:
    return SourceSettings(
        user_agent=USER_AGENT,
        reddit_url=local_server.base + "/www/",
        reddit_oauth_url=local_server.base + "/oauth/",
        reddit_client_id="client-id-1",
        reddit_client_secret=SECRET,
    )


def subreddit(fetcher: HttpFetcher, settings: SourceSettings, sub: str = SUB) -> RedditSource:
    return RedditSource(f"r/{sub}", fetcher=fetcher, settings=settings)


def sitewide(fetcher: HttpFetcher, settings: SourceSettings) -> RedditSource:
    return RedditSource(None, fetcher=fetcher, settings=settings)


def listing_requests(server: LocalServer) -> list[tuple[str, dict[str, str]]]:
    return [(r.path, r.query) for r in server.requests if "access_token" not in r.path]


async def test_subreddit_posts_and_comments_become_posts(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    fake.add(
        link(
            1, NOW - 30, "Acme  is  great", selftext="I **love** it &amp; more\n\nReally", score=42
        ),
        link(2, NOW - 20, "Look at this", url="https://acme.example/blog", author="[deleted]"),
        reply(3, NOW - 10, "Acme support\nanswered fast", score=-2),
    )
    source = subreddit(fetcher, settings)
    result = await source.fetch(SourceState(), ACME)

    assert source.spec == "reddit:r/python"
    comment_post, link_post, self_post = result.posts  # newest first
    assert self_post.source == "reddit:r/python"
    assert self_post.external_id == t3(1)
    assert self_post.url == f"https://www.reddit.com/r/python/comments/{t3(1)[3:]}/some_title/"
    assert self_post.author == "alice"
    assert self_post.author_reach == 42
    assert self_post.title == "Acme is great"
    assert self_post.text == "I **love** it &amp; more Really"  # raw_json=1: text as written
    assert self_post.published_at == datetime.fromtimestamp(NOW - 30, UTC)
    assert self_post.published_at is not None and self_post.published_at.tzinfo is UTC
    assert self_post.language is None
    assert self_post.raw is not None
    assert json.loads(self_post.raw)["data"]["name"] == t3(1)

    assert link_post.author is None  # deleted account
    assert link_post.text == "https://acme.example/blog"  # the link target stays matchable

    assert comment_post.external_id.startswith("t1_")
    assert comment_post.title == "Re: Acme released a thing"
    assert comment_post.text == "Acme support answered fast"
    assert comment_post.author == "bob"
    assert comment_post.author_reach == -2
    assert comment_post.url is not None
    assert comment_post.url.startswith("https://www.reddit.com/r/python/comments/lnk001/")

    seen = local_server.requests
    assert [r.path for r in seen] == ["/www/r/python/new.json", "/www/r/python/comments.json"]
    for request in seen:
        assert request.query == {"limit": "100", "raw_json": "1"}
        assert request.headers["User-Agent"] == USER_AGENT
        assert "Authorization" not in request.headers


async def test_sitewide_search_asks_for_new_posts_matching_any_term(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    fake.add(
        link(1, NOW - 3, "Acme Cloud outage", sub="sysadmin"),
        link(2, NOW - 2, "Widgetco hiring", sub="jobs"),
        link(3, NOW - 1, "Unrelated", sub="jobs"),
    )
    spec = SearchSpec(terms=("acme cloud", "Widgetco"))
    result = await sitewide(fetcher, settings).fetch(SourceState(), spec)

    assert [p.external_id for p in result.posts] == [t3(2), t3(1)]
    assert all(p.source == "reddit" for p in result.posts)
    (request,) = local_server.requests
    assert request.path == "/www/search.json"
    assert request.query == {
        "q": '"acme cloud" OR Widgetco',
        "sort": "new",
        "type": "link",
        "include_over_18": "on",
        "limit": "100",
        "raw_json": "1",
    }
    assert request.headers["User-Agent"] == USER_AGENT


async def test_long_term_lists_are_split_within_the_query_limit(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    terms = tuple(f"brandname{i:03d} product line" for i in range(60))
    fake.add(link(1, NOW, "about brandname059 product line"))
    result = await sitewide(fetcher, settings).fetch(SourceState(), SearchSpec(terms=terms))

    queries = [r.query["q"] for r in local_server.requests]
    assert len(queries) > 1
    assert all(len(q) <= MAX_QUERY_LENGTH for q in queries)
    asked = [part for q in queries for part in q.split(" OR ")]
    assert asked == [f'"{term}"' for term in terms]  # every term, once, in order
    assert [p.external_id for p in result.posts] == [t3(1)]


async def test_a_search_without_terms_is_an_error(
    fake: FakeReddit, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    with pytest.raises(SourceError, match="needs at least one word"):
        await sitewide(fetcher, settings).fetch(SourceState(), SearchSpec(terms=()))


async def test_subreddit_resume_reads_forward_from_the_anchor(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    fake.add(*(link(i, NOW - 100 + i, f"post {i}") for i in range(3)))
    fake.add(*(reply(i, NOW - 100 + i, f"comment {i}") for i in range(3)))
    first = await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    assert len(first.posts) == 6

    fake.add(link(10, NOW - 50, "post 10"), link(11, NOW - 50, "post 11, same second"))
    fake.add(reply(10, NOW - 40, "comment 10"))
    local_server.requests.clear()
    second = await subreddit(fetcher, settings).fetch(first.state, ACME)  # a new instance

    assert [p.title for p in second.posts] == [
        "Re: Acme released a thing",
        "post 11, same second",
        "post 10",
    ]
    assert [(path, query.get("before")) for path, query in listing_requests(local_server)] == [
        ("/www/r/python/new.json", t3(1)),  # the second newest
        ("/www/r/python/comments.json", reply(1, 0, "")["data"]["name"]),
    ]

    third = await subreddit(fetcher, settings).fetch(second.state, ACME)
    assert third.posts == []
    assert third.state.cursor == second.state.cursor


async def test_busy_subreddit_is_caught_up_over_polls_without_a_gap(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.add(*(link(i, NOW - 10_000 + i, f"old {i}") for i in range(3)))
    state = (await subreddit(fetcher, settings).fetch(SourceState(), ACME)).state
    fake.add(*(link(100 + i, NOW - 5_000 + i, f"new {i}") for i in range(730)))

    returned: list[str] = []
    with caplog.at_level(logging.INFO, logger="watchers.reddit"):
        for _ in range(3):
            result = await subreddit(fetcher, settings).fetch(state, ACME)
            returned.extend(p.title or "" for p in result.posts)
            state = result.state

    assert sorted(returned) == sorted(f"new {i}" for i in range(730))  # all, each once
    assert "the next poll carries on" in caplog.text
    new_pages = [q for path, q in listing_requests(local_server) if path.endswith("/new.json")]
    assert len(new_pages) == 1 + MAX_PAGES + 3 + 1  # first poll, capped poll, rest, quiet poll


async def test_deleted_anchor_falls_back_to_reading_back(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    fake.add(*(link(i, NOW - 100 + i, f"post {i}") for i in range(3)))
    first = await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    fake.remove(t3(1))  # the anchor is deleted
    fake.add(link(20, NOW - 10, "post 20"))
    local_server.requests.clear()

    second = await subreddit(fetcher, settings).fetch(first.state, ACME)
    assert [p.title for p in second.posts] == ["post 20"]
    new_requests = [q for path, q in listing_requests(local_server) if path.endswith("new.json")]
    assert [q.get("before") for q in new_requests] == [t3(1), None]

    # Anchors deleted while nothing new came: reading back finds nothing new either.
    fake.remove(t3(2))
    local_server.requests.clear()
    third = await subreddit(fetcher, settings).fetch(second.state, ACME)
    assert third.posts == []
    new_requests = [q for path, q in listing_requests(local_server) if path.endswith("new.json")]
    assert [q.get("before") for q in new_requests] == [t3(2), None]

    # The anchors are now items seen alive, so the next poll reads forward in one request.
    fake.add(link(21, NOW - 5, "post 21"))
    local_server.requests.clear()
    fourth = await subreddit(fetcher, settings).fetch(third.state, ACME)
    assert [p.title for p in fourth.posts] == ["post 21"]
    new_requests = [q for path, q in listing_requests(local_server) if path.endswith("new.json")]
    assert [q.get("before") for q in new_requests] == [t3(0)]


async def test_search_resume_skips_what_was_returned_and_finds_late_posts(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    fake.add(link(1, NOW - 100, "acme one"), link(2, NOW - 50, "acme two"))
    first = await sitewide(fetcher, settings).fetch(SourceState(), ACME)
    assert [p.title for p in first.posts] == ["acme two", "acme one"]

    # One at the newest second, one that reached the index late, one new, and one older
    # than the lookback that the search only now shows.
    fake.add(
        link(3, NOW - 50, "acme three"),
        link(4, NOW - 70, "acme four, late"),
        link(5, NOW - 10, "acme five"),
        link(6, NOW - 50 - LOOKBACK_SECONDS - 1, "acme six, ancient"),
    )
    second = await sitewide(fetcher, settings).fetch(first.state, ACME)
    assert [p.title for p in second.posts] == ["acme five", "acme three", "acme four, late"]

    third = await sitewide(fetcher, settings).fetch(second.state, ACME)
    assert third.posts == []


async def test_search_pages_back_until_the_lookback_floor(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
) -> None:
    fake.add(link(1, NOW - 10_000, "acme first"))
    first = await sitewide(fetcher, settings).fetch(SourceState(), ACME)
    fake.add(*(link(100 + i, NOW - 5_000 + i, f"acme {i}") for i in range(250)))
    local_server.requests.clear()

    second = await sitewide(fetcher, settings).fetch(first.state, ACME)
    assert len(second.posts) == 250
    assert [r.query.get("after") is not None for r in local_server.requests] == [
        False,
        True,
        True,
    ]


async def test_search_page_cap_bounds_a_poll_and_says_so(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.add(link(1, NOW - 10_000, "acme first"))
    first = await sitewide(fetcher, settings).fetch(SourceState(), ACME)
    fake.add(*(link(100 + i, NOW - 5_000 + i, f"acme {i}") for i in range(600)))
    with caplog.at_level(logging.WARNING, logger="watchers.reddit"):
        second = await sitewide(fetcher, settings).fetch(first.state, ACME)
    assert len(second.posts) == MAX_PAGES * 100
    assert "older ones were skipped" in caplog.text


async def test_empty_first_poll_starts_at_server_time(
    fake: FakeReddit, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    first = await sitewide(fetcher, settings).fetch(SourceState(), ACME)
    assert first.posts == []
    assert json.loads(first.state.cursor or "")["search"]["newest"] == NOW

    fake.add(*(link(i, NOW + i, f"acme {i}") for i in range(1, 151)))
    second = await sitewide(fetcher, settings).fetch(first.state, ACME)
    assert len(second.posts) == 150  # all since, not just the newest page


async def test_unreadable_cursor_starts_over(
    fake: FakeReddit,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.add(link(1, NOW, "acme"))
    with caplog.at_level(logging.WARNING, logger="watchers.reddit"):
        result = await sitewide(fetcher, settings).fetch(
            SourceState(cursor='{"search": {"newest": "soon"}}'), ACME
        )
    assert [p.title for p in result.posts] == ["acme"]
    assert "unreadable Reddit cursor" in caplog.text


async def test_one_malformed_item_is_skipped_and_the_rest_kept(
    local_server: LocalServer,
    fetcher: HttpFetcher,
    settings: SourceSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad_title = link(2, NOW - 2, "x")
    bad_title["data"]["title"] = ["not", "a", "string"]
    no_date = link(3, NOW - 1, "no date")
    del no_date["data"]["created_utc"]
    subreddit_thing = {"kind": "t5", "data": {"name": "t5_2qh0y", "display_name": "python"}}
    children = [link(4, NOW, "good"), bad_title, no_date, subreddit_thing, link(1, NOW - 3, "ok")]
    local_server.json("/www/search.json", listing_page(children, {"limit": "100"}))

    with caplog.at_level(logging.WARNING, logger="watchers.reddit"):
        result = await sitewide(fetcher, settings).fetch(SourceState(), ACME)
    assert [p.title for p in result.posts] == ["good", "ok"]
    assert f"skipping malformed Reddit item {t3(2)}" in caplog.text
    assert "has no numeric created_utc" in caplog.text
    assert "of kind 't5'" in caplog.text


def test_spec_and_argument(settings: SourceSettings) -> None:
    fetcher = HttpFetcher(local_policy())
    assert RedditSource(None, fetcher=fetcher, settings=settings).spec == "reddit"
    assert RedditSource("r/Python", fetcher=fetcher, settings=settings).spec == "reddit:r/python"
    with pytest.raises(ValueError, match="not a subreddit"):
        RedditSource("r/../../api", fetcher=fetcher, settings=settings)


# OAuth ----------------------------------------------------------------------------------------


async def test_credentials_use_an_application_only_token(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    oauth_settings: SourceSettings,
) -> None:
    fake.add(link(1, NOW, "acme"), reply(1, NOW, "acme"))
    result = await subreddit(fetcher, oauth_settings).fetch(SourceState(), ACME)
    assert len(result.posts) == 2

    token_request, *listings = local_server.requests
    assert token_request.method == "POST"
    assert token_request.path == "/www/api/v1/access_token"
    assert token_request.body == b"grant_type=client_credentials"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.headers["User-Agent"] == USER_AGENT
    scheme, _, encoded = token_request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"client-id-1:{SECRET}"
    assert [r.path for r in listings] == ["/oauth/r/python/new", "/oauth/r/python/comments"]
    for request in listings:
        assert request.headers["Authorization"] == "bearer token-1"
        assert request.headers["User-Agent"] == USER_AGENT


async def test_token_is_cached_across_polls_until_it_expires(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    oauth_settings: SourceSettings,
) -> None:
    fake.add(link(1, NOW, "acme"))
    state = SourceState()
    for _ in range(3):
        state = (await sitewide(fetcher, oauth_settings).fetch(state, ACME)).state
    assert fake.tokens == ["token-1"]

    fake.expires_in = 30  # inside the renewal margin: already stale when received
    reddit._tokens.clear()
    for _ in range(2):
        state = (await sitewide(fetcher, oauth_settings).fetch(state, ACME)).state
    assert fake.tokens == ["token-1", "token-2", "token-3"]


async def test_rejected_token_is_renewed_once(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    oauth_settings: SourceSettings,
) -> None:
    fake.add(link(1, NOW, "acme"))
    await sitewide(fetcher, oauth_settings).fetch(SourceState(), ACME)
    fake.tokens.append("revoked-elsewhere")  # the cached token-1 is no longer accepted
    fake.tokens.append("token-current")

    async def token(_: web.Request) -> web.Response:
        return web.json_response({"access_token": "token-current", "expires_in": 3600})

    local_server.route("POST", "/www/api/v1/access_token", token)
    result = await sitewide(fetcher, oauth_settings).fetch(SourceState(), ACME)
    assert [p.title for p in result.posts] == ["acme"]
    authorizations = [
        r.headers.get("Authorization") for r in local_server.requests if r.path == "/oauth/search"
    ]
    assert authorizations == ["bearer token-1", "bearer token-1", "bearer token-current"]


async def test_token_that_keeps_failing_is_blocked(
    fake: FakeReddit,
    local_server: LocalServer,
    fetcher: HttpFetcher,
    oauth_settings: SourceSettings,
) -> None:
    async def useless_token(_: web.Request) -> web.Response:
        return web.json_response({"access_token": "never-valid", "expires_in": 3600})

    local_server.route("POST", "/www/api/v1/access_token", useless_token)
    with pytest.raises(SourceBlocked, match="rejected Earful's access token") as caught:
        await sitewide(fetcher, oauth_settings).fetch(SourceState(), ACME)
    assert "never-valid" not in str(caught.value)


async def test_wrong_client_credentials_are_blocked_without_echoing_them(
    local_server: LocalServer, fetcher: HttpFetcher, oauth_settings: SourceSettings
) -> None:
    local_server.json(
        "/www/api/v1/access_token",
        {"message": "Unauthorized", "error": 401},
        status=401,
        method="POST",
    )
    with pytest.raises(SourceBlocked, match="client id and secret") as caught:
        await sitewide(fetcher, oauth_settings).fetch(SourceState(), ACME)
    assert SECRET not in str(caught.value)
    assert not [r for r in local_server.requests if r.method == "GET"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"error": "unsupported_grant_type"}, "did not grant a token: unsupported_grant_type"),
        ({"token_type": "bearer"}, "without an access token"),
        (["token"], "unexpected answer from Reddit's token endpoint"),
    ],
)
async def test_token_endpoint_errors(
    local_server: LocalServer,
    fetcher: HttpFetcher,
    oauth_settings: SourceSettings,
    answer: Any,
    message: str,
) -> None:
    local_server.json("/www/api/v1/access_token", answer, method="POST")
    with pytest.raises(SourceError, match=message):
        await sitewide(fetcher, oauth_settings).fetch(SourceState(), ACME)


# Faults ---------------------------------------------------------------------------------------


def on_new(server: LocalServer, handler: Any) -> None:
    server.route("GET", f"/www/r/{SUB}/new.json", handler)


async def test_timeout(local_server: LocalServer, settings: SourceSettings) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response(listing_page([], {}))

    on_new(local_server, slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3, retries=0)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await subreddit(quick, settings).fetch(SourceState(), ACME)


async def test_server_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(f"/www/r/{SUB}/new.json", {"message": "Internal", "error": 500}, status=500)
    with pytest.raises(SourceError, match="HTTP 500") as caught:
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_429_with_retry_after(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(
        f"/www/r/{SUB}/new.json",
        {"message": "Too Many Requests", "error": 429},
        status=429,
        headers={"Retry-After": "300", "x-ratelimit-reset": "300"},
    )
    with pytest.raises(RateLimited) as caught:
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    assert caught.value.retry_after == 300


async def test_429_without_retry_after_uses_the_last_known_reset(
    fake: FakeReddit, local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    fake.headers = {
        "x-ratelimit-remaining": "40",
        "x-ratelimit-used": "60",
        "x-ratelimit-reset": "240",
    }
    local_server.json(
        f"/www/r/{SUB}/comments.json", {"message": "Too Many Requests", "error": 429}, status=429
    )
    with pytest.raises(RateLimited) as caught:
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    assert caught.value.retry_after == 240


async def test_used_up_rate_limit_stops_before_the_next_request(
    fake: FakeReddit, local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    fake.headers = {
        "x-ratelimit-remaining": "0.0",
        "x-ratelimit-used": "100",
        "x-ratelimit-reset": "42",
    }
    with pytest.raises(RateLimited, match="resets in 42 s") as caught:
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    assert caught.value.retry_after == 42
    assert [r.path for r in local_server.requests] == [f"/www/r/{SUB}/new.json"]


async def test_blocked_html_page_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def blocked(_: web.Request) -> web.Response:
        return web.Response(
            status=403,
            text="<!doctype html><html><head><title>Blocked</title></head>"
            "<body>Your request has been blocked due to a network policy.</body></html>",
            content_type="text/html",
        )

    local_server.route("GET", "/www/search.json", blocked)
    with pytest.raises(SourceBlocked, match=r"Reddit refused the Reddit search \(HTTP 403\)"):
        await sitewide(fetcher, settings).fetch(SourceState(), ACME)


async def test_private_subreddit_is_blocked_by_name(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(
        "/www/r/secretclub/new.json",
        {"reason": "private", "message": "Forbidden", "error": 403},
        status=403,
    )
    with pytest.raises(SourceBlocked, match=r"r/secretclub \(HTTP 403\).*private"):
        await subreddit(fetcher, settings, "secretclub").fetch(SourceState(), ACME)


async def test_banned_subreddit_is_an_error_by_name(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(
        "/www/r/gone/new.json",
        {"reason": "banned", "message": "Not Found", "error": 404},
        status=404,
    )
    with pytest.raises(SourceError, match="r/gone was not found: it is banned"):
        await subreddit(fetcher, settings, "gone").fetch(SourceState(), ACME)


async def test_unknown_subreddit_redirect_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/www/subreddits/search.json?q=nosuchsub")

    local_server.route("GET", "/www/r/nosuchsub/new.json", redirect)
    local_server.json(
        "/www/subreddits/search.json",
        listing_page([{"kind": "t5", "data": {"name": "t5_1", "display_name": "nosuch"}}], {}),
    )
    with pytest.raises(SourceError, match="r/nosuchsub does not exist"):
        await subreddit(fetcher, settings, "nosuchsub").fetch(SourceState(), ACME)


async def test_search_redirected_to_login_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def to_login(_: web.Request) -> web.Response:
        raise web.HTTPFound("/www/login/?dest=https%3A%2F%2Fwww.reddit.com%2Fsearch.json")

    async def login(_: web.Request) -> web.Response:
        return web.json_response({"explanation": "please log in"})

    local_server.route("GET", "/www/search.json", to_login)
    local_server.route("GET", "/www/login/", login)
    with pytest.raises(SourceBlocked, match="login page"):
        await sitewide(fetcher, settings).fetch(SourceState(), ACME)


async def test_html_page_instead_of_json_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def pardner(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><body><h1>whoa there, pardner!</h1></body></html>", content_type="text/html"
        )

    on_new(local_server, pardner)
    with pytest.raises(SourceBlocked, match="HTML page"):
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)


async def test_api_error_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json("/www/search.json", {"message": "Bad Request", "error": 400, "reason": "q"})
    with pytest.raises(SourceError, match="with an error: 400 Bad Request q"):
        await sitewide(fetcher, settings).fetch(SourceState(), ACME)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"kind": "t3", "data": {}},
        {"kind": "Listing", "data": {"children": {"0": {}}}},
        {"kind": "Listing"},
    ],
    ids=["list", "not-a-listing", "children-not-a-list", "no-data"],
)
async def test_unexpected_shapes_are_errors(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings, document: Any
) -> None:
    local_server.json("/www/search.json", document)
    with pytest.raises(SourceError, match="unexpected answer from Reddit for the Reddit search"):
        await sitewide(fetcher, settings).fetch(SourceState(), ACME)


@pytest.mark.parametrize("body", [b"{not json", b'{"kind": "Listing", "data": {"children": [{"ki'])
async def test_malformed_or_cut_off_json_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings, body: bytes
) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    on_new(local_server, broken)
    with pytest.raises(SourceError, match="malformed JSON") as caught:
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_truncated_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 5_000
        response.force_close()
        await response.prepare(request)
        await response.write(b'{"kind": "Listing", "data": {"children": [')
        return response

    on_new(local_server, truncated)
    with pytest.raises(SourceError, match="broke mid-response"):
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)


async def test_oversized_body_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    huge = [link(i, NOW, "acme", selftext="x" * 2_000) for i in range(100)]
    local_server.json(f"/www/r/{SUB}/new.json", listing_page(huge, {"limit": "100"}))
    with pytest.raises(SourceError, match="larger than 200000 bytes"):
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)


async def test_long_texts_are_capped(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(
        "/www/search.json", listing_page([link(1, NOW, "acme", selftext="word " * 9_000)], {})
    )
    (post,) = (await sitewide(fetcher, settings).fetch(SourceState(), ACME)).posts
    assert len(post.text) == 20_000
    assert post.raw is not None and len(post.raw) <= 16_384


async def test_unauthorized_without_credentials_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher, settings: SourceSettings
) -> None:
    local_server.json(
        f"/www/r/{SUB}/new.json", {"message": "Unauthorized", "error": 401}, status=401
    )
    with pytest.raises(SourceBlocked, match=r"Reddit refused r/python posts \(HTTP 401\)"):
        await subreddit(fetcher, settings).fetch(SourceState(), ACME)
