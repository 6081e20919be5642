"""GitHub issues, pull requests and discussions that mention a watch's terms.

Issues and pull requests come from the REST search (``search/issues``), which GitHub answers
with its advanced issue search (the default since September 2025). That search has been seen to
refuse queries without ``is:issue`` or ``is:pull-request`` (HTTP 422), so each group of terms is
two queries, one per kind; terms are OR-ed in parentheses, at most
``TERMS_PER_QUERY`` (and ``TERMS_CHARS`` characters) per query to stay inside GitHub's limits
on operators and query length.

Discussions are not in the REST search. With ``settings.github_token`` they are searched with
the GraphQL API (``search(type: DISCUSSION)``), one query per term, since discussion search is
not documented to support OR. GraphQL refuses anonymous callers, so without a token
discussions are skipped and only issues and pull requests are watched.

Every query keeps its own cursor: the newest ``created_at`` seen, the ``created:>=`` of its next
poll, the ids seen since then, and the ETag of its first page (GitHub answers an unchanged
result with 304, which does not count against the rate limit). The first poll of a query takes
the newest page; later polls read oldest first from the cursor, so a backlog larger than
``MAX_PAGES`` pages is caught up on the next poll instead of leaving a gap. Search results are
eventually consistent, so the next poll re-reads from ``OVERLAP_SECONDS`` before the previous
one and drops the ids already returned.

``author_reach`` is the post's reactions total (``reactions.total_count``), or its number of
comments when GitHub sends no reactions: GitHub has no follower count on a search result, and
how many people reacted is the closest measure of how many saw it.

Refusals are read from GitHub's own answer (status, headers and body), as its REST docs
describe them. A 403 or 429 is a rate limit when GitHub says so: wait ``Retry-After`` seconds
when it sent one, else until ``X-RateLimit-Reset`` when ``X-RateLimit-Remaining`` is 0, else a
minute for a secondary rate limit (its message says so) or any 429; a 403 that is none of
these is a refusal (a token without access), shown with GitHub's message. A 401 means the
token was refused; a 422 is shown with GitHub's ``message`` and first ``errors[].message``.
The GraphQL API reports a used-up budget as a ``RATE_LIMITED`` error with the same headers.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watchers.base import (
    FetchResult,
    Post,
    SearchSpec,
    SourceBlocked,
    SourceError,
    SourceState,
    cap_raw,
)
from watchers.http import (
    HttpBlocked,
    HttpFetcher,
    HttpStatusError,
    RateLimited,
    parse_retry_after,
)
from watchers.rss import collapse_whitespace
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
PER_PAGE = 100  # the maximum for both APIs
MAX_PAGES = 3  # per query and poll; more waits for the next poll (oldest first, so no gap)
OVERLAP_SECONDS = 60
SEEN_CAP = 500
TERMS_PER_QUERY = 6  # five ORs: GitHub refuses more than five AND/OR/NOT operators
TERMS_CHARS = 200  # of GitHub's 256 characters, leaving room for the qualifiers
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: without Retry-After, wait at least a minute
MESSAGE_CAP = 200  # characters of one of GitHub's error messages shown to users
TEXT_CAP = 20_000
TITLE_CAP = 1_000
ISSUE_KINDS = (("issue", "is:issue"), ("pr", "is:pull-request"))

DISCUSSION_QUERY = """
query($query: String!, $first: Int!, $after: String) {
  search(type: DISCUSSION, query: $query, first: $first, after: $after) {
    discussionCount
    pageInfo { hasNextPage endCursor }
    nodes {
      ... on Discussion {
        id
        number
        title
        bodyText
        url
        createdAt
        upvoteCount
        author { login }
        repository { nameWithOwner }
        comments { totalCount }
        reactions { totalCount }
      }
    }
  }
}
"""

_PLAIN_WORD = re.compile(r"\w+")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # issue templates are full of them
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


@dataclass
class _QueryCursor:
    newest: int  # epoch seconds of the newest created_at seen (0: nothing matched yet)
    since: int  # the next poll's created:>=
    seen: dict[str, int] = field(default_factory=dict)  # post id → created, all ≥ since
    etag: str | None = None  # of the first page, for the REST search

    def to_json(self) -> dict[str, Any]:
        return {
            "newest": self.newest,
            "since": self.since,
            "seen": sorted(self.seen.items()),
            "etag": self.etag,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _QueryCursor:
        etag = data.get("etag")
        return cls(
            newest=int(data["newest"]),
            since=int(data["since"]),
            seen={str(key): int(created) for key, created in data.get("seen", [])},
            etag=etag if isinstance(etag, str) else None,
        )


@dataclass
class _Found:
    key: str
    created: int
    post: Post


@dataclass
class _Page:
    found: list[_Found]
    has_next: bool
    after: str | None = None  # the GraphQL cursor of the next page
    etag: str | None = None
    not_modified: bool = False


def _search_text(term: str) -> str:
    """A term in GitHub's syntax: a phrase, or anything with punctuation, quoted as exact text."""
    cleaned = " ".join(term.replace('"', " ").split())
    if not cleaned or _PLAIN_WORD.fullmatch(cleaned):
        return cleaned
    return f'"{cleaned}"'


def term_groups(terms: Iterable[str]) -> list[list[str]]:
    """The terms, in GitHub's syntax and without duplicates, in groups one query can hold."""
    groups: list[list[str]] = []
    current: list[str] = []
    for text in dict.fromkeys(t for t in map(_search_text, terms) if t):
        if current and (
            len(current) == TERMS_PER_QUERY or len(" OR ".join([*current, text])) > TERMS_CHARS
        ):
            groups.append(current)
            current = []
        current.append(text)
    if current:
        groups.append(current)
    return groups


def _github_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _epoch(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r:.100}")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r:.100}")
    return int(when.timestamp())


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def markdown_text(markdown: str) -> str:
    """Markdown as plain text: comments dropped, links and images reduced to their words."""
    text = _HTML_COMMENT.sub(" ", markdown)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    return collapse_whitespace(text)


def _title(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return collapse_whitespace(value)[:TITLE_CAP] or None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class GitHubSource:
    """Issues, pull requests and (with a token) discussions on all of GitHub (spec ``github``).

    Holds no mutable state, so one instance may serve concurrent polls; everything it must
    remember travels in ``SourceState.cursor``.
    """

    spec = "github"

    def __init__(
        self,
        argument: str | None,
        *,
        fetcher: HttpFetcher,
        settings: SourceSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if argument:
            raise SourceError("github takes no value: write just `github`")
        self._fetcher = fetcher
        self._api = settings.github_api_url.rstrip("/") + "/"
        self._token = settings.github_token
        self._clock = clock

    def __repr__(self) -> str:
        return "GitHubSource()"

    @property
    def searches_discussions(self) -> bool:
        return bool(self._token)

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult:
        previous = self._load_cursor(state.cursor)
        groups = term_groups(search.terms)
        cursors: dict[str, _QueryCursor] = {}
        posts: list[Post] = []
        emitted: set[str] = set()  # one issue found by two queries is returned once
        all_not_modified = True
        for group in groups:
            terms = group[0] if len(group) == 1 else "(" + " OR ".join(group) + ")"
            for kind, qualifier in ISSUE_KINDS:
                key = f"{kind}:{terms}"
                found, cursors[key], not_modified = await self._poll(
                    previous.get(key), self._issue_page, f"{qualifier} in:title,body {terms}"
                )
                all_not_modified = all_not_modified and not_modified
                self._collect(found, posts, emitted)
        if self.searches_discussions:
            for text in (text for group in groups for text in group):
                key = f"discussion:{text}"
                found, cursors[key], _ = await self._poll(
                    previous.get(key), self._discussion_page, f"{text} in:title,body"
                )
                all_not_modified = False
                self._collect(found, posts, emitted)
        cursor = json.dumps(
            {"queries": {key: entry.to_json() for key, entry in sorted(cursors.items())}},
            separators=(",", ":"),
        )
        if all_not_modified and groups:
            return FetchResult(posts=[], state=state.evolve(cursor=cursor), not_modified=True)
        return FetchResult(posts=posts, state=state.evolve(cursor=cursor))

    @staticmethod
    def _collect(found: list[_Found], posts: list[Post], emitted: set[str]) -> None:
        for item in found:
            if item.key not in emitted:
                emitted.add(item.key)
                posts.append(item.post)

    def _load_cursor(self, text: str | None) -> dict[str, _QueryCursor]:
        if not text:
            return {}
        try:
            queries = json.loads(text)["queries"]
            return {str(key): _QueryCursor.from_json(entry) for key, entry in queries.items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            # Starting over costs one page per query; refusing to poll would cost everything.
            logger.warning("ignoring an unreadable cursor for %s", self.spec, exc_info=True)
            return {}

    async def _poll(
        self,
        previous: _QueryCursor | None,
        read_page: Callable[..., Awaitable[_Page]],
        query: str,
    ) -> tuple[list[_Found], _QueryCursor, bool]:
        """One query: what it found that is new, its next cursor, and whether it was a 304."""
        polled_at = int(self._clock())
        since = None if previous is None else previous.since
        found: list[_Found] = []
        etag = previous.etag if previous is not None else None
        after: str | None = None
        # A first poll takes only the newest page; later ones read forward from the cursor.
        for page_number in range(1, (MAX_PAGES if previous is not None else 1) + 1):
            page = await read_page(query, since=since, page=page_number, after=after, etag=etag)
            if page.not_modified:
                if previous is None:
                    raise SourceError("GitHub answered 304 Not Modified to a first request")
                return [], previous, True
            if page_number == 1:
                etag = page.etag
            found.extend(page.found)
            after = page.after
            if not page.has_next:
                break

        known = previous.seen if previous is not None else {}
        new = [item for item in found if item.key not in known and item.created >= (since or 0)]
        newest = max([item.created for item in found] + [previous.newest if previous else 0])
        # Only posts created shortly before this poll can still be missing from the index;
        # when catching up on a backlog the newest one is older than that, and re-reading the
        # window before it would only slow the catching up.
        next_since = max(0, min(newest, polled_at - OVERLAP_SECONDS))
        seen = dict(known)
        seen.update((item.key, item.created) for item in found)
        recent = sorted(
            ((key, created) for key, created in seen.items() if created >= next_since),
            key=lambda pair: (pair[1], pair[0]),
        )[-SEEN_CAP:]
        return new, _QueryCursor(newest, next_since, dict(recent), etag), False

    async def _issue_page(
        self, query: str, *, since: int | None, page: int, after: str | None, etag: str | None
    ) -> _Page:
        q = query if since is None else f"{query} created:>={_github_time(since)}"
        params = {
            "q": q,
            "sort": "created",
            "order": "desc" if since is None else "asc",
            "per_page": str(PER_PAGE),
            "page": str(page),
        }
        try:
            document, response = await self._fetcher.get_json(
                self._api + "search/issues",
                params=params,
                headers=self._headers(),
                etag=etag if page == 1 else None,
            )
        except HttpBlocked as exc:
            raise self._refusal(exc, "search") from None
        except HttpStatusError as exc:
            if exc.status != 422:
                raise
            raise SourceError(
                f"GitHub refused the search {q[:MESSAGE_CAP]!r} as invalid (HTTP 422: "
                f"{self._error_message(exc.body, with_details=True)})"
            ) from None
        if response.not_modified:
            return _Page(found=[], has_next=False, not_modified=True)
        if not isinstance(document, dict) or not isinstance(document.get("items"), list):
            raise SourceError("unexpected answer from the GitHub search (no list of items)")
        items = document["items"]
        total = _int(document.get("total_count"))
        has_next = len(items) == PER_PAGE and (total is None or page * PER_PAGE < total)
        if document.get("incomplete_results") is True:
            # GitHub timed out part of the search; the overlap re-reads it next time.
            logger.info("GitHub search %r returned incomplete results", q)
        return _Page(
            found=self._parse(items, self._issue_post, "issue"),
            has_next=has_next,
            etag=response.etag,
        )

    async def _discussion_page(
        self, query: str, *, since: int | None, page: int, after: str | None, etag: str | None
    ) -> _Page:
        if since is None:
            q = f"{query} sort:created-desc"
        else:
            q = f"{query} sort:created-asc created:>={_github_time(since)}"
        variables: dict[str, Any] = {"query": q, "first": PER_PAGE, "after": after}
        try:
            document, response = await self._fetcher.post_json(
                self._api + "graphql",
                json_body={"query": DISCUSSION_QUERY, "variables": variables},
                headers=self._headers(),
            )
        except HttpBlocked as exc:
            raise self._refusal(exc, "GraphQL") from None
        if not isinstance(document, dict):
            raise SourceError("unexpected answer from the GitHub GraphQL API (not an object)")
        errors = document.get("errors")
        if errors:
            raise self._graphql_error(errors, response.headers)
        try:
            result = document["data"]["search"]
            nodes = result["nodes"]
            page_info = result["pageInfo"]
            if not isinstance(nodes, list):
                raise TypeError("nodes is not a list")
        except (KeyError, TypeError) as exc:
            raise SourceError(
                f"unexpected answer from the GitHub GraphQL API ({type(exc).__name__}: {exc})"
            ) from None
        end_cursor = page_info.get("endCursor") if isinstance(page_info, dict) else None
        return _Page(
            found=self._parse(nodes, self._discussion_post, "discussion"),
            has_next=isinstance(page_info, dict)
            and page_info.get("hasNextPage") is True
            and isinstance(end_cursor, str),
            after=end_cursor if isinstance(end_cursor, str) else None,
        )

    def _graphql_error(self, errors: Any, headers: Mapping[str, str]) -> SourceError:
        first = errors[0] if isinstance(errors, list) and errors else {}
        first = first if isinstance(first, dict) else {}
        message = self._shown(first.get("message") or "unknown error")
        if first.get("type") == "RATE_LIMITED":
            wait = self._limit_wait(headers) or SECONDARY_LIMIT_WAIT
            return RateLimited(
                f"GitHub GraphQL rate limit: {message} (retry after {wait:.0f} s)",
                status=200,
                retry_after=wait,
                headers=headers,
            )
        return SourceError(f"GitHub GraphQL error: {message}")

    def _refusal(self, exc: HttpBlocked, what: str) -> SourceError:
        """What a 401/403/429 from GitHub means, with how long to wait when it is a limit."""
        message = self._error_message(exc.body)
        if exc.status == 401:
            if self._token:
                return SourceBlocked(
                    f"GitHub refused the token (HTTP 401: {message}): check github_token"
                )
            return SourceBlocked(f"GitHub refused the {what} request (HTTP 401: {message})")
        if exc.status not in (403, 429):
            return exc
        wait = self._limit_wait(exc.headers)
        secondary = "secondary rate limit" in message.lower()
        if wait is None and (secondary or exc.status == 429):
            wait = SECONDARY_LIMIT_WAIT  # GitHub: then wait at least a minute
        if wait is None:
            # Budget left and no limit named: the token may not read this (SSO, scopes…).
            return SourceBlocked(
                f"GitHub refused the {what} request (HTTP {exc.status}: {message})"
            )
        kind = "secondary rate limit" if secondary else "rate limit"
        return RateLimited(
            f"GitHub {what} {kind} (HTTP {exc.status}: {message}; retry after {wait:.0f} s)",
            status=exc.status,
            retry_after=wait,
            headers=exc.headers,
            body=exc.body,
        )

    def _limit_wait(self, headers: Mapping[str, str]) -> float | None:
        """Seconds GitHub's rate-limit headers ask us to wait; None when they ask for nothing.

        ``Retry-After`` comes first; then a used-up budget (``X-RateLimit-Remaining: 0``) waits
        until ``X-RateLimit-Reset`` (epoch seconds).
        """
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is not None:
            return retry_after
        if headers.get("x-ratelimit-remaining", "").strip() != "0":
            return None
        try:
            reset = float(headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return None
        return max(1.0, reset - self._clock())

    def _error_message(self, body: bytes, *, with_details: bool = False) -> str:
        """GitHub's ``message`` from an error body (and its first ``errors[].message``)."""
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            document = None
        if not isinstance(document, dict) or not document.get("message"):
            return "no message"
        message = self._shown(document["message"])
        errors = document.get("errors")
        first = errors[0] if with_details and isinstance(errors, list) and errors else None
        if isinstance(first, dict) and first.get("message"):
            message = f"{message}: {self._shown(first['message'])}"
        elif isinstance(first, str) and first:
            message = f"{message}: {self._shown(first)}"
        return message

    def _shown(self, value: Any) -> str:
        """External text fit for a status line: one line, capped, and never the token."""
        text = " ".join(str(value).split())
        if self._token:
            text = text.replace(self._token, "***")
        return text[:MESSAGE_CAP] + ("…" if len(text) > MESSAGE_CAP else "")

    def _parse(
        self, items: Iterable[Any], convert: Callable[[Any], _Found], what: str
    ) -> list[_Found]:
        found = []
        for index, item in enumerate(items):
            try:
                found.append(convert(item))
            except Exception:
                # One odd result must not hide the others; the traceback says why.
                logger.warning("skipping malformed %s #%d from GitHub", what, index, exc_info=True)
        return found

    def _issue_post(self, item: Mapping[str, Any]) -> _Found:
        node_id = item.get("node_id")
        key = node_id if isinstance(node_id, str) and node_id else f"issue:{int(item['id'])}"
        created = _epoch(item["created_at"])
        user = item.get("user")
        login = user.get("login") if isinstance(user, dict) else None
        reactions = item.get("reactions")
        reach = _int(reactions.get("total_count")) if isinstance(reactions, dict) else None
        if reach is None:
            reach = _int(item.get("comments"))
        title = item.get("title")
        body = item.get("body")
        post = Post(
            source=self.spec,
            external_id=key,
            url=_http_url(item.get("html_url")),
            author=login if isinstance(login, str) and login else None,
            title=_title(title),
            text=markdown_text(body)[:TEXT_CAP] if isinstance(body, str) else "",
            published_at=datetime.fromtimestamp(created, UTC),
            author_reach=reach,
            raw=cap_raw(json.dumps(item, ensure_ascii=False)),
        )
        return _Found(key=key, created=created, post=post)

    def _discussion_post(self, node: Mapping[str, Any]) -> _Found:
        key = node["id"]
        if not isinstance(key, str) or not key:
            raise ValueError(f"discussion without an id: {node!r:.200}")
        created = _epoch(node["createdAt"])
        author = node.get("author")
        login = author.get("login") if isinstance(author, dict) else None
        reactions = node.get("reactions")
        comments = node.get("comments")
        reach = _int(reactions.get("totalCount")) if isinstance(reactions, dict) else None
        if reach is None and isinstance(comments, dict):
            reach = _int(comments.get("totalCount"))
        title = node.get("title")
        body = node.get("bodyText")
        post = Post(
            source=self.spec,
            external_id=key,
            url=_http_url(node.get("url")),
            author=login if isinstance(login, str) and login else None,
            title=_title(title),
            text=collapse_whitespace(body)[:TEXT_CAP] if isinstance(body, str) else "",
            published_at=datetime.fromtimestamp(created, UTC),
            author_reach=reach,
            raw=cap_raw(json.dumps(node, ensure_ascii=False)),
        )
        return _Found(key=key, created=created, post=post)
