"""Bluesky post search (``app.bsky.feed.searchPosts``) as a source.

Bluesky's search has no ``OR`` (bluesky-social/social-app#1522: terms are always ANDed), so each
term is its own search, for at most ``MAX_TERMS`` terms.

Where the requests go:
- Anonymous: ``settings.bluesky_api_url`` (the public AppView). Bluesky has repeatedly closed
  anonymous search there (HTTP 403), and always refuses anonymous paging with ``cursor``, so an
  anonymous poll reads one page per term and a refusal says to configure an account.
- With ``BLUESKY_IDENTIFIER`` and ``BLUESKY_APP_PASSWORD``: a session from
  ``com.atproto.server.createSession`` on ``settings.bluesky_auth_url``, and the searches go to
  that same host, which proxies ``app.bsky.*`` calls to the AppView. An access token is only
  valid at the server that issued it (the AppView expects tokens that server mints for it), so
  sending it to the public AppView would not work.

Per term the cursor keeps the newest ``indexedAt`` seen and the post URIs seen at that instant.
Polls ask for ``since`` a little before it, because ``since`` filters on Bluesky's ``sortAt``
(the earlier of ``createdAt`` and ``indexedAt``), and drop what is not newer than the cursor.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from watchers.http import HttpBlocked, HttpFetcher, RateLimited, decode_json
from watchers.rss import TEXT_CAP, collapse_whitespace
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

MAX_TERMS = 10
PAGE_LIMIT = 100  # the lexicon's maximum
MAX_PAGES = 3  # per term and poll, and only with an account: anonymous paging is refused
# How far before the cursor ``since`` reaches: a post's sortAt may precede its indexedAt.
SINCE_MARGIN = timedelta(minutes=10)
MAX_URIS_AT_CURSOR = 100
SESSION_RENEW_EARLY = 300  # seconds before an access token expires
SESSION_FALLBACK_LIFETIME = 1_800  # when a token's expiry cannot be read
# Session ages are measured with this, so tests can let a session grow old without waiting.
_clock: Callable[[], float] = time.time
_TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_LOGIN_HINT = "set BLUESKY_IDENTIFIER and BLUESKY_APP_PASSWORD to search with an account"


class _TokenRefused(Exception):
    """The server refused a session's access token: renew the session and ask again."""


@dataclass
class _Session:
    access_jwt: str
    refresh_jwt: str
    renew_at: float  # epoch seconds


@dataclass
class _SessionSlot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: _Session | None = None


# Sources are built afresh for every poll, but a session must outlive them: createSession is
# limited to a few dozen calls per account and hour. Keyed by fetcher, which lives as long as
# the app and on one event loop (so the locks do too); the password only as a hash, so a new
# one takes effect at once.
_SESSIONS: weakref.WeakKeyDictionary[HttpFetcher, dict[tuple[str, str, str], _SessionSlot]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _Mark:
    """The newest ``indexedAt`` seen for a term, and the post URIs seen at that instant."""

    at: datetime
    uris: set[str]

    def is_older(self, at: datetime, uri: str) -> bool:
        return at < self.at or (at == self.at and uri in self.uris)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(timespec="microseconds"), "uris": sorted(self.uris)}


@dataclass
class _ResetHint:
    """When the server last said its rate-limit window resets (epoch seconds), per fetch."""

    at: float | None = None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # The lexicon's datetimes carry a zone; without one the moment is unknown.
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _xrpc_time(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _search_query(term: str) -> str:
    cleaned = collapse_whitespace(term.replace('"', " "))
    # Quoted, a phrase is a phrase and "from:x", "lang:x" or "-x" lose their operator meaning.
    return cleaned if cleaned.replace("_", "").isalnum() else f'"{cleaned}"'


def _error_response(exc: Exception) -> tuple[int | None, Mapping[str, str], Any]:
    """Status, headers and decoded JSON body of an HTTP error, as far as the fetcher kept them."""
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


def _xrpc_error(document: Any) -> tuple[str | None, str | None]:
    """``(error, message)`` of an XRPC error body ``{"error": "...", "message": "..."}``."""
    if not isinstance(document, dict):
        return None, None
    error, message = document.get("error"), document.get("message")
    return (
        collapse_whitespace(error)[:100] if isinstance(error, str) else None,
        collapse_whitespace(message)[:300] if isinstance(message, str) else None,
    )


def _explained(status: int | None, document: Any) -> str:
    error, message = _xrpc_error(document)
    said = ": ".join(part for part in (error, message) if part)
    return (f"HTTP {status}" if status else "refused") + (f", {said}" if said else "")


def _reset_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until ``RateLimit-Reset``: epoch seconds at Bluesky, delta seconds in the IETF
    draft; a value too small to be a date is taken as the latter."""
    value = headers.get("ratelimit-reset", "").strip()
    if not value.isdigit():
        return None
    reset = int(value)
    if reset < 1_000_000_000:
        return float(reset)
    return max(0.0, reset - time.time())


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without checking it: only to renew it in time."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class BlueskySource:
    """Bluesky post search for the watch's terms. Safe to call concurrently: a poll's findings
    live in its state and locals, and the shared session is renewed under a lock."""

    def __init__(
        self, argument: str | None, *, fetcher: HttpFetcher, settings: SourceSettings
    ) -> None:
        if argument:
            raise ValueError("bluesky takes no value")
        self.spec = "bluesky"
        self._fetcher = fetcher
        self._api_url = settings.bluesky_api_url
        self._auth_url = settings.bluesky_auth_url
        self._identifier = settings.bluesky_identifier or None
        self._password = settings.bluesky_app_password or None

    def __repr__(self) -> str:
        return "BlueskySource()"

    @property
    def _authenticated(self) -> bool:
        return self._identifier is not None and self._password is not None

    async def fetch(self, state: SourceState, search: SearchSpec) -> FetchResult:
        if (self._identifier is None) != (self._password is None):
            raise SourceError("Bluesky needs both BLUESKY_IDENTIFIER and BLUESKY_APP_PASSWORD")
        queries: list[str] = []
        for term in search.terms:
            query = _search_query(term)
            if query.strip('"') and query.casefold() not in {q.casefold() for q in queries}:
                queries.append(query)
        if not queries:
            raise SourceError("the watch has no words to search Bluesky for")
        if len(queries) > MAX_TERMS:
            logger.warning(
                "bluesky: searching only the first %d of %d terms", MAX_TERMS, len(queries)
            )
        marks = self._load_cursor(state.cursor)
        hint = _ResetHint()
        posts: dict[str, Post] = {}
        new_marks: dict[str, dict[str, Any]] = {}
        for query in queries[:MAX_TERMS]:
            key = query.casefold()
            found, mark = await self._search_term(hint, query, marks.get(key))
            for post in found:
                posts.setdefault(post.external_id, post)
            if mark is not None:
                new_marks[key] = mark.to_json()
        return FetchResult(
            posts=list(posts.values()),
            state=state.evolve(cursor=json.dumps(new_marks, sort_keys=True)),
        )

    def _load_cursor(self, cursor: str | None) -> dict[str, _Mark]:
        if not cursor:
            return {}
        try:
            loaded = json.loads(cursor)
        except ValueError:
            loaded = None
        marks: dict[str, _Mark] = {}
        if isinstance(loaded, dict):
            for key, value in loaded.items():
                at = _utc(value.get("at")) if isinstance(value, dict) else None
                uris = value.get("uris") if isinstance(value, dict) else None
                if at is not None and isinstance(uris, list):
                    marks[key] = _Mark(at, {uri for uri in uris if isinstance(uri, str)})
        if not marks and loaded != {}:
            # Failing every poll over an unreadable cursor would stop the watch for good.
            logger.warning("bluesky: ignoring unreadable cursor %.100r", cursor)
        return marks

    async def _search_term(
        self, hint: _ResetHint, query: str, mark: _Mark | None
    ) -> tuple[list[Post], _Mark | None]:
        """The posts for ``query`` newer than ``mark``, and the mark to keep."""
        since = _xrpc_time(mark.at - SINCE_MARGIN) if mark is not None else None
        # The first poll takes the newest page only; anonymous paging is refused anyway.
        pages = MAX_PAGES if mark is not None and self._authenticated else 1
        posts: list[Post] = []
        newest = _Mark(mark.at, set(mark.uris)) if mark is not None else None
        page_cursor: str | None = None
        reached_mark = False
        for _ in range(pages):
            items, page_cursor = await self._search_page(hint, query, since, page_cursor)
            for index, item in enumerate(items):
                seen = self._position(item)
                if seen is None:
                    logger.warning("bluesky: skipping post #%d without uri or indexedAt", index)
                    continue
                at, uri = seen
                if newest is None or at > newest.at:
                    newest = _Mark(at, {uri})
                elif at == newest.at and len(newest.uris) < MAX_URIS_AT_CURSOR:
                    newest.uris.add(uri)
                if mark is not None and mark.is_older(at, uri):
                    reached_mark = True
                    continue
                try:
                    posts.append(self._to_post(item))
                except Exception:
                    # One odd post must not hide the others; the traceback says what was odd.
                    logger.warning("bluesky: skipping malformed post %s", uri, exc_info=True)
            if not page_cursor or not items or reached_mark:
                break
        else:
            if mark is not None and page_cursor and not reached_mark:
                logger.warning(
                    "bluesky: more than %d new posts for %s since the last poll; older ones "
                    "are skipped%s",
                    pages * PAGE_LIMIT,
                    query,
                    "" if self._authenticated else f" ({_LOGIN_HINT} and page through them)",
                )
        return posts, newest

    def _position(self, item: Any) -> tuple[datetime, str] | None:
        if not isinstance(item, dict):
            return None
        uri, at = item.get("uri"), _utc(item.get("indexedAt"))
        if not isinstance(uri, str) or not uri.startswith("at://") or at is None:
            return None
        return at, uri

    async def _search_page(
        self, hint: _ResetHint, query: str, since: str | None, page_cursor: str | None
    ) -> tuple[list[Any], str | None]:
        params = {"q": query, "sort": "latest", "limit": str(PAGE_LIMIT)}
        if since is not None:
            params["since"] = since
        if page_cursor is not None:
            params["cursor"] = page_cursor
        if not self._authenticated:
            document = await self._get(hint, self._api_url, params, query=query, token=None)
        else:
            token = await self._access_token()
            try:
                document = await self._get(
                    hint, self._auth_url, params, query=query, token=token, renewable=True
                )
            except _TokenRefused:
                # Expired or revoked before its time: renew once and ask again.
                token = await self._access_token(stale=token)
                document = await self._get(hint, self._auth_url, params, query=query, token=token)
        if not isinstance(document, dict) or not isinstance(document.get("posts"), list):
            error, message = _xrpc_error(document)
            if error or message:
                said = ": ".join(part for part in (error, message) if part)
                raise SourceError(f"Bluesky answered the search for {query} with an error: {said}")
            raise SourceError(f"Bluesky answered the search for {query} without a list of posts")
        next_cursor = document.get("cursor")
        return document["posts"], next_cursor if isinstance(next_cursor, str) else None

    async def _get(
        self,
        hint: _ResetHint,
        base_url: str,
        params: dict[str, str],
        *,
        query: str,
        token: str | None,
        renewable: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            document, response = await self._fetcher.get_json(
                f"{base_url}app.bsky.feed.searchPosts", params=params, headers=headers
            )
        except RateLimited as exc:
            raise self._rate_limited(exc, hint) from None
        except SourceError as exc:
            status, _, body = _error_response(exc)
            error, message = _xrpc_error(body)
            if renewable and (status == 401 or (status == 400 and error in _TOKEN_ERRORS)):
                raise _TokenRefused() from None
            if isinstance(exc, HttpBlocked):
                if token:
                    raise HttpBlocked(
                        f"Bluesky refused the search for {query} ({_explained(status, body)})",
                        status=exc.status,
                    ) from None
                raise HttpBlocked(
                    f"Bluesky refused anonymous search ({_explained(status, body)}); {_LOGIN_HINT}",
                    status=exc.status,
                ) from None
            if isinstance(exc, SourceBlocked) and not token:
                raise SourceBlocked(f"{exc}; {_LOGIN_HINT}") from None
            if status is not None and (error or message):
                raise SourceError(
                    f"Bluesky rejected the search for {query} ({_explained(status, body)})"
                ) from None
            raise
        seconds = _reset_seconds(response.headers)
        if seconds is not None:
            hint.at = time.time() + seconds
        return document

    def _rate_limited(self, exc: RateLimited, hint: _ResetHint | None) -> RateLimited:
        # Bluesky sends RateLimit-Reset rather than Retry-After: on the 429 itself and on every
        # answer before it, which is the fallback when the 429's headers are not known.
        _, headers, _ = _error_response(exc)
        retry_after = exc.retry_after
        if retry_after is None:
            retry_after = _reset_seconds(headers)
        if retry_after is None and hint is not None and hint.at is not None:
            retry_after = max(0.0, hint.at - time.time())
        when = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimited(
            f"rate limited by Bluesky (HTTP {exc.status}{when})",
            status=exc.status,
            retry_after=retry_after,
        )

    # --- the session ---------------------------------------------------------------------

    def _slot(self) -> _SessionSlot:
        assert self._identifier is not None and self._password is not None
        fingerprint = hashlib.sha256(self._password.encode()).hexdigest()
        slots = _SESSIONS.setdefault(self._fetcher, {})
        return slots.setdefault((self._auth_url, self._identifier, fingerprint), _SessionSlot())

    async def _access_token(self, *, stale: str | None = None) -> str:
        """A current access token; ``stale`` is one the server just refused."""
        slot = self._slot()
        async with slot.lock:
            session = slot.session
            fresh = session is not None and _clock() < session.renew_at
            if session is not None and fresh and session.access_jwt != stale:
                return session.access_jwt
            if session is not None:
                try:
                    slot.session = await self._refresh_session(session)
                except RateLimited as exc:
                    raise self._rate_limited(exc, None) from None
                except SourceError:
                    logger.info("bluesky: could not refresh the session; logging in again")
                    slot.session = None
                else:
                    return slot.session.access_jwt
            slot.session = await self._create_session()
            return slot.session.access_jwt

    async def _create_session(self) -> _Session:
        url = f"{self._auth_url}com.atproto.server.createSession"
        try:
            document, _ = await self._fetcher.post_json(
                url, json_body={"identifier": self._identifier, "password": self._password}
            )
        except RateLimited as exc:
            raise self._rate_limited(exc, None) from None
        except HttpBlocked as exc:
            status, _, body = _error_response(exc)
            raise HttpBlocked(
                f"Bluesky login failed ({_explained(status, body)}); check BLUESKY_IDENTIFIER "
                "and BLUESKY_APP_PASSWORD",
                status=exc.status,
            ) from None
        except SourceBlocked:
            raise
        except SourceError as exc:
            status, _, body = _error_response(exc)
            if status is None:
                raise
            raise SourceError(f"Bluesky login failed ({_explained(status, body)})") from None
        return self._session_from(document, what="login")

    async def _refresh_session(self, session: _Session) -> _Session:
        # refreshSession takes no input: the refresh token is the credential, and a body
        # (even "null") is refused by XRPC servers.
        response = await self._fetcher.request(
            "POST",
            f"{self._auth_url}com.atproto.server.refreshSession",
            headers={"Authorization": f"Bearer {session.refresh_jwt}"},
            accept="application/json",
        )
        return self._session_from(decode_json(response), what="session refresh")

    def _session_from(self, document: Any, *, what: str) -> _Session:
        access = document.get("accessJwt") if isinstance(document, dict) else None
        refresh = document.get("refreshJwt") if isinstance(document, dict) else None
        if not isinstance(access, str) or not access or not isinstance(refresh, str):
            raise SourceError(f"Bluesky answered the {what} without session tokens")
        now = _clock()
        expiry = _jwt_expiry(access)
        renew_at = now + SESSION_FALLBACK_LIFETIME
        if expiry is not None:
            # Never sooner than a minute away, so a skewed clock cannot renew on every request.
            renew_at = max(now + 60, expiry - SESSION_RENEW_EARLY)
        return _Session(access_jwt=access, refresh_jwt=refresh, renew_at=renew_at)

    # --- posts ---------------------------------------------------------------------------

    def _to_post(self, item: dict[str, Any]) -> Post:
        uri = item["uri"]
        author = item["author"]
        record = item["record"]
        if not isinstance(author, dict) or not isinstance(record, dict):
            raise TypeError("the post has no author or record object")
        handle = author.get("handle")
        did = author.get("did")
        if not isinstance(handle, str) or not handle:
            raise ValueError("the author has no handle")
        text = record.get("text", "")
        if not isinstance(text, str):
            raise TypeError("record.text is not a string")
        authority, _, rkey = uri.removeprefix("at://").rpartition("/")
        if not rkey or not authority.endswith("/app.bsky.feed.post"):
            raise ValueError(f"not a post URI: {uri[:200]}")
        # bsky.app links by handle, or by DID when the handle no longer verifies.
        profile = handle if handle != "handle.invalid" else did
        if not isinstance(profile, str) or not profile:
            raise ValueError("the author has neither a valid handle nor a did")
        langs = record.get("langs")
        language = langs[0] if isinstance(langs, list) and langs else None
        followers = author.get("followersCount")  # absent from search's author view
        return Post(
            source=self.spec,
            external_id=uri,
            url=f"https://bsky.app/profile/{profile}/post/{rkey}",
            author=handle,
            author_reach=followers if isinstance(followers, int) and followers >= 0 else None,
            title=None,
            text=collapse_whitespace(text)[:TEXT_CAP],
            published_at=_utc(record.get("createdAt")) or _utc(item.get("indexedAt")),
            language=language.strip().lower() if isinstance(language, str) and language else None,
            raw=cap_raw(json.dumps(item, ensure_ascii=False)),
        )
