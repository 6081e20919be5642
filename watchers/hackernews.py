"""Hacker News stories and comments, through the Algolia HN Search API.

``search_by_date`` lists hits newest first. Its ``query`` has no OR operator (every word of it
must match), so each of the watch's terms is searched on its own; ``optionalWords`` would
relax a single query instead, but it splits phrases into loose words and, from four words on,
Algolia raises the number of words a hit must contain as the result list grows, which can
drop hits that contain only one term.

The cursor is the newest ``created_at_i`` seen plus the ids of every hit returned within
``LOOKBACK_SECONDS`` of it. Each poll asks for ``created_at_i >= newest - LOOKBACK_SECONDS``
and drops those ids: hits that share the newest second are not lost, and neither are hits
that Algolia indexes a little after newer ones. The API documents no ETag or Last-Modified,
and the filter moves with every poll, so there is no conditional GET.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from watchers.base import FetchResult, Post, SearchSpec, SourceError, SourceState, cap_raw
from watchers.http import FetchResponse, HttpFetcher
from watchers.rss import TEXT_CAP, TITLE_CAP, collapse_whitespace, html_to_text
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

ITEM_URL = "https://news.ycombinator.com/item?id="
TAGS = "(story,comment)"  # parentheses: stories OR comments
HITS_PER_PAGE = 100
MAX_PAGES = 5  # per term and poll; more than 500 new hits for one term means a gap, logged
MAX_TERMS = 10  # more terms than this: read the whole stream instead of one search per term
LOOKBACK_SECONDS = 600
MAX_SEEN = 2_000
# Algolia's own search metadata: it repeats the text, and would push the item itself out of
# the size-capped raw payload.
_DROPPED_FROM_RAW = ("_highlightResult", "_snippetResult", "_rankingInfo")


@dataclass(frozen=True, slots=True)
class _Cursor:
    newest: int  # created_at_i of the newest hit returned so far
    seen: dict[str, int]  # objectID → created_at_i of hits returned within the lookback

    @property
    def floor(self) -> int:
        return self.newest - LOOKBACK_SECONDS

    @classmethod
    def load(cls, text: str | None) -> _Cursor | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            newest = data["newest"]
            seen = data.get("seen", {})
            if not isinstance(newest, int) or isinstance(newest, bool):
                raise ValueError("newest is not an integer")
            if not isinstance(seen, dict) or not all(
                isinstance(key, str) and isinstance(value, int) for key, value in seen.items()
            ):
                raise ValueError("seen is not a map of ids to timestamps")
        except (ValueError, TypeError, KeyError):
            # Starting over re-reads one page; the store drops what it already has.
            logger.warning("ignoring unreadable Hacker News cursor %r", text[:200], exc_info=True)
            return None
        return cls(newest=newest, seen=seen)

    def dump(self) -> str:
        return json.dumps({"newest": self.newest, "seen": self.seen}, separators=(",", ":"))

    def advanced(self, returned: Iterable[tuple[str, int]]) -> _Cursor:
        pool = dict(self.seen)
        pool.update(returned)
        newest = max([self.newest, *pool.values()])
        return _Cursor(newest=newest, seen=_recent(pool, newest))


def _recent(pool: Mapping[str, int], newest: int) -> dict[str, int]:
    floor = newest - LOOKBACK_SECONDS
    kept = sorted(
        ((key, when) for key, when in pool.items() if when >= floor),
        key=lambda item: item[1],
        reverse=True,
    )
    return dict(kept[:MAX_SEEN])


def _queries(terms: Sequence[str]) -> list[str]:
    """One Algolia query per term; the whole stream ("") when there are too many to ask."""
    queries: list[str] = []
    for term in terms:
        # Quotes would need Algolia's advancedSyntax; unquoted, a phrase matches posts with all
        # of its words anywhere, which includes every post with the phrase.
        cleaned = collapse_whitespace(term.replace('"', " "))
        if cleaned and cleaned.lower() not in (q.lower() for q in queries):
            queries.append(cleaned)
    if not queries or len(queries) > MAX_TERMS:
        return [""]
    return queries


def _optional_str(hit: Mapping[str, Any], key: str) -> str | None:
    value = hit.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{key} is a {type(value).__name__}, not a string")


def _identity(hit: Any) -> tuple[str, int]:
    """The objectID and created_at_i of a hit, or ValueError if it has none usable."""
    if not isinstance(hit, Mapping):
        raise ValueError(f"hit is a {type(hit).__name__}, not an object")
    object_id = hit.get("objectID")
    created = hit.get("created_at_i")
    if not isinstance(object_id, str) or not object_id.strip():
        raise ValueError("hit has no objectID")
    if not isinstance(created, int) or isinstance(created, bool):
        raise ValueError(f"hit {object_id} has no integer created_at_i")
    return object_id.strip(), created


def _server_time(response: FetchResponse) -> int | None:
    """The API server's clock from the Date header, for a cursor when nothing was found."""
    try:
        when = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        return None
    return int(when.timestamp()) if when.tzinfo is not None else None


def _http_url(value: str | None) -> str | None:
    if value and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return None


class HackerNewsSource:
    """All of Hacker News (spec ``hn``), searched for the watch's terms. Keeps no state."""

    def __init__(
        self, argument: str | None, *, fetcher: HttpFetcher, settings: SourceSettings
    ) -> None:
        if argument:
            raise ValueError("the hn source takes no argument")
        self.spec = "hn"
        self._fetcher = fetcher
        self._search_url = settings.hn_api_url.rstrip("/") + "/search_by_date"

    def __repr__(self) -> str:
        return "HackerNewsSource()"

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult:
        cursor = _Cursor.load(state.cursor)
        found: dict[str, tuple[int, Mapping[str, Any]]] = {}
        server_time: int | None = None
        for query in _queries(search.terms):
            hits, response = await self._search(query, cursor)
            server_time = server_time or _server_time(response)
            for object_id, created, hit in hits:
                found.setdefault(object_id, (created, hit))

        newest_first = sorted(found.items(), key=lambda item: item[1][0], reverse=True)
        posts: list[Post] = []
        for object_id, (created, hit) in newest_first:
            try:
                posts.append(self._to_post(object_id, created, hit))
            except Exception:
                # One odd hit must not hide the others; the traceback says what was odd.
                logger.warning("skipping malformed Hacker News hit %s", object_id, exc_info=True)

        returned = [(object_id, created) for object_id, (created, _) in found.items()]
        if cursor is not None:
            new_cursor: _Cursor | None = cursor.advanced(returned)
        elif returned:
            new_cursor = _Cursor(newest=0, seen={}).advanced(returned)
        elif server_time is not None:
            # Nothing yet: start from the server's "now" so the next poll reads everything
            # that appears in between, not just the newest page.
            new_cursor = _Cursor(newest=server_time, seen={})
        else:
            new_cursor = None
        return FetchResult(
            posts=posts,
            state=state.evolve(cursor=new_cursor.dump() if new_cursor else state.cursor),
        )

    async def _search(
        self, query: str, cursor: _Cursor | None
    ) -> tuple[list[tuple[str, int, Mapping[str, Any]]], FetchResponse]:
        """New hits for one query, newest first, paging back until the cursor is reached."""
        params = {"query": query, "tags": TAGS, "hitsPerPage": str(HITS_PER_PAGE)}
        if cursor is not None:
            params["numericFilters"] = f"created_at_i>={cursor.floor}"
        # The very first poll reads the newest page only: a watch starts now, not in 2007.
        pages = MAX_PAGES if cursor is not None else 1
        found: list[tuple[str, int, Mapping[str, Any]]] = []
        response: FetchResponse | None = None
        for page in range(pages):
            params["page"] = str(page)
            document, response = await self._fetcher.get_json(self._search_url, params=params)
            hits, page_count = _page(document)
            for index, hit in enumerate(hits):
                try:
                    object_id, created = _identity(hit)
                except ValueError:
                    logger.warning(
                        "skipping Hacker News hit #%d of page %d", index, page, exc_info=True
                    )
                    continue
                if cursor is not None and (created < cursor.floor or object_id in cursor.seen):
                    continue
                found.append((object_id, created, hit))
            if page + 1 >= page_count or len(hits) < HITS_PER_PAGE:
                break
        else:
            if cursor is not None:
                logger.warning(
                    "Hacker News search %r has more than %d new hits since the last poll; "
                    "older ones were skipped",
                    query,
                    MAX_PAGES * HITS_PER_PAGE,
                )
        assert response is not None
        return found, response

    def _to_post(self, object_id: str, created: int, hit: Mapping[str, Any]) -> Post:
        author = _optional_str(hit, "author")
        tags = hit.get("_tags")
        is_comment = (isinstance(tags, list) and "comment" in tags) or (
            _optional_str(hit, "comment_text") is not None
        )
        reach: int | None = None
        if is_comment:
            story_title = collapse_whitespace(_optional_str(hit, "story_title") or "")
            title = f"Re: {story_title}" if story_title else None
            text = html_to_text(_optional_str(hit, "comment_text") or "")
        else:
            title = collapse_whitespace(_optional_str(hit, "title") or "") or None
            body = html_to_text(_optional_str(hit, "story_text") or "")
            # A link story's own URL is most of what it says: keep it matchable.
            link = _http_url(_optional_str(hit, "url"))
            text = " ".join(part for part in (body, link) if part)
            points = hit.get("points")
            if isinstance(points, int) and not isinstance(points, bool):
                reach = points
        raw = {key: value for key, value in hit.items() if key not in _DROPPED_FROM_RAW}
        return Post(
            source=self.spec,
            external_id=object_id,
            url=ITEM_URL + object_id,
            author=(author or "").strip() or None,
            title=title[:TITLE_CAP] if title else None,
            text=text[:TEXT_CAP],
            published_at=datetime.fromtimestamp(created, UTC),
            author_reach=reach,
            raw=cap_raw(json.dumps(raw, ensure_ascii=False, default=str)),
        )


def _page(document: Any) -> tuple[list[Any], int]:
    """The hits and page count of one answer, or SourceError for an error or a strange shape."""
    if not isinstance(document, dict):
        raise SourceError(f"unexpected answer from Hacker News search: {type(document).__name__}")
    hits = document.get("hits")
    if hits is None and "message" in document:
        raise SourceError(f"Hacker News search failed: {str(document['message'])[:200]}")
    if not isinstance(hits, list):
        raise SourceError("unexpected answer from Hacker News search: no list of hits")
    page_count = document.get("nbPages", 1)
    if not isinstance(page_count, int) or isinstance(page_count, bool):
        raise SourceError("unexpected answer from Hacker News search: nbPages is not a number")
    return hits, page_count
