"""RSS 2.0 / Atom 1.0 (and the older RSS/RDF variants feedparser knows) as a source.

The body is fetched by HttpFetcher (SSRF guard, size cap, conditional GET) and only then
handed to feedparser, as a stream: given a URL feedparser would fetch it with urllib and no
guard, and given bytes it first tries to open them as a local file name.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import time
import xml.sax
import xml.sax.handler
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import defusedxml
import defusedxml.sax
import feedparser

from watchers.base import (
    FetchResult,
    Post,
    SearchSpec,
    SourceBlocked,
    SourceError,
    SourceState,
    cap_raw,
)
from watchers.http import FetchResponse, HttpFetcher
from watchers.source_settings import SourceSettings

logger = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
TEXT_CAP = 20_000  # characters of an entry's text kept; enough to match and to summarise
TITLE_CAP = 1_000
EXTERNAL_ID_CAP = 512  # longer ids are replaced by their hash so they fit an indexed column

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# feedparser flags these as "bozo" although the feed itself is fine.
_BENIGN_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
# "<!ENTITY" in the encodings a lenient parser might decode a malformed document from.
_ENTITY_MARKERS = tuple(
    "<!ENTITY".encode(encoding)
    for encoding in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_HTML_START = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_EMAIL_THEN_NAME = re.compile(r"^\s*[^\s@()<>]+@[^\s()<>]+\s*\((?P<name>[^()]+)\)\s*$")  # RSS
_NAME_THEN_EMAIL = re.compile(
    r"^\s*(?P<name>[^<>()]+?)\s*(<[^\s@<>]+@[^\s<>]+>|\([^\s@()]+@[^\s()]+\))\s*$"
)  # "Name <email>", and the "Name (email)" feedparser builds from an Atom <author>


class _TextExtractor(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "template", "noscript"})
    # Block-level tags: text on either side of them must not run together ("a</p><p>b").
    _BREAKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
            "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
            "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th",
            "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skip_depth += 1
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def html_to_text(markup: str) -> str:
    """Plain text from an HTML fragment: tags and script/style dropped, entities unescaped."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return collapse_whitespace("".join(extractor.parts))


def _detail_text(detail: Mapping[str, Any] | None, fallback: str | None = None) -> str:
    """The text of a feedparser ``*_detail`` dict, converted from HTML when it is HTML."""
    if detail is None:
        return collapse_whitespace(fallback or "")
    value = detail.get("value") or ""
    if detail.get("type") in _HTML_TYPES:
        return html_to_text(value)
    return collapse_whitespace(value)


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return None


def _utc(parsed: time.struct_time | None) -> datetime | None:
    if parsed is None:
        return None
    try:
        # feedparser has already converted the date to UTC.
        return datetime(*parsed[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _author_name(entry: Mapping[str, Any]) -> str | None:
    """The author's name, without the e-mail address feeds put next to it.

    feedparser's own split (``author_detail``) mangles addresses whose top-level domain is
    longer than four letters, so the two usual shapes are taken apart here.
    """
    author = entry.get("author")
    if not isinstance(author, str) or not author.strip():
        return (entry.get("author_detail") or {}).get("name") or None
    if match := _EMAIL_THEN_NAME.match(author) or _NAME_THEN_EMAIL.match(author):
        return match.group("name")
    return author


def _stable_hash(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _reject_entities(body: bytes) -> None:
    """Raise SourceError if the document declares XML entities (billion laughs, XXE).

    feedparser would expand entities itself; defusedxml stops at the first declaration, before
    any expansion, so a bomb costs a few microseconds instead of gigabytes.
    """
    try:
        defusedxml.sax.parseString(body, xml.sax.handler.ContentHandler())
    except defusedxml.EntitiesForbidden:
        raise SourceError("refusing a feed that declares XML entities (XML bomb?)") from None
    except defusedxml.ExternalReferenceForbidden:
        # Only a DOCTYPE's external subset gets here (an external entity is refused above as
        # a declaration), and expat reports the internal subset first: nothing to expand.
        # Old RSS 0.91 feeds carry exactly such a DOCTYPE.
        return
    except defusedxml.DefusedXmlException as exc:
        raise SourceError(f"refusing a feed with unsafe XML ({type(exc).__name__})") from None
    except xml.sax.SAXParseException:
        # Not well-formed, so expat stopped early and may not have seen every declaration,
        # while feedparser's lenient parser may still read it: look for declarations by hand.
        if any(marker in body for marker in _ENTITY_MARKERS):
            raise SourceError("refusing a feed that declares XML entities (XML bomb?)") from None


def _looks_like_html(response: FetchResponse) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _HTML_TYPES:
        return True
    return _HTML_START.search(response.body[:2048]) is not None


class RssSource:
    """An RSS or Atom feed at ``url``. Safe to call concurrently (no mutable state)."""

    def __init__(
        self, url: str, fetcher: HttpFetcher, settings: SourceSettings | None = None
    ) -> None:
        self.url = url
        self.spec = "rss:" + url
        self._fetcher = fetcher

    def __repr__(self) -> str:
        return f"RssSource({self.url!r})"

    async def fetch(self, state: SourceState, search: SearchSpec | None = None) -> FetchResult:
        response = await self._fetcher.get(
            self.url, etag=state.etag, last_modified=state.last_modified, accept=FEED_ACCEPT
        )
        if response.not_modified:
            return FetchResult(posts=[], state=state, not_modified=True)
        # Parsing a few megabytes of XML takes long enough to stall every Slack ack.
        posts = await asyncio.to_thread(self._parse, response)
        newest = max((p.published_at for p in posts if p.published_at is not None), default=None)
        return FetchResult(
            posts=posts,
            state=state.evolve(
                etag=response.etag,
                last_modified=response.last_modified,
                cursor=_later_cursor(state.cursor, newest),
            ),
        )

    def _parse(self, response: FetchResponse) -> list[Post]:
        _reject_entities(response.body)
        parsed = feedparser.parse(
            io.BytesIO(response.body),
            response_headers={
                "content-type": response.headers.get("content-type", "application/xml"),
                # The base against which feedparser resolves relative links.
                "content-location": response.url,
            },
        )
        entries = parsed.get("entries") or []
        if not entries and not parsed.get("version") and _looks_like_html(response):
            raise SourceBlocked("got an HTML page instead of a feed (blocked or login wall?)")
        feed = parsed.get("feed") or {}
        posts: list[Post] = []
        for index, entry in enumerate(entries):
            try:
                posts.append(self._to_post(entry, feed))
            except Exception:
                # One odd entry must not hide the rest of the feed; the traceback says why.
                logger.warning(
                    "skipping malformed entry #%d of %s", index, self.spec, exc_info=True
                )
        if not posts:
            # A broken document that still yields posts is kept (feeds are often sloppy), but
            # one that yields nothing must not pass for a quiet feed.
            problem = parsed.get("bozo_exception")
            if parsed.get("bozo") and not isinstance(problem, _BENIGN_BOZO):
                raise SourceError(f"malformed feed: {problem}")
            if not parsed.get("version"):
                raise SourceError("not an RSS or Atom feed")
        return posts

    def _to_post(self, entry: Mapping[str, Any], feed: Mapping[str, Any]) -> Post:
        title = _detail_text(entry.get("title_detail"), entry.get("title"))[:TITLE_CAP] or None
        published_at = _utc(entry.get("published_parsed")) or _utc(entry.get("updated_parsed"))
        link = _http_url(entry.get("link"))
        external_id = (entry.get("id") or "").strip() or link
        if not external_id:
            date = entry.get("published") or entry.get("updated") or ""
            if not title and not date:
                raise ValueError("entry has no id, link, title or date to identify it by")
            external_id = _stable_hash(title or "", date)
        if len(external_id) > EXTERNAL_ID_CAP:
            external_id = _stable_hash(external_id)

        contents = entry.get("content") or []
        body_detail = contents[0] if contents else entry.get("summary_detail")
        text = _detail_text(body_detail, entry.get("summary"))[:TEXT_CAP]

        author = _author_name(entry) or feed.get("title") or None

        language = next(
            (
                lang
                for lang in (
                    (body_detail or {}).get("language"),
                    (entry.get("title_detail") or {}).get("language"),
                    feed.get("language"),
                )
                if lang
            ),
            None,
        )
        return Post(
            source=self.spec,
            external_id=external_id,
            url=link,
            author=collapse_whitespace(author) if author else None,
            title=title,
            text=text,
            published_at=published_at,
            language=language.strip().lower() if language else None,
            raw=cap_raw(json.dumps(entry, default=str, ensure_ascii=False)),
        )


def _later_cursor(previous: str | None, newest: datetime | None) -> str | None:
    """The later of the stored cursor and this poll's newest date, as ISO 8601 UTC."""
    if newest is None:
        return previous
    if previous:
        try:
            before = datetime.fromisoformat(previous)
        except ValueError:
            before = None
        if before is not None and before.tzinfo is not None and before >= newest:
            return previous
    return newest.isoformat()
