"""One Mastodon instance as a source: its hashtag timelines, and full-text search with a token.

Without an access token an instance only shows public hashtag timelines, so every single-word
term is followed as ``#term``; phrases can only be found through ``/api/v2/search``, which
needs a token on most instances (and only finds posts from accounts that opted in to search).

Each timeline keeps its own status-id cursor. Hashtag timelines are paged forward with
``min_id`` ("the statuses immediately newer than this id"), so a burst larger than the page cap
is finished on the next poll instead of leaving a hole between the old cursor and the oldest
status fetched, as ``since_id`` + ``max_id`` paging would. Search is ordered newest first and
only pages by ``offset``, so its cap is the only place a very busy term can lose statuses.

The instance is user-supplied: every request goes through the HttpFetcher and its SSRF guard.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from watchers.base import (
    FetchResult,
    Post,
    SearchSpec,
    SourceError,
    SourceState,
    cap_raw,
)
from watchers.http import HttpBlocked, HttpFetcher, RateLimited
from watchers.rss import EXTERNAL_ID_CAP, TEXT_CAP, collapse_whitespace, html_to_text
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

PAGE_LIMIT = 40  # the API's maximum for timelines and for search
MAX_PAGES = 5  # per timeline and poll: 200 statuses, then the next poll carries on
MAX_HASHTAGS = 10
MAX_SEARCHES = 10
# Followers-only and direct statuses a token's user may see must never reach a Slack channel.
_SHAREABLE_VISIBILITY = frozenset({"public", "unlisted"})
_WORD = re.compile(r"^\w+$")


def _hashtag(term: str) -> str | None:
    """The hashtag a term can be followed as, or None (Mastodon tags need a non-digit)."""
    tag = term.strip().removeprefix("#")
    if _WORD.match(tag) and not tag.isdigit():
        return tag.casefold()
    return None


def _search_query(term: str) -> str:
    cleaned = collapse_whitespace(term.replace('"', " "))
    # Quoted, a phrase is matched as a phrase and "from:x" or "-x" lose their operator meaning.
    return cleaned if _WORD.match(cleaned) else f'"{cleaned}"'


def _id_key(status_id: str) -> tuple[int, int, str]:
    """Sort key for status ids: Mastodon's are numeric snowflakes of varying length; other
    servers (Pleroma, GoToSocial) use fixed-length strings that sort as text."""
    if status_id.isdigit():
        return (0, int(status_id), "")
    return (1, 0, status_id)


def _newer(status_id: str, than: str | None) -> bool:
    return than is None or _id_key(status_id) > _id_key(than)


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def _error_response(exc: Exception) -> tuple[int | None, Mapping[str, str], Any]:
    """Status, headers and decoded JSON body of an HTTP error, as far as the fetcher kept them.

    The JSON is None when the body was not JSON (an HTML error page) or was not kept.
    """
    status = getattr(exc, "status", None)
    headers = getattr(exc, "headers", None) or {}
    body = getattr(exc, "body", None)
    document = None
    if isinstance(body, bytes | bytearray) and body:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            document = None
    return status if isinstance(status, int) else None, headers, document


def _api_error(document: Any) -> str | None:
    """The message of a Mastodon error body, ``{"error": "...", "error_description": ...}``."""
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        message = document["error"]
        if isinstance(document.get("error_description"), str):
            message = f"{message}: {document['error_description']}"
        return collapse_whitespace(message)[:300]
    return None


def _reset_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (an ISO 8601 time on Mastodon)."""
    reset = _utc(headers.get("x-ratelimit-reset"))
    if reset is None:
        return None
    return max(0.0, reset.timestamp() - time.time())


@dataclass
class _ResetHint:
    """When the instance last said its rate-limit window resets (epoch seconds), per fetch."""

    at: float | None = None


class MastodonSource:
    """Hashtag timelines (and search, given a token) of one instance. Safe to call
    concurrently: what a poll learns lives in its state and in per-fetch locals."""

    def __init__(
        self, argument: str | None, *, fetcher: HttpFetcher, settings: SourceSettings
    ) -> None:
        if not argument:
            raise ValueError("mastodon needs an instance, like mastodon:mastodon.social")
        self.spec = f"mastodon:{argument}"
        # The registry stores https instances as a bare host and anything else as a full URL.
        self.base_url = (argument if "://" in argument else f"https://{argument}").rstrip("/")
        self.host = self.base_url.split("://", 1)[1]
        self._fetcher = fetcher
        # A token is only valid on the instance that issued it; sending it anywhere else would
        # hand it to a server that happens to be named in a watch.
        bound = (settings.mastodon_instance or "").strip().lower().rstrip("/")
        bound = bound.split("://", 1)[-1]
        self._access_token = (
            settings.mastodon_access_token if bound and bound == self.host.lower() else None
        )

    def __repr__(self) -> str:
        return f"MastodonSource({self.spec!r})"

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult:
        tags: list[str] = []
        for term in search.terms:
            tag = _hashtag(term)
            if tag is not None and tag not in tags:
                tags.append(tag)
        queries: list[str] = []
        if self._access_token:
            for term in search.terms:
                query = _search_query(term)
                if query.strip('"') and query.casefold() not in {q.casefold() for q in queries}:
                    queries.append(query)
        if not tags and not queries:
            raise SourceError(
                f"{self.spec} can only follow single-word terms, as hashtags; searching for "
                "phrases needs MASTODON_ACCESS_TOKEN"
            )
        if len(tags) > MAX_HASHTAGS or len(queries) > MAX_SEARCHES:
            logger.warning(
                "%s: following only the first %d hashtags and %d searches of %d terms",
                self.spec, MAX_HASHTAGS, MAX_SEARCHES, len(search.terms),
            )  # fmt: skip
        cursors = self._load_cursor(state.cursor)
        hint = _ResetHint()
        posts: dict[str, Post] = {}
        new_cursors: dict[str, str] = {}
        timelines = [("tag", tag, self._hashtag_timeline) for tag in tags[:MAX_HASHTAGS]] + [
            ("search", query, self._search) for query in queries[:MAX_SEARCHES]
        ]
        for kind, what, read in timelines:
            key = f"{kind}:{what.casefold()}"
            found, newest = await read(hint, what, cursors.get(key))
            for post in found:
                # A status both tagged and found by search is one post.
                posts.setdefault(post.external_id, post)
            if newest is not None:
                new_cursors[key] = newest
        return FetchResult(
            posts=list(posts.values()),
            state=state.evolve(cursor=json.dumps(new_cursors, sort_keys=True)),
        )

    def _load_cursor(self, cursor: str | None) -> dict[str, str]:
        if not cursor:
            return {}
        try:
            loaded = json.loads(cursor)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            # Failing every poll over an unreadable cursor would stop the watch for good.
            logger.warning("%s: ignoring unreadable cursor %.100r", self.spec, cursor)
            return {}
        return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}

    async def _hashtag_timeline(
        self, hint: _ResetHint, tag: str, since: str | None
    ) -> tuple[list[Post], str | None]:
        """New statuses tagged ``tag`` after status id ``since``, and the newest id seen."""
        path = f"/api/v1/timelines/tag/{quote(tag, safe='')}"
        posts: list[Post] = []
        newest = since
        for _ in range(MAX_PAGES):
            params = {"limit": str(PAGE_LIMIT)}
            if newest is not None:
                params["min_id"] = newest
            try:
                document = await self._get(hint, path, params, what=f"#{tag}", authorized=False)
            except SourceError as exc:
                if self._is_unknown_tag(exc):
                    break
                raise
            page = self._statuses(document, what=f"#{tag}")
            found, page_newest, _ = self._parse(page, after=newest)
            posts.extend(found)
            newest = page_newest or newest
            # The first poll takes the newest page only; later ones page forward until done.
            if since is None or page_newest is None or len(page) < PAGE_LIMIT:
                break
        return posts, newest

    def _is_unknown_tag(self, exc: SourceError) -> bool:
        # Older instances answer a tag nobody used with a JSON 404; a 404 page in HTML means
        # the host is not (or no longer) a Mastodon API.
        status, _, document = _error_response(exc)
        return status == 404 and _api_error(document) is not None

    async def _search(
        self, hint: _ResetHint, query: str, since: str | None
    ) -> tuple[list[Post], str | None]:
        """New statuses matching ``query`` after status id ``since``, and the newest id seen."""
        posts: list[Post] = []
        newest = since
        offset = 0
        what = f"the search for {query}"
        for page_number in range(MAX_PAGES):
            params = {"q": query, "type": "statuses", "resolve": "false", "limit": str(PAGE_LIMIT)}
            if since is not None:
                params["min_id"] = since
            if offset:
                params["offset"] = str(offset)
            document = await self._get(hint, "/api/v2/search", params, what=what, authorized=True)
            if not isinstance(document, dict):
                raise SourceError(f"{self.host} answered {what} with {type(document).__name__}")
            page = self._statuses(document.get("statuses"), what=what)
            # The server turns min_id into a date filter, so the cursor status comes back too.
            found, page_newest, reached_cursor = self._parse(page, after=since)
            posts.extend(found)
            if page_newest is not None and _newer(page_newest, newest):
                newest = page_newest
            if since is None or reached_cursor or len(page) < PAGE_LIMIT:
                break
            offset += len(page)
            if page_number == MAX_PAGES - 1:
                logger.warning(
                    "%s: more than %d new statuses for %s; older ones are skipped",
                    self.spec, MAX_PAGES * PAGE_LIMIT, query,
                )  # fmt: skip
        return posts, newest

    async def _get(
        self, hint: _ResetHint, path: str, params: dict[str, str], *, what: str, authorized: bool
    ) -> Any:
        headers = {}
        if authorized and self._access_token:
            headers["Authorization"] = f"Bearer {self._access_token}"
        try:
            document, response = await self._fetcher.get_json(
                self.base_url + path, params=params, headers=headers
            )
        except RateLimited as exc:
            raise self._rate_limited(exc, hint) from None
        except HttpBlocked as exc:
            raise self._blocked(exc, what, authorized=authorized) from None
        seconds = _reset_seconds(response.headers)
        if seconds is not None:
            hint.at = time.time() + seconds
        if isinstance(document, dict) and (message := _api_error(document)):
            raise SourceError(f"{self.host} answered {what} with an error: {message}")
        return document

    def _statuses(self, document: Any, *, what: str) -> list[Any]:
        if not isinstance(document, list):
            raise SourceError(
                f"{self.host} answered {what} with {type(document).__name__}, not a list of "
                "statuses"
            )
        return document

    def _parse(self, page: list[Any], *, after: str | None) -> tuple[list[Post], str | None, bool]:
        """Posts for the statuses newer than ``after``, the newest status id on the page, and
        whether the page reached back to ``after``."""
        posts: list[Post] = []
        newest: str | None = None
        reached = False
        for index, status in enumerate(page):
            status_id = status.get("id") if isinstance(status, dict) else None
            if isinstance(status_id, int):
                status_id = str(status_id)
            if isinstance(status_id, str) and status_id:
                if not _newer(status_id, after):
                    reached = True
                    continue
                if _newer(status_id, newest):
                    newest = status_id
            try:
                post = self._to_post(status)
            except Exception:
                # One odd status must not hide the others; the traceback says what was odd.
                logger.warning("%s: skipping malformed status #%d", self.spec, index, exc_info=True)
                continue
            if post is not None:
                posts.append(post)
        return posts, newest, reached

    def _to_post(self, status: Any) -> Post | None:
        """The post for a status; None for a status that is not public."""
        if not isinstance(status, dict):
            raise TypeError(f"a status is {type(status).__name__}, not an object")
        # A boost carries the boosted status, which is what was said and by whom.
        shown = status["reblog"] if isinstance(status.get("reblog"), dict) else status
        if shown.get("visibility") not in (None, *_SHAREABLE_VISIBILITY):
            return None
        account = shown["account"]
        if not isinstance(account, dict):
            raise TypeError("the status has no account object")
        # The uri (its ActivityPub id) is the same on every instance; the id is only local.
        external_id = shown.get("uri") or shown.get("id")
        if isinstance(external_id, int):
            external_id = str(external_id)
        if not isinstance(external_id, str) or not external_id:
            raise ValueError("the status has neither uri nor id")
        if len(external_id) > EXTERNAL_ID_CAP:
            raise ValueError("the status uri is implausibly long")
        content = shown.get("content") or ""
        spoiler = shown.get("spoiler_text") or ""
        if not isinstance(content, str) or not isinstance(spoiler, str):
            raise TypeError("content or spoiler_text is not a string")
        text = html_to_text(content)
        spoiler = collapse_whitespace(spoiler)
        if spoiler:
            text = f"{spoiler}\n\n{text}" if text else spoiler
        acct = account.get("acct")
        if not isinstance(acct, str) or not acct:
            raise ValueError("the account has no acct")
        # Local accounts have a bare user name; qualified, the name is unambiguous in Slack.
        author = acct if "@" in acct else f"{acct}@{self.host.split(':', 1)[0]}"
        followers = account.get("followers_count")
        language = shown.get("language")
        return Post(
            source=self.spec,
            external_id=external_id,
            url=_http_url(shown.get("url")) or _http_url(shown.get("uri")),
            author=author,
            author_reach=followers if isinstance(followers, int) and followers >= 0 else None,
            title=None,
            text=text[:TEXT_CAP],
            published_at=_utc(shown.get("created_at")),
            language=language.strip().lower() if isinstance(language, str) and language else None,
            raw=cap_raw(json.dumps(status, ensure_ascii=False)),
        )

    def _rate_limited(self, exc: RateLimited, hint: _ResetHint) -> RateLimited:
        # Mastodon sends no Retry-After, only X-RateLimit-Reset: on the 429 itself and on every
        # API answer before it, which is the fallback when the 429's headers are not known.
        _, headers, _ = _error_response(exc)
        retry_after = exc.retry_after
        if retry_after is None:
            retry_after = _reset_seconds(headers)
        if retry_after is None and hint.at is not None:
            retry_after = max(0.0, hint.at - time.time())
        when = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimited(
            f"rate limited by {self.host} (HTTP {exc.status}{when})",
            status=exc.status,
            retry_after=retry_after,
        )

    def _blocked(self, exc: HttpBlocked, what: str, *, authorized: bool) -> HttpBlocked:
        _, _, document = _error_response(exc)
        said = _api_error(document)
        reason = f"HTTP {exc.status}" + (f": {said}" if said else "")
        if authorized:
            hint = (
                "check MASTODON_ACCESS_TOKEN (it needs the read scope and works only on the "
                "instance that issued it)"
            )
        else:
            hint = "the instance may allow hashtag timelines to logged-in users only"
        return HttpBlocked(
            f"{self.host} refused {what} ({reason}); {hint}",
            status=exc.status,
            retry_after=exc.retry_after,
        )
