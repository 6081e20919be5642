"""The common shape of every source: fetch with state in, normalized posts and new state out.

Watchers know nothing about Slack or storage; the runner in ``bot/`` persists ``SourceState``
between polls and stores the posts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

RAW_PAYLOAD_CAP = 16_384  # characters of the source's own payload kept for debugging
# What a post may carry into storage. A source is untrusted: a feed with a 1 MB guid would
# otherwise break PostgreSQL's unique index (rows over ~2.7 kB) and fail the whole batch, and
# nobody reads a 10 MB title. Caps are generous for every real post we have seen.
MAX_EXTERNAL_ID = 512
MAX_URL = 2_048
MAX_AUTHOR = 200
MAX_TITLE = 1_000
MAX_TEXT = 40_000
MAX_LANGUAGE = 16


@dataclass(frozen=True, slots=True)
class Post:
    """One item a source returned, normalized. All text is plain text and untrusted."""

    source: str  # the source spec it came from, e.g. "rss:https://example.com/feed.xml"
    external_id: str  # stable id within that source (guid, id, link)
    url: str | None
    author: str | None
    title: str | None
    text: str
    published_at: datetime | None  # timezone-aware UTC
    language: str | None = None
    author_reach: int | None = None  # followers, karma, points, score where the source has it
    raw: str | None = None  # size-capped payload, for debugging only

    def __post_init__(self) -> None:
        # Every source builds posts through here, so the caps hold whatever a source forgets.
        capped = {
            "external_id": stable_id(self.external_id),
            "url": self.url if self.url is None or len(self.url) <= MAX_URL else None,
            "author": _clip(self.author, MAX_AUTHOR),
            "title": _clip(self.title, MAX_TITLE),
            "text": _clip(self.text, MAX_TEXT) or "",
            "language": self.language if _fits(self.language, MAX_LANGUAGE) else None,
            "raw": cap_raw(self.raw),
        }
        for name, value in capped.items():
            if value is not getattr(self, name):
                object.__setattr__(self, name, value)


def stable_id(external_id: str) -> str:
    """An id short enough to index; an over-long one becomes its digest, the same every poll
    (a cut-off prefix could make two different posts one)."""
    if len(external_id) <= MAX_EXTERNAL_ID:
        return external_id
    return "sha256:" + hashlib.sha256(external_id.encode("utf-8", "surrogatepass")).hexdigest()


def _clip(value: str | None, limit: int) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def _fits(value: str | None, limit: int) -> bool:
    return value is None or len(value) <= limit


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a source remembers between polls so it can resume and ask conditionally."""

    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None

    def evolve(self, **changes: Any) -> SourceState:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class FetchResult:
    posts: list[Post] = field(default_factory=list)
    state: SourceState = field(default_factory=SourceState)
    not_modified: bool = False


class SourceError(Exception):
    """A source could not be read. The message is shown to users in ``/earful status``."""


class SourceBlocked(SourceError):
    """The source answered with a block page, login wall or rate limit: not "zero results"."""


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """What a search-based source should ask for, derived from the watch's query.

    ``terms`` are the query's positive words and phrases (never its exclusions). A source turns
    them into its own search syntax, typically ``"acme" OR "acme cloud"``; the full query is
    still applied to every post afterwards, so a source may over-fetch but must not under-fetch.
    """

    terms: tuple[str, ...]

    def or_query(self, *, quote: str = '"', separator: str = " OR ") -> str:
        parts = []
        for term in self.terms:
            cleaned = term.replace(quote, " ").strip()
            if cleaned:
                parts.append(f"{quote}{cleaned}{quote}" if " " in cleaned else cleaned)
        return separator.join(parts)


class Source(Protocol):
    """One place to read posts from. Implementations must be safe to call concurrently.

    ``fetch`` gets the state saved after the previous poll and the watch's search terms
    (listing sources such as a feed ignore them) and returns posts plus the state to save.
    It raises SourceError (SourceBlocked for block pages, rate limits and login walls) when
    the source cannot be read; it never reports a failure as an empty result.
    """

    spec: str  # the canonical text users wrote in ``sources=``, e.g. "rss:https://…"

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult: ...


def cap_raw(raw: str | None) -> str | None:
    if raw is None:
        return None
    return raw if len(raw) <= RAW_PAYLOAD_CAP else raw[:RAW_PAYLOAD_CAP]
