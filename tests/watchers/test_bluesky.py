"""BlueskySource against a local server playing the public AppView and an account's PDS.

Shapes follow the lexicons: ``app.bsky.feed.searchPosts`` answers ``{"cursor", "hitsTotal",
"posts": [postView]}``; ``com.atproto.server.createSession`` / ``refreshSession`` answer
``accessJwt``/``refreshJwt``/``handle``/``did``; errors are ``{"error", "message"}``. Like the real
AppView, the fake refuses anonymous paging with a ``cursor`` (403, an HTML page).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

import watchers.bluesky
from tests.support.local_http import LocalServer, local_policy
from watchers.base import RAW_PAYLOAD_CAP, SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.bluesky import BlueskySource
from watchers.http import HttpBlocked, HttpFetcher, RateLimited
from watchers.source_settings import SourceSettings

IDENTIFIER = "earful.bsky.social"
PASSWORD = "abcd-efgh-ijkl-mnop"

FETCHER_KEEPS_ERROR_RESPONSES = hasattr(HttpBlocked("probe", status=400), "body")
needs_error_responses = pytest.mark.xfail(
    not FETCHER_KEEPS_ERROR_RESPONSES,
    strict=True,
    reason="HttpFetcher does not pass on the headers and body of error responses",
)


def jwt(subject: str, *, expires_in: float = 7_200) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"scope": "com.atproto.appPass", "sub": subject, "iat": int(time.time())}
    claims["exp"] = int(time.time() + expires_in)
    return f"{part({'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(claims)}.c2lnbmF0dXJl"


def post_view(
    rkey: str,
    *,
    text: str = "I love acme",
    handle: str = "alice.bsky.social",
    did: str = "did:plc:alice",
    indexed_at: str = "2024-05-01T10:00:00.000Z",
    created_at: str | None = None,
    langs: list[str] | None = None,
) -> dict[str, Any]:
    """An ``app.bsky.feed.defs#postView`` as searchPosts returns it (profileViewBasic author)."""
    return {
        "uri": f"at://{did}/app.bsky.feed.post/{rkey}",
        "cid": f"bafyreib{rkey}",
        "author": {
            "did": did,
            "handle": handle,
            "displayName": handle.split(".")[0].title(),
            "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/bafk@jpeg",
            "associated": {"chat": {"allowIncoming": "following"}},
            "labels": [],
            "createdAt": "2023-04-01T00:00:00.000Z",
        },
        "record": {
            "$type": "app.bsky.feed.post",
            "createdAt": created_at or indexed_at,
            "langs": ["en"] if langs is None else langs,
            "text": text,
        },
        "replyCount": 0,
        "repostCount": 1,
        "likeCount": 4,
        "quoteCount": 0,
        "indexedAt": indexed_at,
        "labels": [],
    }


def at(clock: str) -> str:
    return f"2024-05-01T{clock}Z"


@dataclass
class FakeBluesky:
    """The AppView under /appview/xrpc/ and an account's PDS under /pds/xrpc/."""

    server: LocalServer
    posts: list[dict[str, Any]] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    expired_tokens: set[str] = field(default_factory=set)
    expires_in: float = 7_200
    reset_epoch: int = 0

    def __post_init__(self) -> None:
        self.reset_epoch = int(time.time()) + 240
        self.server.route("GET", "/appview/xrpc/app.bsky.feed.searchPosts", self._appview)
        self.server.route("GET", "/pds/xrpc/app.bsky.feed.searchPosts", self._pds_search)
        self.server.route("POST", "/pds/xrpc/com.atproto.server.createSession", self._login)
        self.server.route("POST", "/pds/xrpc/com.atproto.server.refreshSession", self._refresh)

    def settings(self, *, login: bool = False) -> SourceSettings:
        return SourceSettings(
            bluesky_api_url=f"{self.server.base}/appview/xrpc/",
            bluesky_auth_url=f"{self.server.base}/pds/xrpc/",
            bluesky_identifier=IDENTIFIER if login else None,
            bluesky_app_password=PASSWORD if login else None,
        )

    def searches(self, where: str = "appview") -> list[dict[str, str]]:
        return [r.query for r in self.server.seen(f"/{where}/xrpc/app.bsky.feed.searchPosts")]

    def _issue(self) -> dict[str, Any]:
        access, refresh = jwt("did:plc:earful", expires_in=self.expires_in), jwt("refresh")
        access += f"-{len(self.access_tokens)}"  # unique even within one second
        refresh += f"-{len(self.refresh_tokens)}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": IDENTIFIER,
            "did": "did:plc:earful",
            "active": True,
        }

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body != {"identifier": IDENTIFIER, "password": PASSWORD}:
            return web.json_response(
                {"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
                status=401,
            )
        return web.json_response(self._issue())

    async def _refresh(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.refresh_tokens or await request.read():
            return web.json_response(
                {"error": "ExpiredToken", "message": "Token has been revoked"}, status=400
            )
        self.refresh_tokens.discard(token)  # refresh tokens are single-use
        return web.json_response(self._issue())

    async def _appview(self, request: web.Request) -> web.StreamResponse:
        if "cursor" in request.query:
            return web.Response(
                text="<html><body><h1>403 Forbidden</h1>Request forbidden by administrative "
                "rules.</body></html>",
                status=403,
                content_type="text/html",
            )
        return self._search(request)

    async def _pds_search(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in self.expired_tokens:
            return web.json_response(
                {"error": "ExpiredToken", "message": "Token has expired"}, status=400
            )
        if token not in self.access_tokens:
            return web.json_response(
                {"error": "AuthenticationRequired", "message": "Invalid token"}, status=401
            )
        return self._search(request)

    def _search(self, request: web.Request) -> web.Response:
        words = request.query["q"].strip('"').lower().split()
        matching = [p for p in self.posts if all(w in p["record"]["text"].lower() for w in words)]

        def sort_at(post: dict[str, Any]) -> datetime:
            indexed = datetime.fromisoformat(post["indexedAt"])
            try:
                return min(indexed, datetime.fromisoformat(post["record"]["createdAt"]))
            except ValueError:
                return indexed

        if "since" in request.query:
            since = datetime.fromisoformat(request.query["since"])
            matching = [p for p in matching if sort_at(p) >= since]
        matching.sort(key=sort_at, reverse=True)
        offset = int(request.query.get("cursor", "0"))
        limit = int(request.query.get("limit", "25"))
        page = matching[offset : offset + limit]
        document: dict[str, Any] = {"hitsTotal": len(matching), "posts": page}
        if offset + limit < len(matching):
            document["cursor"] = str(offset + limit)
        headers = {
            "RateLimit-Limit": "3000",
            "RateLimit-Remaining": "2999",
            "RateLimit-Reset": str(self.reset_epoch),
            "RateLimit-Policy": "3000;w=300",
        }
        return web.json_response(document, headers=headers)


@pytest.fixture
def bluesky(local_server: LocalServer) -> FakeBluesky:
    return FakeBluesky(local_server)


def source(bluesky: FakeBluesky, fetcher: HttpFetcher, *, login: bool = False) -> BlueskySource:
    return BlueskySource(None, fetcher=fetcher, settings=bluesky.settings(login=login))


ACME = SearchSpec(terms=("acme",))


def rkeys(posts: list[Any]) -> list[str]:
    return sorted(post.external_id.rsplit("/", 1)[1] for post in posts)


# --- parsing -------------------------------------------------------------------------------


async def test_posts_become_posts(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.posts = [
        post_view(
            "3kabc",
            text="Acme's  new\nrelease 🎉",
            indexed_at=at("10:00:05.250"),
            created_at="2024-05-01T12:00:01.500+02:00",
            langs=["PT-br", "en"],
        ),
        post_view("3kdef", handle="handle.invalid", did="did:plc:gone", created_at="yesterday"),
        post_view("3kghi", langs=[]),
    ]
    bluesky.posts[2]["author"]["followersCount"] = 321

    result = await source(bluesky, fetcher).fetch(SourceState(), ACME)

    posts = {post.external_id.rsplit("/", 1)[1]: post for post in result.posts}
    first = posts["3kabc"]
    assert first.source == "bluesky"
    assert first.external_id == "at://did:plc:alice/app.bsky.feed.post/3kabc"
    assert first.url == "https://bsky.app/profile/alice.bsky.social/post/3kabc"
    assert first.author == "alice.bsky.social"
    assert first.author_reach is None  # searchPosts' author view has no followersCount
    assert first.title is None
    assert first.text == "Acme's new release 🎉"
    assert first.language == "pt-br"
    assert first.published_at == datetime(2024, 5, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert first.raw is not None and json.loads(first.raw)["cid"] == "bafyreib3kabc"
    # A handle that no longer verifies links by DID; an unreadable createdAt uses indexedAt.
    assert posts["3kdef"].url == "https://bsky.app/profile/did:plc:gone/post/3kdef"
    assert posts["3kdef"].published_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert posts["3kghi"].author_reach == 321
    assert posts["3kghi"].language is None


async def test_long_text_and_raw_are_capped(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.posts = [post_view("3k1", text="acme " + "x" * 30_000)]
    [post] = (await source(bluesky, fetcher).fetch(SourceState(), ACME)).posts
    assert len(post.text) == 20_000
    assert post.raw is not None and len(post.raw) == RAW_PAYLOAD_CAP


async def test_a_malformed_post_is_skipped_and_logged(
    bluesky: FakeBluesky, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    broken = post_view("3k2")
    broken["record"]["text"] = ["acme"]
    no_uri = post_view("3k3")
    del no_uri["uri"]
    page = {"posts": [post_view("3k1"), broken, no_uri, "junk", post_view("3k4")]}
    bluesky.server.json("/appview/xrpc/app.bsky.feed.searchPosts", page)
    with caplog.at_level(logging.WARNING, logger="watchers.bluesky"):
        result = await source(bluesky, fetcher).fetch(SourceState(), ACME)
    assert rkeys(result.posts) == ["3k1", "3k4"]
    assert any(record.exc_info for record in caplog.records)


# --- query building ------------------------------------------------------------------------


async def test_one_search_per_term_because_there_is_no_or(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    bluesky.posts = [post_view("3k1", text="acme cloud"), post_view("3k2", text="acme")]
    terms = SearchSpec(terms=("Acme", "acme cloud", "from:ceo", 'say "hi"', "ACME"))

    result = await source(bluesky, fetcher).fetch(SourceState(), terms)

    assert [q["q"] for q in bluesky.searches()] == [
        "Acme",
        '"acme cloud"',
        '"from:ceo"',
        '"say hi"',
    ]
    assert bluesky.searches()[0] == {"q": "Acme", "sort": "latest", "limit": "100"}
    assert all("Authorization" not in r.headers for r in bluesky.server.requests)
    assert rkeys(result.posts) == ["3k1", "3k2"]  # found by two terms, returned once


async def test_at_most_ten_terms_are_searched(
    bluesky: FakeBluesky, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    terms = SearchSpec(terms=tuple(f"term{n}" for n in range(12)))
    with caplog.at_level(logging.WARNING, logger="watchers.bluesky"):
        await source(bluesky, fetcher).fetch(SourceState(), terms)
    assert len(bluesky.searches()) == 10
    assert "first 10 of 12 terms" in caplog.text


# --- resuming ------------------------------------------------------------------------------


async def test_restart_returns_only_new_posts_and_keeps_same_instant_ones(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    bluesky.posts = [
        post_view("3ka", indexed_at=at("10:00:00.000")),
        post_view("3kb", indexed_at=at("10:00:01.000")),
    ]
    first = await source(bluesky, fetcher).fetch(SourceState(), ACME)
    assert rkeys(first.posts) == ["3ka", "3kb"]
    assert json.loads(first.state.cursor or "") == {
        "acme": {
            "at": "2024-05-01T10:00:01.000000+00:00",
            "uris": ["at://did:plc:alice/app.bsky.feed.post/3kb"],
        }
    }

    bluesky.posts.append(post_view("3kc", indexed_at=at("10:00:01.000")))  # the same instant
    second = await source(bluesky, fetcher).fetch(first.state, ACME)  # a new instance
    assert rkeys(second.posts) == ["3kc"]
    assert bluesky.searches()[1]["since"] == "2024-05-01T09:50:01.000Z"

    bluesky.posts += [
        post_view("3kd", indexed_at=at("10:00:02.000")),
        # Written a minute before the cursor but indexed after it: since= must reach back to it.
        post_view("3ke", indexed_at=at("10:00:03.000"), created_at=at("09:59:00.000")),
    ]
    third = await source(bluesky, fetcher).fetch(second.state, ACME)
    assert rkeys(third.posts) == ["3kd", "3ke"]

    fourth = await source(bluesky, fetcher).fetch(third.state, ACME)
    assert fourth.posts == []
    assert fourth.state.cursor == third.state.cursor


async def test_anonymous_polls_read_one_page_and_never_send_a_cursor(
    bluesky: FakeBluesky, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    bluesky.posts = [post_view("3k0", indexed_at=at("09:00:00.000"))]
    first = await source(bluesky, fetcher).fetch(SourceState(), ACME)
    bluesky.posts += [
        post_view(f"3k{n:03d}", indexed_at=at(f"10:{n // 60:02d}:{n % 60:02d}.000"))
        for n in range(1, 151)
    ]

    with caplog.at_level(logging.WARNING, logger="watchers.bluesky"):
        second = await source(bluesky, fetcher).fetch(first.state, ACME)

    assert len(second.posts) == 100
    assert all("cursor" not in query for query in bluesky.searches())
    assert "BLUESKY_IDENTIFIER" in caplog.text


async def test_unreadable_cursor_starts_afresh(
    bluesky: FakeBluesky, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    bluesky.posts = [post_view("3k1")]
    with caplog.at_level(logging.WARNING, logger="watchers.bluesky"):
        result = await source(bluesky, fetcher).fetch(SourceState(cursor='{"acme": 3}'), ACME)
    assert rkeys(result.posts) == ["3k1"]
    assert "since" not in bluesky.searches()[0]
    assert "unreadable cursor" in caplog.text


# --- with an account -----------------------------------------------------------------------


async def test_account_logs_in_once_and_searches_at_its_server(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    bluesky.posts = [post_view("3k1"), post_view("3k2", text="acme cloud")]
    terms = SearchSpec(terms=("acme", "acme cloud"))
    first = await source(bluesky, fetcher, login=True).fetch(SourceState(), terms)
    await source(bluesky, fetcher, login=True).fetch(first.state, terms)  # built afresh

    [login] = bluesky.server.seen("/pds/xrpc/com.atproto.server.createSession")
    assert json.loads(login.body) == {"identifier": IDENTIFIER, "password": PASSWORD}
    [token] = bluesky.access_tokens
    searches = bluesky.server.seen("/pds/xrpc/app.bsky.feed.searchPosts")
    assert len(searches) == 4
    assert all(r.headers["Authorization"] == f"Bearer {token}" for r in searches)
    assert bluesky.searches("appview") == []
    assert rkeys(first.posts) == ["3k1", "3k2"]


async def test_concurrent_polls_share_one_login(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.posts = [post_view("3k1")]
    await asyncio.gather(
        *(source(bluesky, fetcher, login=True).fetch(SourceState(), ACME) for _ in range(5))
    )
    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.createSession")) == 1


async def test_account_pages_through_a_burst(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.posts = [post_view("3k0", indexed_at=at("09:00:00.000"))]
    first = await source(bluesky, fetcher, login=True).fetch(SourceState(), ACME)
    bluesky.posts += [
        post_view(f"3k{n:03d}", indexed_at=at(f"10:{n // 60:02d}:{n % 60:02d}.000"))
        for n in range(1, 251)
    ]

    second = await source(bluesky, fetcher, login=True).fetch(first.state, ACME)

    assert len(second.posts) == 250
    assert [q.get("cursor") for q in bluesky.searches("pds")[1:]] == [None, "100", "200"]


async def test_a_refused_token_is_refreshed_and_the_search_retried(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    bluesky.posts = [post_view("3k1")]
    first = await source(bluesky, fetcher, login=True).fetch(SourceState(), ACME)
    bluesky.access_tokens.clear()  # revoked: the PDS now answers 401
    bluesky.posts.append(post_view("3k2", indexed_at=at("10:05:00.000")))

    second = await source(bluesky, fetcher, login=True).fetch(first.state, ACME)

    assert rkeys(second.posts) == ["3k2"]
    [refresh] = bluesky.server.seen("/pds/xrpc/com.atproto.server.refreshSession")
    assert refresh.body == b""
    assert refresh.headers["Authorization"].startswith("Bearer ")
    assert refresh.headers["Authorization"].removeprefix("Bearer ") not in bluesky.access_tokens
    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.createSession")) == 1


async def test_a_token_refused_twice_is_blocked(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.server.json(
        "/pds/xrpc/app.bsky.feed.searchPosts",
        {"error": "AuthenticationRequired", "message": "Account has been suspended"},
        status=401,
    )
    with pytest.raises(SourceBlocked, match=r"refused the search for acme \(HTTP 401"):
        await source(bluesky, fetcher, login=True).fetch(SourceState(), ACME)
    assert len(bluesky.server.seen("/pds/xrpc/app.bsky.feed.searchPosts")) == 2
    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.refreshSession")) == 1


@needs_error_responses
async def test_expired_token_400_is_refreshed(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.posts = [post_view("3k1")]
    first = await source(bluesky, fetcher, login=True).fetch(SourceState(), ACME)
    bluesky.expired_tokens |= bluesky.access_tokens
    second = await source(bluesky, fetcher, login=True).fetch(first.state, ACME)
    assert second.posts == []
    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.refreshSession")) == 1


async def test_session_is_renewed_before_it_expires(
    bluesky: FakeBluesky, fetcher: HttpFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    bluesky.posts = [post_view("3k1")]
    first = await source(bluesky, fetcher, login=True).fetch(SourceState(), ACME)
    later = time.time() + 7_000  # within five minutes of the token's two-hour expiry
    monkeypatch.setattr(watchers.bluesky, "_clock", lambda: later)

    await source(bluesky, fetcher, login=True).fetch(first.state, ACME)

    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.refreshSession")) == 1
    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.createSession")) == 1


async def test_a_failed_refresh_logs_in_again(
    bluesky: FakeBluesky, fetcher: HttpFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    bluesky.posts = [post_view("3k1")]
    first = await source(bluesky, fetcher, login=True).fetch(SourceState(), ACME)
    bluesky.refresh_tokens.clear()
    later = time.time() + 7_000
    monkeypatch.setattr(watchers.bluesky, "_clock", lambda: later)

    await source(bluesky, fetcher, login=True).fetch(first.state, ACME)

    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.refreshSession")) == 1
    assert len(bluesky.server.seen("/pds/xrpc/com.atproto.server.createSession")) == 2


async def test_wrong_password_is_blocked_and_not_echoed(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    settings = SourceSettings(
        bluesky_auth_url=f"{bluesky.server.base}/pds/xrpc/",
        bluesky_identifier=IDENTIFIER,
        bluesky_app_password="wrong-pass-word-1234",
    )
    with pytest.raises(SourceBlocked, match="BLUESKY_APP_PASSWORD") as caught:
        await BlueskySource(None, fetcher=fetcher, settings=settings).fetch(SourceState(), ACME)
    assert "wrong-pass-word-1234" not in str(caught.value)
    assert bluesky.searches("pds") == []


async def test_half_configured_account_is_an_error(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    settings = SourceSettings(bluesky_identifier=IDENTIFIER)
    with pytest.raises(SourceError, match="both BLUESKY_IDENTIFIER and BLUESKY_APP_PASSWORD"):
        await BlueskySource(None, fetcher=fetcher, settings=settings).fetch(SourceState(), ACME)


# --- faults --------------------------------------------------------------------------------

SEARCH = "/appview/xrpc/app.bsky.feed.searchPosts"


async def test_anonymous_403_says_to_configure_an_account(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    bluesky.server.json(
        SEARCH, {"error": "AuthMissing", "message": "Authentication Required"}, status=403
    )
    with pytest.raises(SourceBlocked, match="BLUESKY_IDENTIFIER and BLUESKY_APP_PASSWORD"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


async def test_anonymous_html_page_says_to_configure_an_account(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><html>Forbidden</html>", content_type="text/html")

    bluesky.server.route("GET", SEARCH, page)
    with pytest.raises(SourceBlocked, match=r"HTML page.*BLUESKY_IDENTIFIER"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


async def test_timeout(bluesky: FakeBluesky) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({"posts": []})

    bluesky.server.route("GET", SEARCH, slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await source(bluesky, quick).fetch(SourceState(), ACME)


async def test_server_error(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.server.json(SEARCH, {"error": "InternalServerError"}, status=500)
    with pytest.raises(SourceError, match="HTTP 500") as caught:
        await source(bluesky, fetcher).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_429_with_retry_after(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.server.json(
        SEARCH,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        status=429,
        headers={"Retry-After": "45"},
    )
    with pytest.raises(RateLimited) as caught:
        await source(bluesky, fetcher).fetch(SourceState(), ACME)
    assert caught.value.retry_after == 45


async def test_429_waits_for_the_announced_reset(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    # The first term's answer announced the reset; the second term's 429 has no Retry-After.
    bluesky.posts = [post_view("3k1")]
    calls = 0

    async def limited(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if request.query["q"] == "acme":
            return bluesky._search(request)
        return web.json_response({"error": "RateLimitExceeded"}, status=429)

    bluesky.server.route("GET", SEARCH, limited)
    with pytest.raises(RateLimited, match="retry after") as caught:
        await source(bluesky, fetcher).fetch(SourceState(), SearchSpec(terms=("acme", "widget")))
    assert caught.value.retry_after is not None
    assert 200 <= caught.value.retry_after <= 240


@needs_error_responses
async def test_429_reads_ratelimit_reset(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.server.json(
        SEARCH,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        status=429,
        headers={"RateLimit-Reset": str(int(time.time()) + 120), "RateLimit-Remaining": "0"},
    )
    with pytest.raises(RateLimited) as caught:
        await source(bluesky, fetcher).fetch(SourceState(), ACME)
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120


@needs_error_responses
async def test_xrpc_error_message_is_reported(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.server.json(
        SEARCH, {"error": "BadQueryString", "message": "Query string is malformed"}, status=400
    )
    with pytest.raises(SourceError, match="BadQueryString: Query string is malformed"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


async def test_xrpc_400_is_an_error(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    bluesky.server.json(SEARCH, {"error": "BadQueryString"}, status=400)
    with pytest.raises(SourceError, match="HTTP 400") as caught:
        await source(bluesky, fetcher).fetch(SourceState(), ACME)
    assert not isinstance(caught.value, SourceBlocked)


async def test_error_body_without_posts_is_an_error(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    bluesky.server.json(SEARCH, {"error": "InvalidRequest", "message": "Search is unavailable"})
    with pytest.raises(SourceError, match="InvalidRequest: Search is unavailable"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


@pytest.mark.parametrize(
    "document",
    [{"cursor": "25"}, {"posts": {"uri": "x"}}, [], "posts"],
    ids=["no-posts", "posts-object", "list", "string"],
)
async def test_unexpected_shapes_are_errors(
    bluesky: FakeBluesky, fetcher: HttpFetcher, document: Any
) -> None:
    bluesky.server.json(SEARCH, document)
    with pytest.raises(SourceError, match="without a list of posts"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


async def test_malformed_json(bluesky: FakeBluesky, fetcher: HttpFetcher) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(text='{"posts": [{"uri": ', content_type="application/json")

    bluesky.server.route("GET", SEARCH, broken)
    with pytest.raises(SourceError, match="malformed JSON"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


async def test_body_shorter_than_its_content_length(
    bluesky: FakeBluesky, fetcher: HttpFetcher
) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 5_000
        response.force_close()
        await response.prepare(request)
        await response.write(b'{"posts": [')
        return response

    bluesky.server.route("GET", SEARCH, cut)
    with pytest.raises(SourceError, match=r"broke mid-response|malformed JSON"):
        await source(bluesky, fetcher).fetch(SourceState(), ACME)


async def test_oversized_body(bluesky: FakeBluesky) -> None:
    bluesky.posts = [post_view(f"3k{n}", text="acme " + "x" * 2_000) for n in range(100)]
    async with HttpFetcher(local_policy(max_bytes=50_000)) as small:
        with pytest.raises(SourceError, match="larger than 50000 bytes"):
            await source(bluesky, small).fetch(SourceState(), ACME)
