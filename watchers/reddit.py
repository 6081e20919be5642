"""Reddit as a source: a site-wide search of posts (``reddit``), or every new post and comment
of one subreddit (``reddit:r/<name>``), which the caller then matches against the watch.

Reads the public JSON listings, or Reddit's OAuth API with an application-only token when a
client id and secret are configured (higher rate limits, fewer blocks). Either way every
request carries a descriptive User-Agent, which Reddit requires.

Cursors, one per listing, all built on fullnames (``t3_…`` posts, ``t1_…`` comments):

- A subreddit's ``new`` and ``comments`` listings are ordered by id and complete at once, so
  they are read forward with ``before=<fullname>``: the page just newer than a known item,
  then the page newer than that. A poll that stops at the page cap leaves the cursor on the
  newest item it returned and the next poll carries on from there, so a busy hour is caught up
  without a gap. ``before`` names the second-newest known item, so a live anchor always
  answers with at least the newest one; an empty page therefore means the anchor was deleted,
  and the listing is read like a search instead (below).
- Search results are not ordered by id and new posts reach the search index late, so a
  search is read newest first, paging back with ``after=`` until it reaches posts older than
  the newest one returned before minus ``LOOKBACK_SECONDS``; the fullnames returned within
  that window are remembered and skipped.

Reddit documents no ETag or Last-Modified for listings, and a poll that reads forward asks for
a different slice each time, so there is no conditional GET.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from yarl import URL

from watchers.base import (
    FetchResult,
    Post,
    SearchSpec,
    SourceBlocked,
    SourceError,
    SourceState,
    cap_raw,
)
from watchers.http import FetchResponse, HttpBlocked, HttpFetcher, RateLimited, decode_json
from watchers.rss import TEXT_CAP, TITLE_CAP, collapse_whitespace
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

WEB_URL = "https://www.reddit.com"
PAGE_SIZE = 100  # the most a listing returns at once
MAX_PAGES = 5  # per listing and poll
MAX_QUERY_LENGTH = 512  # the longest search query Reddit documents
LOOKBACK_SECONDS = 900  # how late a post may reach the search index and still be found
MAX_SEEN = 1_000
ANCHORS = 2
TOKEN_MARGIN_SECONDS = 60  # renew a token this long before Reddit says it expires
_SUBREDDIT = re.compile(r"^r/([A-Za-z0-9][A-Za-z0-9_]{1,20})$")
_HTTP_STATUS = re.compile(r"^HTTP (\d{3}) ")
_KINDS = ("t1", "t3")  # comments and posts; anything else in a listing is not a post

# Application-only tokens per (token URL, client id, hash of secret), shared by every source
# instance: the poller builds a new source for each poll. Two polls racing for a token both
# get one, which Reddit allows, so there is no lock (an asyncio lock would tie the cache to
# one event loop).
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}


@dataclass(frozen=True, slots=True)
class _Item:
    name: str  # fullname
    created: float  # created_utc
    kind: str
    data: Mapping[str, Any]
    child: Mapping[str, Any]

    @property
    def order(self) -> tuple[float, int]:
        return _order(self.name, self.created)


def _order(name: str, created: float) -> tuple[float, int]:
    """Listing order: by creation time, then by id (base 36, assigned in sequence)."""
    try:
        number = int(name.partition("_")[2], 36)
    except ValueError:
        number = 0
    return created, number


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where one listing was left: the newest item, the newest fullnames, recent fullnames."""

    newest: float
    anchors: tuple[tuple[str, float], ...] = ()  # (fullname, created_utc), newest first
    seen: dict[str, float] = field(default_factory=dict)  # returned within the lookback

    @property
    def floor(self) -> float:
        return self.newest - LOOKBACK_SECONDS

    def known(self, name: str) -> bool:
        return name in self.seen or any(name == anchor for anchor, _ in self.anchors)

    def advanced(self, returned: Iterable[_Item], live: Iterable[_Item] | None = None) -> _Mark:
        """The mark after returning ``returned``; ``live`` are items just seen on the newest
        page, which replace the old anchors (those may have been deleted since)."""
        items = [(item.name, item.created) for item in returned]
        pool = dict(self.seen)
        pool.update(items)
        newest = max([self.newest, *(created for _, created in items)])
        candidates = dict(items)
        if live is None:
            candidates.update(self.anchors)
        else:
            candidates.update((item.name, item.created) for item in live)
        anchors = sorted(candidates.items(), key=lambda pair: _order(*pair), reverse=True)
        floor = newest - LOOKBACK_SECONDS
        recent = sorted(
            ((name, created) for name, created in pool.items() if created >= floor),
            key=lambda pair: pair[1],
            reverse=True,
        )
        return _Mark(newest=newest, anchors=tuple(anchors[:ANCHORS]), seen=dict(recent[:MAX_SEEN]))

    def dump(self) -> dict[str, Any]:
        return {
            "newest": self.newest,
            "anchors": [list(a) for a in self.anchors],
            "seen": self.seen,
        }

    @classmethod
    def load(cls, data: Any) -> _Mark:
        newest = data["newest"]
        anchors = tuple((str(name), _number(created)) for name, created in data["anchors"])
        seen = {str(name): _number(created) for name, created in data["seen"].items()}
        return cls(newest=_number(newest), anchors=anchors, seen=seen)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _load_cursor(text: str | None) -> dict[str, _Mark]:
    if not text:
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the cursor is not an object")
        return {str(key): _Mark.load(mark) for key, mark in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        # Starting over re-reads one page; the store drops what it already has.
        logger.warning("ignoring unreadable Reddit cursor %r", text[:200], exc_info=True)
        return {}


@dataclass(frozen=True, slots=True)
class _Listing:
    key: str  # its mark in the cursor: "search", "new" or "comments"
    path: str  # under the API base, without the ".json" the public site needs
    params: dict[str, str]
    reads_forward: bool  # ordered by id and complete: follow it with before=
    label: str  # for messages


@dataclass(frozen=True, slots=True)
class _Page:
    children: list[Any]
    items: list[_Item]  # the usable children, in listing order (newest first)
    after: str | None


@dataclass
class _Poll:
    """What one fetch learns about Reddit as it goes: its token and its rate-limit budget."""

    token: str | None = None
    remaining: float | None = None
    reset: float | None = None
    server_time: float | None = None


def _search_queries(terms: Iterable[str]) -> list[str]:
    """OR-queries of the terms, each within Reddit's query length limit."""
    parts: list[str] = []
    for term in terms:
        part = SearchSpec(terms=(term,)).or_query()
        words = part.strip('"').split()
        # Dropping words from the end of a phrase only widens what it matches.
        while len(part) > MAX_QUERY_LENGTH and len(words) > 1:
            words.pop()
            part = SearchSpec(terms=(" ".join(words),)).or_query()
        part = part[:MAX_QUERY_LENGTH]
        if part and part.lower() not in (p.lower() for p in parts):
            parts.append(part)
    queries: list[str] = []
    for part in parts:
        if queries and len(queries[-1]) + len(" OR ") + len(part) <= MAX_QUERY_LENGTH:
            queries[-1] += " OR " + part
        else:
            queries.append(part)
    return queries


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{key} is a {type(value).__name__}, not a string")


def _http_url(value: str | None) -> str | None:
    if value and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return None


def _item(child: Any) -> _Item:
    if not isinstance(child, Mapping):
        raise ValueError(f"listing child is a {type(child).__name__}, not an object")
    kind, data = child.get("kind"), child.get("data")
    if kind not in _KINDS or not isinstance(data, Mapping):
        raise ValueError(f"listing child of kind {kind!r} is not a post or comment")
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith(f"{kind}_"):
        raise ValueError(f"{kind} has no fullname")
    created = data.get("created_utc")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise ValueError(f"{name} has no numeric created_utc")
    return _Item(name=name, created=float(created), kind=kind, data=data, child=child)


def _float_header(response: FetchResponse, name: str) -> float | None:
    try:
        return float(response.headers.get(name, ""))
    except ValueError:
        return None


def _server_time(response: FetchResponse) -> float | None:
    try:
        when = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


class RedditSource:
    """Reddit search (``reddit``) or one subreddit (``reddit:r/<name>``). Keeps no poll state."""

    def __init__(
        self, argument: str | None, *, fetcher: HttpFetcher, settings: SourceSettings
    ) -> None:
        self.subreddit: str | None = None
        if argument is not None:
            match = _SUBREDDIT.match(argument.strip())
            if not match:
                raise ValueError(f"not a subreddit: {argument!r} (write r/<name>)")
            self.subreddit = match.group(1).lower()
        self.spec = f"reddit:r/{self.subreddit}" if self.subreddit else "reddit"
        self._fetcher = fetcher
        self._user_agent = settings.user_agent
        self._token_url = settings.reddit_url.rstrip("/") + "/api/v1/access_token"
        self._credentials: tuple[str, str] | None = None
        if settings.reddit_client_id and settings.reddit_client_secret:
            self._credentials = (settings.reddit_client_id, settings.reddit_client_secret)
            self._base = settings.reddit_oauth_url.rstrip("/") + "/"
        else:
            self._base = settings.reddit_url.rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"RedditSource({self.spec!r})"

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult:
        listings = self._listings(search)
        marks = _load_cursor(state.cursor)
        poll = _Poll()
        found: dict[str, dict[str, _Item]] = {}
        live: dict[str, list[_Item] | None] = {}
        for listing in listings:
            items, seen_live = await self._read(poll, listing, marks.get(listing.key))
            bucket = found.setdefault(listing.key, {})
            for item in items:
                bucket.setdefault(item.name, item)
            if seen_live is not None:
                live[listing.key] = [*(live.get(listing.key) or []), *seen_live]

        new_marks = dict(marks)
        for key, bucket in found.items():
            mark = marks.get(key)
            if mark is None:
                if bucket:
                    mark = _Mark(newest=0.0).advanced(bucket.values())
                elif poll.server_time is not None:
                    # Nothing yet: start from Reddit's "now", so that the next poll reads all
                    # that appears in between rather than just the newest page.
                    mark = _Mark(newest=poll.server_time)
            else:
                mark = mark.advanced(bucket.values(), live.get(key))
            if mark is not None:
                new_marks[key] = mark

        items = sorted(
            {item.name: item for bucket in found.values() for item in bucket.values()}.values(),
            key=lambda item: item.order,
            reverse=True,
        )
        posts: list[Post] = []
        for item in items:
            try:
                posts.append(self._to_post(item))
            except Exception:
                # One odd item must not hide the others; the traceback says what was odd.
                logger.warning("skipping malformed Reddit item %s", item.name, exc_info=True)
        cursor = (
            json.dumps({key: mark.dump() for key, mark in new_marks.items()}, separators=(",", ":"))
            if new_marks
            else state.cursor
        )
        return FetchResult(posts=posts, state=state.evolve(cursor=cursor))

    def _listings(self, search: SearchSpec) -> list[_Listing]:
        suffix = "" if self._credentials else ".json"
        common = {"limit": str(PAGE_SIZE), "raw_json": "1"}  # raw_json: no &amp; in the text
        if self.subreddit is not None:
            where = f"r/{self.subreddit}"
            return [
                _Listing("new", f"{where}/new{suffix}", common, True, f"{where} posts"),
                _Listing(
                    "comments", f"{where}/comments{suffix}", common, True, f"{where} comments"
                ),
            ]
        queries = _search_queries(search.terms)
        if not queries:
            raise SourceError("a Reddit search needs at least one word or phrase to look for")
        return [
            _Listing(
                "search",
                f"search{suffix}",
                # Comments are not searchable; NSFW posts are left out unless asked for.
                {**common, "q": query, "sort": "new", "type": "link", "include_over_18": "on"},
                False,
                "the Reddit search",
            )
            for query in queries
        ]

    async def _read(
        self, poll: _Poll, listing: _Listing, mark: _Mark | None
    ) -> tuple[list[_Item], list[_Item] | None]:
        """New items of one listing, and the items now known to be at its top (if read)."""
        if mark is None:
            # The very first poll reads the newest page only: a watch starts now.
            page = await self._page(poll, listing, {})
            return page.items, page.items[:ANCHORS]
        if listing.reads_forward and len(mark.anchors) >= ANCHORS:
            caught_up = await self._read_forward(poll, listing, mark)
            if caught_up is not None:
                return caught_up, None
        return await self._read_back(poll, listing, mark)

    async def _read_forward(
        self, poll: _Poll, listing: _Listing, mark: _Mark
    ) -> list[_Item] | None:
        """Items newer than the anchor, oldest page first; None if the anchor is gone."""
        anchor = mark.anchors[ANCHORS - 1][0]
        collected: list[_Item] = []
        for number in range(MAX_PAGES):
            page = await self._page(poll, listing, {"before": anchor})
            if not page.children:
                # Reddit answers an anchor that was deleted with an empty page, and a live
                # second-newest anchor always has the newest item after it.
                return None if number == 0 else collected
            collected.extend(item for item in page.items if not mark.known(item.name))
            if len(page.children) < PAGE_SIZE or not page.items:
                return collected
            anchor = page.items[0].name  # the newest on this page
        logger.info(
            "%s: more than %d new items; the next poll carries on from the newest returned",
            listing.label,
            MAX_PAGES * PAGE_SIZE,
        )
        return collected

    async def _read_back(
        self, poll: _Poll, listing: _Listing, mark: _Mark
    ) -> tuple[list[_Item], list[_Item]]:
        """Items from the newest back to the mark's lookback floor, skipping those returned."""
        collected: list[_Item] = []
        top: list[_Item] = []
        after: str | None = None
        for number in range(MAX_PAGES):
            page = await self._page(poll, listing, {"after": after} if after else {})
            if number == 0:
                top = page.items[:ANCHORS]
            reached = False
            for item in page.items:
                if item.created < mark.floor:
                    reached = True
                elif not mark.known(item.name):
                    collected.append(item)
            after = page.after or (page.items[-1].name if page.items else None)
            if reached or len(page.children) < PAGE_SIZE or after is None:
                return collected, top
        logger.warning(
            "%s has more than %d new items since the last poll; older ones were skipped",
            listing.label,
            MAX_PAGES * PAGE_SIZE,
        )
        return collected, top

    async def _page(self, poll: _Poll, listing: _Listing, extra: dict[str, str]) -> _Page:
        document = await self._get(poll, listing, {**listing.params, **extra})
        where = listing.label
        if isinstance(document, dict) and "error" in document and "data" not in document:
            detail = " ".join(
                str(document[key])[:100]
                for key in ("error", "message", "reason")
                if key in document
            )
            raise SourceError(f"Reddit answered {where} with an error: {detail}")
        if not isinstance(document, dict) or document.get("kind") != "Listing":
            raise SourceError(f"unexpected answer from Reddit for {where}: not a Listing")
        data = document.get("data")
        children = data.get("children") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(children, list):
            raise SourceError(
                f"unexpected answer from Reddit for {where}: a Listing without children"
            )
        items: list[_Item] = []
        for index, child in enumerate(children):
            try:
                items.append(_item(child))
            except ValueError:
                logger.warning("skipping item #%d of %s", index, where, exc_info=True)
        after = data.get("after")
        return _Page(
            children=children, items=items, after=after if isinstance(after, str) else None
        )

    async def _get(self, poll: _Poll, listing: _Listing, params: dict[str, str]) -> Any:
        if poll.remaining is not None and poll.remaining < 1:
            wait = poll.reset
            raise RateLimited(
                "Reddit's rate limit is used up"
                + (f"; it resets in {wait:.0f} s" if wait is not None else ""),
                status=429,
                retry_after=wait,
            )
        url = self._base + listing.path
        for attempt in range(2):
            headers = {"User-Agent": self._user_agent}
            if self._credentials is not None:
                if poll.token is None or attempt:
                    poll.token = await self._token(renew=bool(attempt))
                headers["Authorization"] = f"bearer {poll.token}"
            try:
                response = await self._fetcher.get(
                    url, params=params, headers=headers, accept="application/json"
                )
            except RateLimited as exc:
                if exc.retry_after is None and poll.reset is not None:
                    raise RateLimited(str(exc), status=exc.status, retry_after=poll.reset) from None
                raise
            except HttpBlocked as exc:
                if exc.status == 401 and self._credentials is not None and not attempt:
                    continue  # the token expired early or was revoked: get a new one, once
                raise self._refused(listing, exc) from None
            except SourceError as exc:
                status = _HTTP_STATUS.match(str(exc))
                if status and status.group(1) == "404" and self.subreddit is not None:
                    raise SourceError(
                        f"r/{self.subreddit} was not found: it is banned or does not exist "
                        "(HTTP 404)"
                    ) from None
                raise
            break
        self._note_limits(poll, response)
        path = URL(response.url).path
        if "/login" in path:
            raise SourceBlocked(f"Reddit sent {listing.label} to its login page")
        if self.subreddit is not None and "/subreddits/search" in path:
            # Reddit redirects an unknown subreddit's listing to a search for similar names.
            raise SourceError(f"r/{self.subreddit} does not exist")
        return decode_json(response)

    def _refused(self, listing: _Listing, exc: HttpBlocked) -> SourceBlocked:
        if exc.status == 403 and self.subreddit is not None:
            return SourceBlocked(
                f"Reddit refused r/{self.subreddit} (HTTP 403): the subreddit is private or "
                "quarantined, or Reddit is blocking this server"
            )
        if exc.status == 401 and self._credentials is not None:
            return SourceBlocked("Reddit rejected Earful's access token (HTTP 401)")
        return SourceBlocked(
            f"Reddit refused {listing.label} (HTTP {exc.status}): blocked, or a login is required"
        )

    def _note_limits(self, poll: _Poll, response: FetchResponse) -> None:
        remaining = _float_header(response, "x-ratelimit-remaining")
        reset = _float_header(response, "x-ratelimit-reset")
        if remaining is not None:
            poll.remaining = remaining
        if reset is not None:
            poll.reset = reset
        if poll.server_time is None:
            poll.server_time = _server_time(response)

    async def _token(self, *, renew: bool) -> str:
        assert self._credentials is not None
        client_id, secret = self._credentials
        key = (self._token_url, client_id, hashlib.sha256(secret.encode()).hexdigest())
        cached = _tokens.get(key)
        if cached is not None and not renew and cached[1] > time.monotonic():
            return cached[0]
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")
        try:
            document, _ = await self._fetcher.post_json(
                self._token_url,
                form={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}", "User-Agent": self._user_agent},
            )
        except RateLimited:
            raise
        except HttpBlocked as exc:
            raise SourceBlocked(
                f"Reddit refused the configured client id and secret (HTTP {exc.status})"
            ) from None
        if not isinstance(document, dict):
            raise SourceError("unexpected answer from Reddit's token endpoint")
        if "error" in document:
            raise SourceError(f"Reddit did not grant a token: {str(document['error'])[:100]}")
        token = document.get("access_token")
        expires_in = document.get("expires_in", 3600)
        if not isinstance(token, str) or not token:
            raise SourceError("Reddit's token endpoint answered without an access token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = 3600
        _tokens[key] = (token, time.monotonic() + max(0.0, expires_in - TOKEN_MARGIN_SECONDS))
        return token

    def _to_post(self, item: _Item) -> Post:
        data = item.data
        permalink = _optional_str(data, "permalink")
        author = _optional_str(data, "author")
        if author in ("[deleted]", ""):
            author = None
        score = data.get("score")
        if item.kind == "t3":
            title = collapse_whitespace(_optional_str(data, "title") or "") or None
            body = collapse_whitespace(_optional_str(data, "selftext") or "")
            # A link post's target is most of what it says: keep it matchable.
            link = None if data.get("is_self") else _http_url(_optional_str(data, "url"))
            text = " ".join(part for part in (body, link) if part)
        else:
            link_title = collapse_whitespace(_optional_str(data, "link_title") or "")
            title = f"Re: {link_title}" if link_title else None
            text = collapse_whitespace(_optional_str(data, "body") or "")
        return Post(
            source=self.spec,
            external_id=item.name,
            url=WEB_URL + permalink if permalink and permalink.startswith("/") else None,
            author=author,
            title=title[:TITLE_CAP] if title else None,
            text=text[:TEXT_CAP],
            published_at=datetime.fromtimestamp(item.created, UTC),
            author_reach=score if isinstance(score, int) and not isinstance(score, bool) else None,
            raw=cap_raw(json.dumps(item.child, ensure_ascii=False, default=str)),
        )
