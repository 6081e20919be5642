"""The common shape of every source: fetch with state in, normalized posts and new state out.

Watchers know nothing about Slack or storage; the runner in ``bot/`` persists ``SourceState``
between polls and stores the posts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

RAW_PAYLOAD_CAP = 16_384  # characters of the source's own payload kept for debugging


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
