"""Apple App Store customer reviews of one app in one country's store.

The source is Apple's public customer-reviews feed in its JSON form,
``<country>/rss/customerreviews/page=<n>/id=<app id>/sortby=mostrecent/json``: up to ten pages
of 50 reviews, most recently updated first. Its JSON is a transliteration of Atom in which every
value is ``{"label": …}``; ``feed.entry`` is a list, a single object when there is only one
entry, and absent when the app has no reviews. Older versions of the feed put the app itself
first among the entries; that entry has no rating and is skipped.

The feed lists every review, so the watch's search terms are not sent anywhere: the caller
matches them against each review.

Review ids are numbers that grow with time. The cursor keeps the newest id and the newest
``updated`` time seen; a poll returns the reviews with a larger id and reads further pages
until one holds a review updated before the cursor (an edited old review moves to the top
with its old id, so ids alone cannot tell where the already-seen part begins).

Apple sometimes answers an unknown app with HTTP 200 and an HTML page or an empty body, and a
throttled client with 403 or 503: these are errors, never "no reviews".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
from watchers.http import FetchResponse, HttpFetcher, decode_json
from watchers.rss import collapse_whitespace, html_to_text
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

MAX_PAGES = 10  # Apple serves no more than ten pages of the feed
PAGE_SIZE = 50  # entries on a full page; a shorter page is the last one
TEXT_CAP = 20_000
TITLE_CAP = 1_000

_APP_ID = re.compile(r"^(?:id)?(\d{5,12})$")
_COUNTRY = re.compile(r"^[a-z]{2}$")
_PAGE_IN_URL = re.compile(r"/page=(\d+)/")
# The language most reviews in a country's store are written in; stores with several
# widespread languages (Belgium, Canada, Switzerland, India…) are left out on purpose.
COUNTRY_LANGUAGES = {
    "us": "en", "gb": "en", "au": "en", "nz": "en", "ie": "en", "za": "en", "ng": "en",
    "ke": "en", "ph": "en", "de": "de", "at": "de", "fr": "fr", "es": "es", "mx": "es",
    "ar": "es", "co": "es", "cl": "es", "pe": "es", "br": "pt", "pt": "pt", "it": "it",
    "nl": "nl", "se": "sv", "dk": "da", "no": "nb", "fi": "fi", "pl": "pl", "cz": "cs",
    "sk": "sk", "hu": "hu", "ro": "ro", "gr": "el", "tr": "tr", "ru": "ru", "ua": "uk",
    "jp": "ja", "kr": "ko", "cn": "zh", "tw": "zh", "il": "he", "sa": "ar", "ae": "ar",
    "eg": "ar", "th": "th", "vn": "vi", "id": "id", "my": "ms",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Review:
    id: int
    updated: datetime
    post: Post


@dataclass(frozen=True, slots=True)
class _Cursor:
    id: int  # the largest review id seen
    updated: datetime  # the latest ``updated`` seen

    @classmethod
    def load(cls, text: str | None, spec: str) -> _Cursor | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            updated = datetime.fromisoformat(data["updated"])
            if updated.tzinfo is None:
                raise ValueError("cursor time without a time zone")
            return cls(id=int(data["id"]), updated=updated)
        except (ValueError, TypeError, KeyError):
            # Starting over costs one page; refusing to poll would cost everything.
            logger.warning("ignoring an unreadable cursor for %s", spec, exc_info=True)
            return None

    def dump(self) -> str:
        return json.dumps({"id": self.id, "updated": self.updated.isoformat()})


def _label(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    label = value.get("label") if isinstance(value, dict) else None
    return label if isinstance(label, str) else None


def _stars(rating: int) -> str:
    return "★" * rating + "☆" * (5 - rating)


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def _links(value: Any) -> list[Mapping[str, Any]]:
    """The ``attributes`` of a ``link`` that may be one object or a list of them."""
    links = value if isinstance(value, list) else [value]
    return [
        link["attributes"]
        for link in links
        if isinstance(link, dict) and isinstance(link.get("attributes"), dict)
    ]


def _content(value: Any) -> str:
    """The review text: the plain-text variant when the feed carries several."""
    variants = value if isinstance(value, list) else [value]
    best: str | None = None
    for variant in variants:
        if not isinstance(variant, dict) or not isinstance(variant.get("label"), str):
            continue
        attributes = variant.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        if kind == "html":
            best = best if best is not None else html_to_text(variant["label"])
        else:
            return collapse_whitespace(variant["label"])
    return best or ""


class AppStoreSource:
    """Reviews of one app in one App Store country (``appstore:<app id>:<country>``).

    Holds no mutable state, so one instance may serve concurrent polls.
    """

    def __init__(
        self, argument: str | None, *, fetcher: HttpFetcher, settings: SourceSettings
    ) -> None:
        app, _, country = (argument or "").strip().lower().partition(":")
        match = _APP_ID.match(app)
        country = country or "us"
        if not match or not _COUNTRY.match(country):
            raise SourceError(
                "appstore needs a numeric app id and a two-letter country, "
                "like appstore:284882215:us"
            )
        self.app_id = match.group(1)
        self.country = country
        self.spec = f"appstore:{self.app_id}:{country}"
        self._fetcher = fetcher
        self._base = settings.appstore_url.rstrip("/") + "/"
        self._language = COUNTRY_LANGUAGES.get(country)
        self._app_url = f"https://apps.apple.com/{country}/app/id{self.app_id}"

    def __repr__(self) -> str:
        return f"AppStoreSource({self.app_id!r}, {self.country!r})"

    def _page_url(self, page: int) -> str:
        return (
            f"{self._base}{self.country}/rss/customerreviews/page={page}"
            f"/id={self.app_id}/sortby=mostrecent/json"
        )

    async def fetch(self, state: SourceState, search: SearchSpec | None = None) -> FetchResult:
        cursor = _Cursor.load(state.cursor, self.spec)
        posts: list[Post] = []
        returned: set[int] = set()  # reviews shift between pages while new ones arrive
        newest_id = cursor.id if cursor else 0
        newest_updated = cursor.updated if cursor else None
        validators = (state.etag, state.last_modified)
        last_page = MAX_PAGES if cursor is not None else 1  # a first poll reads one page
        page = 1
        while page <= last_page:
            response = await self._fetcher.get(
                self._page_url(page),
                accept="application/json",
                etag=state.etag if page == 1 else None,
                last_modified=state.last_modified if page == 1 else None,
            )
            if response.not_modified:
                return FetchResult(posts=[], state=state, not_modified=True)
            if page == 1:
                validators = (response.etag, response.last_modified)
            feed = self._feed(response)
            entries = self._entries(feed)
            reviews = self._reviews(entries)
            reached_seen = False
            for review in reviews:
                if cursor is not None and review.updated < cursor.updated:
                    reached_seen = True
                if (cursor is None or review.id > cursor.id) and review.id not in returned:
                    returned.add(review.id)
                    posts.append(review.post)
                newest_id = max(newest_id, review.id)
                if newest_updated is None or review.updated > newest_updated:
                    newest_updated = review.updated
            if reached_seen or len(entries) < PAGE_SIZE:
                break
            last_page = min(last_page, self._last_page(feed, last_page))
            if page == MAX_PAGES and cursor is not None:
                logger.warning(
                    "%s: new reviews fill all %d pages Apple serves; older new ones may be missed",
                    self.spec,
                    MAX_PAGES,
                )
            page += 1

        new_cursor = (
            _Cursor(id=newest_id, updated=newest_updated).dump()
            if newest_updated is not None
            # No review yet: every review that appears later is new.
            else _Cursor(id=0, updated=datetime.fromtimestamp(0, UTC)).dump()
        )
        return FetchResult(
            posts=posts,
            state=state.evolve(etag=validators[0], last_modified=validators[1], cursor=new_cursor),
        )

    def _feed(self, response: FetchResponse) -> Mapping[str, Any]:
        where = f"app {self.app_id} in the {self.country} store"
        if not response.body.strip():
            raise SourceError(f"the App Store sent an empty answer for {where} (unknown app?)")
        try:
            document = decode_json(response)
        except SourceBlocked:
            raise SourceBlocked(
                f"the App Store sent an HTML page for {where} (unknown app, or blocked?)"
            ) from None
        feed = document.get("feed") if isinstance(document, dict) else None
        if not isinstance(feed, dict):
            raise SourceError(f"unexpected answer from the App Store for {where} (no feed)")
        return feed

    @staticmethod
    def _entries(feed: Mapping[str, Any]) -> list[Any]:
        entries = feed.get("entry", [])
        if isinstance(entries, dict):
            return [entries]
        if not isinstance(entries, list):
            raise SourceError("unexpected answer from the App Store (entry is not a list)")
        return entries

    def _reviews(self, entries: list[Any]) -> list[_Review]:
        reviews = []
        for index, entry in enumerate(entries):
            try:
                review = self._review(entry)
            except Exception:
                # One odd review must not hide the others; the traceback says why.
                logger.warning(
                    "skipping malformed review #%d of %s", index, self.spec, exc_info=True
                )
                continue
            if review is not None:
                reviews.append(review)
        return reviews

    def _review(self, entry: Mapping[str, Any]) -> _Review | None:
        rating_label = _label(entry, "im:rating")
        if rating_label is None and _label(entry, "im:name") is not None:
            return None  # the app's own entry, first in older versions of the feed
        if rating_label is None or not rating_label.strip().isdigit():
            raise ValueError(f"review without a rating: {entry!r:.200}")
        rating = int(rating_label)
        if not 1 <= rating <= 5:
            raise ValueError(f"rating out of range: {rating}")
        review_id = _label(entry, "id")
        if review_id is None or not review_id.strip().isdigit():
            raise ValueError(f"review without a numeric id: {entry!r:.200}")
        updated_label = _label(entry, "updated")
        if updated_label is None:
            raise ValueError(f"review without a date: {entry!r:.200}")
        updated = datetime.fromisoformat(updated_label)
        if updated.tzinfo is None:
            raise ValueError(f"review date without a time zone: {updated_label!r}")
        author = entry.get("author")
        name = _label(author, "name") if isinstance(author, dict) else None
        title = collapse_whitespace(_label(entry, "title") or "")
        heading = f"{_stars(rating)} {rating}/5" + (f" · {title}" if title else "")
        link = next(
            (
                _http_url(attributes.get("href"))
                for attributes in _links(entry.get("link"))
                if _http_url(attributes.get("href"))
            ),
            None,
        )
        votes = _label(entry, "im:voteSum")
        post = Post(
            source=self.spec,
            external_id=review_id.strip(),
            url=link or self._app_url,
            author=collapse_whitespace(name or "") or None,
            title=heading[:TITLE_CAP],
            text=_content(entry.get("content"))[:TEXT_CAP],
            published_at=updated.astimezone(UTC),
            language=self._language,
            author_reach=int(votes) if votes is not None and votes.strip().isdigit() else None,
            raw=cap_raw(json.dumps(entry, ensure_ascii=False)),
        )
        return _Review(id=int(review_id), updated=updated.astimezone(UTC), post=post)

    @staticmethod
    def _last_page(feed: Mapping[str, Any], default: int) -> int:
        """The page number of the feed's ``rel="last"`` link, when it has one."""
        for attributes in _links(feed.get("link")):
            href = attributes.get("href")
            if attributes.get("rel") == "last" and isinstance(href, str):
                # The query string may name another page (``?urlDesc=…/page=1/…``).
                match = _PAGE_IN_URL.search(href.split("?", 1)[0])
                if match:
                    return max(1, int(match.group(1)))
        return default
