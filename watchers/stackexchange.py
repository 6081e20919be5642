"""Stack Exchange questions (Stack Overflow, Super User, Ask Ubuntu…) that mention a watch.

Each term of the watch is one ``/search/advanced`` query (``q`` has no OR operator, so one
query per term is the only way not to miss any), sorted by creation date. The first poll of a
term takes its newest page; later polls ask for everything created since the term's cursor,
oldest first, so a busy period that needs more than ``MAX_PAGES`` pages is caught up on the
next poll instead of leaving a gap.

The API's own throttles are part of the state, because they outlive one poll:

* ``backoff`` in a response forbids calling the method again for that many seconds; until
  then a poll returns no posts without a request (and logs that it did so).
* ``quota_remaining`` reaching 0 means the daily quota (300 requests per IP without a key,
  10,000 with ``settings.stackexchange_key``) is used up until the UTC day rolls over; polls
  until then raise RateLimited without a request.

Stack Exchange reports its errors as HTTP 400 with ``error_id``, ``error_name`` and
``error_message`` in the body, which HttpFetcher keeps on the exception: ``throttle_violation``
(too many requests, or a backoff ignored) becomes RateLimited with the wait its message names,
a refused key or token SourceBlocked, anything else a SourceError naming the error.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
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
from watchers.http import HttpBlocked, HttpFetcher, HttpStatusError, RateLimited
from watchers.rss import html_to_text
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

METHOD = "search/advanced"
PAGE_SIZE = 100  # the API's maximum
MAX_PAGES = 3  # per term and poll; more waits for the next poll (oldest first, so no gap)
# The search index lags behind new questions: the next poll re-asks for what was created this
# long before the previous one, to pick up late arrivals; the ids remembered for that window
# keep them from being returned twice.
OVERLAP_SECONDS = 120
SEEN_CAP = 500
TEXT_CAP = 20_000
TITLE_CAP = 1_000
ERROR_MESSAGE_CAP = 200

# "too many requests from this IP, more requests available in 82367 seconds"
_WAIT_IN_MESSAGE = re.compile(r"(\d+)\s*seconds?", re.IGNORECASE)
_PLAIN_WORD = re.compile(r"\w+")
# Stack Exchange errors that mean "not allowed" rather than "broken" (error_name values);
# every ``access_token_*`` error is one too.
_REFUSALS = frozenset({"access_denied", "invalid_access_token", "key_invalid", "key_required"})
# The Stack Overflow sites in another language; the rest of the network writes in English,
# except for language-learning sites, where no single language is right.
_SITE_LANGUAGES = {
    "ru.stackoverflow": "ru",
    "pt.stackoverflow": "pt",
    "es.stackoverflow": "es",
    "ja.stackoverflow": "ja",
}


@dataclass
class _TermCursor:
    newest: int  # creation_date (epoch seconds) of the newest question seen for the term
    since: int  # the next poll's fromdate
    seen: dict[int, int] = field(default_factory=dict)  # question_id → creation_date, ≥ since


@dataclass
class _Cursor:
    terms: dict[str, _TermCursor] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # not polled last time: they go first
    not_before: float | None = None  # epoch: Stack Exchange asked for a backoff until then
    quota_reset: float | None = None  # epoch: the daily quota is used up until then

    @classmethod
    def load(cls, text: str | None, spec: str) -> _Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            terms = {
                str(term): _TermCursor(
                    newest=int(entry["newest"]),
                    since=int(entry["since"]),
                    seen={int(qid): int(created) for qid, created in entry.get("seen", [])},
                )
                for term, entry in data.get("terms", {}).items()
            }
            return cls(
                terms=terms,
                pending=[str(term) for term in data.get("pending", [])],
                not_before=_optional_float(data.get("not_before")),
                quota_reset=_optional_float(data.get("quota_reset")),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            # Starting over costs one page per term; refusing to poll would cost everything.
            logger.warning("ignoring an unreadable cursor for %s", spec, exc_info=True)
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {
                "terms": {
                    term: {
                        "newest": entry.newest,
                        "since": entry.since,
                        "seen": sorted(entry.seen.items()),
                    }
                    for term, entry in sorted(self.terms.items())
                },
                "pending": self.pending,
                "not_before": self.not_before,
                "quota_reset": self.quota_reset,
            },
            separators=(",", ":"),
        )


@dataclass
class _Page:
    items: list[Any]
    has_more: bool
    backoff: float | None
    quota_remaining: int | None


@dataclass
class _TermResult:
    posts: list[Post]
    cursor: _TermCursor
    backoff: float | None = None
    quota_used_up: bool = False


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _search_text(term: str) -> str:
    """The ``q`` for one term: a phrase (or anything with punctuation) quoted as exact text."""
    cleaned = " ".join(term.replace('"', " ").split())
    if not cleaned or _PLAIN_WORD.fullmatch(cleaned):
        return cleaned
    return f'"{cleaned}"'


def _next_utc_midnight(now: float) -> float:
    today = datetime.fromtimestamp(now, UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() + 86_400


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


class StackExchangeSource:
    """Questions on one Stack Exchange site (``stackexchange:<site>``) matching a watch's terms.

    Holds no mutable state, so one instance may serve concurrent polls; everything it must
    remember travels in ``SourceState.cursor``.
    """

    def __init__(
        self,
        argument: str | None,
        *,
        fetcher: HttpFetcher,
        settings: SourceSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        site = (argument or "").strip().lower()
        if not site:
            raise SourceError("stackexchange needs a site, like stackexchange:stackoverflow")
        self.site = site
        self.spec = f"stackexchange:{site}"
        self._fetcher = fetcher
        self._url = settings.stackexchange_api_url.rstrip("/") + "/" + METHOD
        self._key = settings.stackexchange_key
        self._clock = clock
        self._language = _SITE_LANGUAGES.get(site.removesuffix(".com"))

    def __repr__(self) -> str:
        return f"StackExchangeSource({self.site!r})"

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult:
        cursor = _Cursor.load(state.cursor, self.spec)
        now = self._clock()
        if cursor.quota_reset is not None and now < cursor.quota_reset:
            wait = cursor.quota_reset - now
            raise RateLimited(
                f"the Stack Exchange daily quota is used up until midnight UTC "
                f"(retry after {wait:.0f} s)",
                status=429,
                retry_after=wait,
            )
        if cursor.not_before is not None and now < cursor.not_before:
            logger.info(
                "%s: Stack Exchange asked for a backoff; not searching for another %.0f s",
                self.spec,
                cursor.not_before - now,
            )
            return FetchResult(posts=[], state=state)

        texts = list(dict.fromkeys(t for t in map(_search_text, search.terms) if t))
        # Terms a backoff or the quota cut short last time go first, so none starves.
        order = [t for t in cursor.pending if t in texts] + [
            t for t in texts if t not in cursor.pending
        ]
        terms = {t: c for t, c in cursor.terms.items() if t in texts}
        posts: list[Post] = []
        emitted: set[str] = set()  # one question found by two terms is returned once
        pending: list[str] = []
        not_before: float | None = None
        quota_reset: float | None = None
        for index, text in enumerate(order):
            result = await self._poll_term(text, terms.get(text))
            terms[text] = result.cursor
            for post in result.posts:
                if post.external_id not in emitted:
                    emitted.add(post.external_id)
                    posts.append(post)
            if result.backoff is not None:
                not_before = self._clock() + result.backoff
                logger.info(
                    "%s: Stack Exchange asked for a %.0f s backoff", self.spec, result.backoff
                )
            if result.quota_used_up:
                quota_reset = _next_utc_midnight(self._clock())
                logger.warning(
                    "%s: the Stack Exchange daily quota is used up until midnight UTC", self.spec
                )
            if not_before is not None or quota_reset is not None:
                pending = order[index + 1 :]
                break
        new_cursor = _Cursor(
            terms=terms, pending=pending, not_before=not_before, quota_reset=quota_reset
        )
        return FetchResult(posts=posts, state=state.evolve(cursor=new_cursor.dump()))

    async def _poll_term(self, text: str, previous: _TermCursor | None) -> _TermResult:
        since = None if previous is None else previous.since
        polled_at = int(self._clock())
        found: list[tuple[int, int, Post]] = []
        backoff: float | None = None
        quota_used_up = False
        # A first poll takes only the newest page; later ones read forward from the cursor.
        for page_number in range(1, (MAX_PAGES if previous is not None else 1) + 1):
            page = await self._request(text, since, page_number)
            found.extend(self._parse_items(page.items))
            backoff = page.backoff
            quota_used_up = page.quota_remaining is not None and page.quota_remaining <= 0
            if backoff is not None or quota_used_up or not page.has_more:
                break

        known = previous.seen if previous is not None else {}
        posts = [
            post
            for qid, created, post in found
            if qid not in known and (since is None or created >= since)
        ]
        # 0 when a term has never matched: then everything it matches later is new.
        newest = max([created for _, created, _ in found] + [previous.newest if previous else 0])
        # Only questions created shortly before this poll can still be missing from the index;
        # when catching up on a backlog the newest one is older than that, and re-reading the
        # window before it would only slow the catching up.
        next_since = max(0, min(newest, polled_at - OVERLAP_SECONDS))
        seen = dict(known)
        seen.update((qid, created) for qid, created, _ in found)
        recent = sorted(
            ((qid, created) for qid, created in seen.items() if created >= next_since),
            key=lambda pair: (pair[1], pair[0]),
        )[-SEEN_CAP:]
        return _TermResult(
            posts=posts,
            cursor=_TermCursor(newest=newest, since=next_since, seen=dict(recent)),
            backoff=backoff,
            quota_used_up=quota_used_up,
        )

    async def _request(self, text: str, since: int | None, page: int) -> _Page:
        params = {
            "q": text,
            "site": self.site,
            "sort": "creation",
            "order": "desc" if since is None else "asc",
            "pagesize": str(PAGE_SIZE),
            "page": str(page),
            "filter": "withbody",
        }
        if since is not None:
            params["fromdate"] = str(since)
        if self._key:
            params["key"] = self._key
        try:
            document, _ = await self._fetcher.get_json(self._url, params=params)
        except (HttpStatusError, HttpBlocked) as exc:
            error = self._api_error(exc)
            if error is None:
                raise
            raise error from None
        if not isinstance(document, dict):
            raise SourceError("unexpected answer from Stack Exchange (not a JSON object)")
        items = document.get("items")
        if not isinstance(items, list):
            raise SourceError("unexpected answer from Stack Exchange (no list of items)")
        backoff = document.get("backoff")
        quota = document.get("quota_remaining")
        return _Page(
            items=items,
            has_more=document.get("has_more") is True,
            backoff=float(backoff) if isinstance(backoff, int | float) and backoff > 0 else None,
            quota_remaining=quota if isinstance(quota, int) else None,
        )

    def _api_error(self, exc: HttpStatusError | HttpBlocked) -> SourceError | None:
        """What Stack Exchange's error document in ``exc`` means; None if it sent none."""
        try:
            document = json.loads(exc.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(document, dict) or "error_name" not in document:
            return None
        name = str(document.get("error_name") or "error")[:50]
        message = " ".join(str(document.get("error_message") or "").split())
        if self._key:
            message = message.replace(self._key, "***")  # before capping: no half a key
        message = message[:ERROR_MESSAGE_CAP]
        shown = f"{name}: {message}" if message else name
        if name == "throttle_violation":
            wait = _WAIT_IN_MESSAGE.search(message)
            return RateLimited(
                f"Stack Exchange throttled us ({shown})",
                status=exc.status,
                retry_after=float(wait.group(1)) if wait else None,
            )
        if name in _REFUSALS or name.startswith("access_token_"):
            return SourceBlocked(f"Stack Exchange refused the search ({shown})")
        return SourceError(
            f"Stack Exchange could not search {self.site} (HTTP {exc.status}, {shown})"
        )

    def _parse_items(self, items: Iterable[Any]) -> list[tuple[int, int, Post]]:
        parsed = []
        for index, item in enumerate(items):
            try:
                parsed.append(self._to_post(item))
            except Exception:
                # One odd question must not hide the others; the traceback says why.
                logger.warning(
                    "skipping malformed question #%d from %s", index, self.spec, exc_info=True
                )
        return parsed

    def _to_post(self, item: Mapping[str, Any]) -> tuple[int, int, Post]:
        qid = item["question_id"]
        created = item["creation_date"]
        if not isinstance(qid, int) or not isinstance(created, int):
            raise ValueError(f"question_id and creation_date must be integers, not {item!r:.200}")
        owner = item.get("owner")
        owner = owner if isinstance(owner, dict) else {}
        name = owner.get("display_name")
        reputation = owner.get("reputation")
        body = item.get("body")
        excerpt = item.get("excerpt")
        markup = body if isinstance(body, str) else excerpt if isinstance(excerpt, str) else ""
        title = item.get("title")
        # Stack Exchange sends titles and names HTML-escaped ("C&#39;s &amp; C++").
        author = " ".join(html.unescape(name).split()) if isinstance(name, str) else ""
        title = " ".join(html.unescape(title).split()) if isinstance(title, str) else ""
        post = Post(
            source=self.spec,
            external_id=str(qid),
            url=_http_url(item.get("link")),
            author=author or None,
            title=title[:TITLE_CAP] or None,
            text=html_to_text(markup)[:TEXT_CAP],
            published_at=datetime.fromtimestamp(created, UTC),
            language=self._language,
            author_reach=reputation if isinstance(reputation, int) else None,
            raw=cap_raw(json.dumps(item, ensure_ascii=False)),
        )
        return qid, created, post
