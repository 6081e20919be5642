"""GitHubSource against a local server answering like api.github.com.

Bodies follow GitHub's documented shapes: ``search/issues`` (``total_count``,
``incomplete_results``, ``items`` of issue search results, pull requests carrying a
``pull_request`` object) and a GraphQL ``search(type: DISCUSSION)`` answer
(``data.search.nodes``/``pageInfo``, or ``errors``). Errors come as GitHub's REST docs describe
them: the status (401, 403, 422, 429), the ``x-ratelimit-*`` and ``retry-after`` headers, and a
body with ``message`` (and ``errors`` for a 422).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tests.support.local_http import LocalServer, local_policy
from watchers.base import SearchSpec, SourceBlocked, SourceError, SourceState
from watchers.github import (
    MESSAGE_CAP,
    OVERLAP_SECONDS,
    PER_PAGE,
    SECONDARY_LIMIT_WAIT,
    TERMS_PER_QUERY,
    GitHubSource,
    markdown_text,
    term_groups,
)
from watchers.http import HttpFetcher, RateLimited
from watchers.source_settings import SourceSettings

SEARCH = "/search/issues"
GRAPHQL = "/graphql"
T0 = 1_704_189_600  # 2024-01-02T10:00:00Z
ACME = SearchSpec(terms=("acme",))
TOKEN = "ghp_s3cr3tT0ken"


class Clock:
    def __init__(self, now: float = T0 + 3_600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue(number: int, created: int, **overrides: Any) -> dict[str, Any]:
    repo = "https://api.github.com/repos/acme/sdk"
    item: dict[str, Any] = {
        "url": f"{repo}/issues/{number}",
        "repository_url": repo,
        "labels_url": f"{repo}/issues/{number}/labels{{/name}}",
        "comments_url": f"{repo}/issues/{number}/comments",
        "events_url": f"{repo}/issues/{number}/events",
        "html_url": f"https://github.com/acme/sdk/issues/{number}",
        "id": 2_000_000 + number,
        "node_id": f"I_kwDOAcme{number}",
        "number": number,
        "title": f"Acme  SDK crashes on start ({number})",
        "user": {"login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=", "type": "User"},
        "labels": [{"id": 1, "name": "bug", "color": "d73a4a", "default": True}],
        "state": "open",
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": 3,
        "created_at": iso(created),
        "updated_at": iso(created + 10),
        "closed_at": None,
        "author_association": "NONE",
        "body": (
            "<!-- Please fill in the template -->\n### Steps\n"
            "Run the [Acme SDK](https://acme.example/sdk) ![logo](https://acme.example/l.png)"
        ),
        "reactions": {
            "url": f"{repo}/issues/{number}/reactions",
            "total_count": 7,
            "+1": 5,
            "-1": 0,
            "laugh": 0,
            "hooray": 0,
            "confused": 0,
            "heart": 2,
            "rocket": 0,
            "eyes": 0,
        },
        "score": 1.0,
    }
    item.update(overrides)
    return item


def pull(number: int, created: int, **overrides: Any) -> dict[str, Any]:
    item = issue(number, created, **overrides)
    item["html_url"] = f"https://github.com/acme/sdk/pull/{number}"
    item["node_id"] = f"PR_kwDOAcme{number}"
    item["pull_request"] = {
        "url": f"https://api.github.com/repos/acme/sdk/pulls/{number}",
        "html_url": item["html_url"],
        "diff_url": item["html_url"] + ".diff",
        "patch_url": item["html_url"] + ".patch",
        "merged_at": None,
    }
    item["draft"] = False
    return item


def results(items: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    return {
        "total_count": len(items) if total is None else total,
        "incomplete_results": False,
        "items": items,
    }


def discussion(number: int, created: int) -> dict[str, Any]:
    return {
        "id": f"D_kwDOAcme{number}",
        "number": number,
        "title": f"How do I configure Acme? ({number})",
        "bodyText": "I tried the Acme\nCLI and it hangs.",
        "url": f"https://github.com/acme/sdk/discussions/{number}",
        "createdAt": iso(created),
        "upvoteCount": 4,
        "author": {"login": "hubot"},
        "repository": {"nameWithOwner": "acme/sdk"},
        "comments": {"totalCount": 2},
        "reactions": {"totalCount": 9},
    }


def graphql_page(
    nodes: list[dict[str, Any]], *, has_next: bool = False, end: str | None = None
) -> dict[str, Any]:
    return {
        "data": {
            "search": {
                "discussionCount": len(nodes),
                "pageInfo": {"hasNextPage": has_next, "endCursor": end},
                "nodes": nodes,
            }
        }
    }


def serve_search(
    server: LocalServer,
    answer: Callable[[dict[str, str]], dict[str, Any]],
) -> None:
    """Answer the REST search with ``answer(query)``, with an ETag and 304s like GitHub."""

    async def handler(request: web.Request) -> web.Response:
        body = json.dumps(answer(dict(request.query)))
        etag = 'W/"' + hashlib.sha256((request.path_qs + body).encode()).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=body, content_type="application/json", headers={"ETag": etag})

    server.route("GET", SEARCH, handler)


def by_kind(
    issues: list[dict[str, Any]], pulls: list[dict[str, Any]] | None = None
) -> Callable[[dict[str, str]], dict[str, Any]]:
    return lambda q: results(issues if "is:issue" in q["q"] else pulls or [])


def serve_graphql(
    server: LocalServer,
    answer: Callable[[dict[str, Any]], Any],
    *,
    headers: dict[str, str] | None = None,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        document = answer(json.loads(await request.read())["variables"])
        return web.json_response(document, headers=headers)

    server.route("POST", GRAPHQL, handler)


def budget(remaining: int, reset: int, resource: str = "search") -> dict[str, str]:
    """GitHub's rate-limit headers, as sent on every API response."""
    return {
        "x-ratelimit-limit": "10" if resource == "search" else "5000",
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-used": str(10 - remaining if resource == "search" else 5000 - remaining),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": resource,
    }


PRIMARY_LIMIT = {
    "message": "API rate limit exceeded for 203.0.113.7. (But here's the good news: "
    "Authenticated requests get a higher rate limit. Check out the documentation for more "
    "details.)",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}
SECONDARY_LIMIT = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
    "try again. If you reach out to GitHub Support for help, please include the request ID "
    "DBD8:2F1E:1B5B2A:3A8F2D:65A3F1C2.",
    "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits",
}


def make_source(
    server: LocalServer,
    fetcher: HttpFetcher,
    *,
    token: str | None = None,
    clock: Clock | None = None,
) -> GitHubSource:
    settings = SourceSettings(github_api_url=server.base + "/", github_token=token)
    return GitHubSource(None, fetcher=fetcher, settings=settings, clock=clock or Clock())


def ids(posts: list[Any]) -> list[str]:
    return [post.external_id for post in posts]


async def test_first_poll_parses_issues_and_pull_requests(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    no_node_id = issue(9, T0 - 60, node_id=None, reactions=None)
    serve_search(local_server, by_kind([issue(1, T0), no_node_id], [pull(2, T0 + 5)]))
    source = make_source(local_server, fetcher)

    result = await source.fetch(SourceState(), ACME)

    assert source.spec == "github"
    first, second = local_server.seen(SEARCH)
    assert first.query == {
        "q": "is:issue in:title,body acme",
        "sort": "created",
        "order": "desc",
        "per_page": str(PER_PAGE),
        "page": "1",
    }
    assert second.query["q"] == "is:pull-request in:title,body acme"
    assert first.headers["Accept"] == "application/vnd.github+json"
    assert first.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert "Authorization" not in first.headers
    assert local_server.seen(GRAPHQL) == []  # no token, no discussions

    assert ids(result.posts) == ["I_kwDOAcme1", "issue:2000009", "PR_kwDOAcme2"]
    post = result.posts[0]
    assert post.source == "github"
    assert post.url == "https://github.com/acme/sdk/issues/1"
    assert post.author == "octocat"
    assert post.author_reach == 7
    assert post.title == "Acme SDK crashes on start (1)"
    assert post.text == "### Steps Run the Acme SDK logo"
    assert post.published_at == datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    assert post.language is None
    assert post.raw is not None and json.loads(post.raw)["number"] == 1
    assert result.posts[1].author_reach == 3  # no reactions rollup: the comment count
    assert result.posts[2].url == "https://github.com/acme/sdk/pull/2"
    assert not result.not_modified


def test_term_groups_respect_githubs_operator_and_length_limits() -> None:
    assert term_groups(["acme", "acme cloud", 'say "hi"', "acme.io", "acme"]) == [
        ["acme", '"acme cloud"', '"say hi"', '"acme.io"']
    ]
    many = [f"term{n}" for n in range(TERMS_PER_QUERY + 2)]
    assert [len(g) for g in term_groups(many)] == [TERMS_PER_QUERY, 2]
    long_terms = ["x" * 90, "y" * 90, "z" * 90]
    assert [len(g) for g in term_groups(long_terms)] == [2, 1]


def test_markdown_text() -> None:
    assert markdown_text("a <!-- unclosed comment") == "a"
    assert markdown_text("[docs](http://x) and ![](http://y.png)\n\n`code`") == "docs and `code`"


async def test_terms_are_or_ed_in_parentheses_and_a_post_found_twice_is_returned_once(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    terms = SearchSpec(terms=(*(f"t{n}" for n in range(TERMS_PER_QUERY)), "acme cloud"))
    serve_search(local_server, by_kind([issue(1, T0)], [pull(2, T0)]))

    result = await make_source(local_server, fetcher).fetch(SourceState(), terms)

    assert [r.query["q"] for r in local_server.seen(SEARCH)] == [
        "is:issue in:title,body (t0 OR t1 OR t2 OR t3 OR t4 OR t5)",
        "is:pull-request in:title,body (t0 OR t1 OR t2 OR t3 OR t4 OR t5)",
        'is:issue in:title,body "acme cloud"',
        'is:pull-request in:title,body "acme cloud"',
    ]
    assert ids(result.posts) == ["I_kwDOAcme1", "PR_kwDOAcme2"]


async def test_resume_after_restart_returns_only_new_posts_including_same_second(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    clock = Clock(T0 + 90)
    serve_search(local_server, by_kind([issue(11, T0 + 60), issue(10, T0)]))
    first = await make_source(local_server, fetcher, clock=clock).fetch(SourceState(), ACME)
    assert ids(first.posts) == ["I_kwDOAcme11", "I_kwDOAcme10"]

    # Oldest first from the overlap before the previous poll: the overlap's issue comes back,
    # a new one shares the newest second, one was indexed late, one is newer.
    later = [issue(11, T0 + 60), issue(12, T0 + 60), issue(9, T0 + 40), issue(13, T0 + 95)]
    serve_search(local_server, by_kind(later))
    clock.now = T0 + 200
    # A new instance, as after a restart.
    second = await make_source(local_server, fetcher, clock=clock).fetch(first.state, ACME)

    request = local_server.seen(SEARCH)[-2]
    assert request.query["order"] == "asc"
    since = datetime.fromtimestamp(T0 + 90 - OVERLAP_SECONDS, UTC)
    assert request.query["q"] == (
        f"is:issue in:title,body acme created:>={since:%Y-%m-%dT%H:%M:%S}+00:00"
    )
    assert sorted(ids(second.posts)) == ["I_kwDOAcme12", "I_kwDOAcme13", "I_kwDOAcme9"]

    serve_search(local_server, by_kind([*later, issue(14, T0 + 150)]))
    third = await make_source(local_server, fetcher, clock=clock).fetch(second.state, ACME)
    assert ids(third.posts) == ["I_kwDOAcme14"]


async def test_unchanged_results_are_a_conditional_304(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_search(local_server, by_kind([issue(1, T0)], [pull(2, T0)]))
    first = await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    second = await make_source(local_server, fetcher).fetch(first.state, ACME)
    # The second poll asks from the cursor: a new URL, so a full answer with new ETags.
    assert all("If-None-Match" in r.headers for r in local_server.seen(SEARCH)[2:])
    assert not second.not_modified and second.posts == []

    third = await make_source(local_server, fetcher).fetch(second.state, ACME)
    assert third.not_modified
    assert third.posts == []
    assert third.state == second.state

    serve_search(local_server, by_kind([issue(1, T0), issue(3, T0 + 1)], [pull(2, T0)]))
    fourth = await make_source(local_server, fetcher).fetch(third.state, ACME)
    assert not fourth.not_modified
    assert ids(fourth.posts) == ["I_kwDOAcme3"]


async def test_busy_period_pages_forward_and_continues_next_poll_without_gap(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_search(local_server, by_kind([issue(1, T0)]))
    first = await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    backlog = [issue(100 + n, T0 + 1 + n // 2) for n in range(450)]

    def answer(query: dict[str, str]) -> dict[str, Any]:
        if "is:pull-request" in query["q"]:
            return results([])
        since = query["q"].split("created:>=")[1]
        floor = datetime.fromisoformat(since).timestamp()
        matching = [
            i for i in backlog if datetime.fromisoformat(i["created_at"]).timestamp() >= floor
        ]
        start = (int(query["page"]) - 1) * PER_PAGE
        return results(matching[start : start + PER_PAGE], total=len(matching))

    serve_search(local_server, answer)
    returned: list[str] = []
    state = first.state
    for _ in range(2):
        result = await make_source(local_server, fetcher).fetch(state, ACME)
        returned += ids(result.posts)
        state = result.state

    assert len(returned) == len(set(returned))
    assert sorted(returned) == sorted(f"I_kwDOAcme{100 + n}" for n in range(450))
    assert max(int(r.query["page"]) for r in local_server.seen(SEARCH)) == 3


async def test_token_is_sent_and_discussions_are_searched_with_graphql(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    clock = Clock(T0 + 90)
    serve_search(local_server, by_kind([issue(1, T0)]))
    variables_seen: list[dict[str, Any]] = []

    def answer(variables: dict[str, Any]) -> Any:
        variables_seen.append(variables)
        return graphql_page([discussion(5, T0 + 30), discussion(4, T0)])

    serve_graphql(local_server, answer)
    source = make_source(local_server, fetcher, token=TOKEN, clock=clock)

    result = await source.fetch(SourceState(), SearchSpec(terms=("acme", "widget")))

    for request in local_server.seen(SEARCH) + local_server.seen(GRAPHQL):
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    (graphql_request, _) = local_server.seen(GRAPHQL)
    body = json.loads(graphql_request.body)
    assert "search(type: DISCUSSION" in body["query"]
    assert [v["query"] for v in variables_seen] == [
        "acme in:title,body sort:created-desc",
        "widget in:title,body sort:created-desc",
    ]
    assert variables_seen[0]["first"] == 100 and variables_seen[0]["after"] is None
    assert ids(result.posts) == ["I_kwDOAcme1", "D_kwDOAcme5", "D_kwDOAcme4"]
    post = result.posts[1]
    assert post.url == "https://github.com/acme/sdk/discussions/5"
    assert post.author == "hubot"
    assert post.author_reach == 9
    assert post.title == "How do I configure Acme? (5)"
    assert post.text == "I tried the Acme CLI and it hangs."
    assert post.published_at == datetime(2024, 1, 2, 10, 0, 30, tzinfo=UTC)

    def later(variables: dict[str, Any]) -> Any:
        variables_seen.append(variables)
        if variables["query"].startswith("widget"):
            return graphql_page([])
        if variables["after"] is None:
            return graphql_page(
                [discussion(5, T0 + 30), discussion(6, T0 + 30)], has_next=True, end="c1"
            )
        return graphql_page([discussion(7, T0 + 80)])

    serve_graphql(local_server, later)
    clock.now = T0 + 200
    resumed = await make_source(local_server, fetcher, token=TOKEN, clock=clock).fetch(
        result.state, SearchSpec(terms=("acme", "widget"))
    )
    since = datetime.fromtimestamp(T0 + 30, UTC)
    assert variables_seen[2]["query"] == (
        f"acme in:title,body sort:created-asc created:>={since:%Y-%m-%dT%H:%M:%S}+00:00"
    )
    assert variables_seen[3]["after"] == "c1"
    assert ids(resumed.posts) == ["D_kwDOAcme6", "D_kwDOAcme7"]
    assert not resumed.not_modified


async def test_graphql_rate_limited_waits_until_the_reset_in_its_headers(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_search(local_server, by_kind([]))
    serve_graphql(
        local_server,
        lambda v: {
            "data": None,
            "errors": [
                {"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}
            ],
        },
        headers=budget(0, T0 + 3_600 + 900, "graphql"),
    )
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)
    assert raised.value.retry_after == pytest.approx(900)
    assert "API rate limit exceeded for user ID 1." in str(raised.value)
    assert {r.path for r in local_server.requests} == {SEARCH, GRAPHQL}


async def test_graphql_rate_limited_without_headers_waits_a_minute(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_search(local_server, by_kind([]))
    serve_graphql(
        local_server,
        lambda v: {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]},
    )
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)
    assert raised.value.retry_after == SECONDARY_LIMIT_WAIT


async def test_graphql_secondary_rate_limit(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_search(local_server, by_kind([]))
    local_server.json(
        GRAPHQL,
        SECONDARY_LIMIT,
        status=403,
        headers=budget(4_000, T0 + 3_600 + 900, "graphql"),
        method="POST",
    )
    with pytest.raises(RateLimited, match="GraphQL secondary rate limit") as raised:
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)
    assert raised.value.retry_after == SECONDARY_LIMIT_WAIT


async def test_graphql_error_is_an_error(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    serve_search(local_server, by_kind([]))
    serve_graphql(
        local_server,
        lambda v: {"errors": [{"message": 'Parse error on "}" (RCURLY) at [1, 2]'}]},
    )
    with pytest.raises(SourceError, match="GitHub GraphQL error: Parse error") as raised:
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)
    assert not isinstance(raised.value, SourceBlocked)


@pytest.mark.parametrize(
    ("status", "headers", "body", "retry_after", "shown"),
    [
        pytest.param(
            403,
            budget(0, T0 + 3_600 + 42),
            PRIMARY_LIMIT,
            42,
            "search rate limit (HTTP 403: API rate limit exceeded for 203.0.113.7.",
            id="primary-403-waits-until-reset",
        ),
        pytest.param(
            429,
            budget(0, T0 + 3_600 + 1_800),
            PRIMARY_LIMIT,
            1_800,
            "search rate limit (HTTP 429: API rate limit exceeded",
            id="primary-429-waits-until-reset",
        ),
        pytest.param(
            403,
            {**budget(0, T0 + 3_600 + 42), "retry-after": "90"},
            PRIMARY_LIMIT,
            90,
            "retry after 90 s",
            id="retry-after-wins-over-reset",
        ),
        pytest.param(
            403,
            {**budget(7, T0 + 3_600 + 42), "retry-after": "90"},
            SECONDARY_LIMIT,
            90,
            "search secondary rate limit (HTTP 403: You have exceeded a secondary rate limit.",
            id="secondary-with-retry-after",
        ),
        pytest.param(
            403,
            budget(7, T0 + 3_600 + 42),
            SECONDARY_LIMIT,
            SECONDARY_LIMIT_WAIT,
            "secondary rate limit",
            id="secondary-without-retry-after-waits-a-minute",
        ),
        pytest.param(
            429,
            {"retry-after": "120"},
            {"message": "slow down"},
            120,
            "HTTP 429: slow down",
            id="429-with-retry-after",
        ),
        pytest.param(
            429,
            budget(3, T0 + 3_600 + 42),
            {"message": "slow down"},
            SECONDARY_LIMIT_WAIT,
            "HTTP 429: slow down",
            id="429-with-budget-left-waits-a-minute",
        ),
    ],
)
async def test_rate_limits_are_read_from_githubs_answer(
    local_server: LocalServer,
    fetcher: HttpFetcher,
    status: int,
    headers: dict[str, str],
    body: dict[str, str],
    retry_after: float,
    shown: str,
) -> None:
    local_server.json(SEARCH, body, status=status, headers=headers)
    with pytest.raises(RateLimited) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert raised.value.retry_after == pytest.approx(retry_after)
    assert shown in str(raised.value)
    assert {r.path for r in local_server.requests} == {SEARCH}  # no /rate_limit or other call


async def test_403_with_budget_left_and_no_limit_named_is_blocked(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    local_server.json(
        SEARCH,
        {
            "message": "Resource protected by organization SAML enforcement. You must grant "
            "your Personal Access token access to this organization.",
            "documentation_url": "https://docs.github.com/articles/authenticating-to-a-github"
            "-organization-with-saml-single-sign-on/",
        },
        status=403,
        headers=budget(9, T0 + 3_660),
    )
    with pytest.raises(SourceBlocked) as raised:
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)
    assert "HTTP 403: Resource protected by organization SAML enforcement." in str(raised.value)
    assert not isinstance(raised.value, RateLimited)


async def test_bad_token_is_blocked_without_showing_it(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    local_server.json(
        SEARCH,
        {
            "message": f"Bad credentials for {TOKEN}",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        },
        status=401,
    )
    with pytest.raises(SourceBlocked, match="GitHub refused the token") as raised:
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)
    assert "Bad credentials" in str(raised.value)
    assert "github_token" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert not isinstance(raised.value, RateLimited)


async def test_validation_failed_shows_githubs_message_and_the_query(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    local_server.json(
        SEARCH,
        {
            "message": "Validation Failed",
            "errors": [
                {
                    "message": "The listed users and repositories cannot be searched either "
                    "because the resources do not exist or you do not have permission to view "
                    "them.",
                    "resource": "Search",
                    "field": "q",
                    "code": "invalid",
                },
                {"message": "a second error is not shown", "code": "invalid"},
            ],
            "documentation_url": "https://docs.github.com/v3/search/",
            "status": "422",
        },
        status=422,
    )
    with pytest.raises(SourceError) as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    shown = str(raised.value)
    assert "'is:issue in:title,body acme'" in shown
    assert "HTTP 422: Validation Failed: The listed users and repositories cannot be" in shown
    assert "second error" not in shown
    assert not isinstance(raised.value, SourceBlocked)


async def test_long_validation_messages_are_capped(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    local_server.json(
        SEARCH,
        {
            "message": "Validation Failed " + "µ" * 1_000,
            "errors": [{"message": "ø" * 1_000, "code": "invalid"}],
        },
        status=422,
    )
    with pytest.raises(SourceError, match="Validation Failed") as raised:
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    shown = str(raised.value)
    assert 0 < shown.count("µ") < MESSAGE_CAP
    assert 0 < shown.count("ø") <= MESSAGE_CAP
    assert len(shown) < 3 * MESSAGE_CAP


async def test_validation_failed_without_a_body_still_names_the_status(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    async def empty(_: web.Request) -> web.Response:
        return web.Response(status=422)

    local_server.route("GET", SEARCH, empty)
    with pytest.raises(SourceError, match="HTTP 422: no message"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_malformed_item_is_skipped_and_the_rest_kept(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    undated = issue(2, T0, created_at="yesterday")
    serve_search(
        local_server, by_kind([issue(1, T0), undated, ["not", "an", "issue"], issue(3, T0)])
    )
    with caplog.at_level(logging.WARNING, logger="watchers.github"):
        result = await make_source(local_server, fetcher).fetch(SourceState(), ACME)
    assert ids(result.posts) == ["I_kwDOAcme1", "I_kwDOAcme3"]
    assert caplog.text.count("skipping malformed issue") == 2


@pytest.mark.parametrize(
    "document",
    [[], {"total_count": 0, "incomplete_results": False}, {"items": {"id": 1}}],
)
async def test_unexpected_shapes_are_errors(
    local_server: LocalServer, fetcher: HttpFetcher, document: Any
) -> None:
    local_server.json(SEARCH, document)
    with pytest.raises(SourceError, match="unexpected answer"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_unexpected_graphql_shape_is_an_error(
    local_server: LocalServer, fetcher: HttpFetcher
) -> None:
    serve_search(local_server, by_kind([]))
    serve_graphql(local_server, lambda v: {"data": {"search": {"nodes": None}}})
    with pytest.raises(SourceError, match="unexpected answer from the GitHub GraphQL API"):
        await make_source(local_server, fetcher, token=TOKEN).fetch(SourceState(), ACME)


async def test_unreadable_cursor_starts_over(
    local_server: LocalServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    serve_search(local_server, by_kind([issue(1, T0)]))
    with caplog.at_level(logging.WARNING, logger="watchers.github"):
        result = await make_source(local_server, fetcher).fetch(
            SourceState(cursor='{"queries": {"issue:acme": {"newest": 1}}}'), ACME
        )
    assert ids(result.posts) == ["I_kwDOAcme1"]
    assert local_server.seen(SEARCH)[0].query["order"] == "desc"
    assert "unreadable cursor" in caplog.text


# Faults --------------------------------------------------------------------------------------


async def test_timeout(local_server: LocalServer) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response(results([]))

    local_server.route("GET", SEARCH, slow)
    async with HttpFetcher(local_policy(timeout_seconds=0.3)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await make_source(local_server, quick).fetch(SourceState(), ACME)


async def test_server_error(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    local_server.json(SEARCH, {"message": "Server Error"}, status=500)
    with pytest.raises(SourceError, match="HTTP 500"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_html_page_is_blocked(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><body>Sign in to GitHub</body></html>",
            content_type="text/html",
        )

    local_server.route("GET", SEARCH, page)
    with pytest.raises(SourceBlocked, match="HTML"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_malformed_json(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(text='{"total_count": 1, "items": [', content_type="application/json")

    local_server.route("GET", SEARCH, broken)
    with pytest.raises(SourceError, match="malformed JSON"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_truncated_body(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "5000"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(json.dumps(results([issue(1, T0)])).encode()[:200])
        request.transport.close()  # type: ignore[union-attr]
        return response

    local_server.route("GET", SEARCH, truncated)
    with pytest.raises(SourceError):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)


async def test_oversized_body(local_server: LocalServer, fetcher: HttpFetcher) -> None:
    huge = results([issue(n, T0, body="acme " * 2_000) for n in range(30)])
    local_server.json(SEARCH, huge)
    with pytest.raises(SourceError, match="larger than"):
        await make_source(local_server, fetcher).fetch(SourceState(), ACME)
