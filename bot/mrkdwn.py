"""Slack mrkdwn from untrusted text: escaped, cleaned of invisible characters, cut to size.

Everything a source sends us (titles, post text, author names, URLs) goes through this module
before it reaches a mrkdwn text object. Slack gives ``&``, ``<`` and ``>`` special meaning
(``<!channel>``, ``<@U123>``, ``<https://evil.example|bank.com>``), so they are escaped; and
zero-width and bidi-control characters are removed because they make one text look like another.
The few pieces of markup Earful writes itself (dates, user mentions, links) are built here
too, from validated input only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from urllib.parse import quote, urlsplit

ELLIPSIS = "…"
MAX_URL_LENGTH = 3000  # Slack's limit for a button url; a longer URL cannot be shortened safely

_ZWJ = "\u200d"
_INVISIBLE = frozenset(
    chr(code)
    for code in chain(
        range(0x200B, 0x2010),  # zero-width space/non-joiner/joiner, LRM, RLM
        range(0x202A, 0x202F),  # bidi embeddings and overrides
        range(0x2060, 0x2065),  # word joiner and invisible operators
        range(0x2066, 0x206A),  # bidi isolates
        (0xFEFF, 0x061C, 0x180E),  # BOM/ZWNBSP, Arabic letter mark, Mongolian vowel separator
    )
)
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,39}")
# A scheme and "//" (or "www."): what makes a reader take a label for the link's address.
_LOOKS_LIKE_URL = re.compile(r"[a-z][a-z0-9+.-]*\s*:\s*//|\bwww\.", re.IGNORECASE)
# What may stay unencoded in each URL part: RFC 3986 unreserved and sub-delims, plus "%" so
# existing escapes are not encoded twice. Everything else, notably "<", ">", "|", whitespace
# and non-ASCII, is percent-encoded, so the URL cannot end a <url|label> token early.
_URL_SAFE_PATH = "/:@!$&'()*+,;=-._~%"
_URL_SAFE_QUERY = _URL_SAFE_PATH + "?"


def _is_emoji_part(char: str) -> bool:
    # Pictographs (So) and skin-tone modifiers (Sk); the ord check keeps ASCII "^" and "`" out.
    return ord(char) >= 0x2000 and unicodedata.category(char) in ("So", "Sk")


def _clean_pieces(text: str) -> list[str]:
    """One output string per input character: "" for removed ones, "\\n" for line breaks.

    Keeping a piece per original position lets :func:`highlight` map spans given in the raw
    text onto the cleaned text without any offset arithmetic.
    """
    pieces: list[str] = []
    last = len(text) - 1
    for index, char in enumerate(text):
        if char == _ZWJ:
            # A joiner between two emoji builds one glyph (👩‍💻); anywhere else it only hides.
            previous = text[index - 1] if index > 0 else ""
            following = text[index + 1] if index < last else ""
            joins_emoji = (
                previous != ""
                and (_is_emoji_part(previous) or previous == "\ufe0f")
                and following != ""
                and _is_emoji_part(following)
            )
            pieces.append(char if joins_emoji else "")
        elif char in _INVISIBLE:
            pieces.append("")
        elif char == "\r":
            pieces.append("" if index < last and text[index + 1] == "\n" else "\n")
        elif char in ("\n", "\t"):
            pieces.append(char)
        elif char in ("\u2028", "\u2029"):
            pieces.append("\n")
        elif unicodedata.category(char) in ("Cc", "Cs"):
            # Control characters, and lone surrogates that would not survive JSON encoding.
            pieces.append("")
        else:
            pieces.append(char)
    return pieces


def clean(text: str) -> str:
    """``text`` without invisible, bidi-control and control characters (no escaping)."""
    return "".join(_clean_pieces(text))


def escape(text: str) -> str:
    """``text`` cleaned and escaped so that Slack shows it literally and nothing in it is live."""
    return "".join(_ESCAPES.get(piece, piece) for piece in _clean_pieces(text))


def _is_regional_indicator(piece: str) -> bool:
    return len(piece) == 1 and 0x1F1E6 <= ord(piece) <= 0x1F1FF


def _tidy_cut(out: list[str], floor: int) -> None:
    """Drop what would dangle at a cut: whitespace, a joiner, half of a flag (two indicators)."""
    while True:
        while len(out) > floor and (out[-1].isspace() or out[-1] == _ZWJ):
            out.pop()
        run = 0
        while len(out) - run > floor and _is_regional_indicator(out[-1 - run]):
            run += 1
        if run % 2 == 0:
            return
        out.pop()


def _normalise_spans(pieces: Sequence[str], spans: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Spans clamped, merged, split at line breaks and trimmed of blanks, as ``{start: end}``.

    Slack only renders ``*bold*`` when the asterisks hug visible text on one line, so a span
    must neither start nor end with whitespace or removed characters, nor cross a newline.
    """
    size = len(pieces)
    ordered = sorted(
        (max(0, start), min(size, end)) for start, end in spans if min(size, end) > max(0, start)
    )
    merged: list[list[int]] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    result: dict[int, int] = {}
    for start, end in merged:
        line_start = start
        for index in range(start, end + 1):
            if index == end or pieces[index] == "\n":
                first, stop = line_start, index
                while first < stop and (not pieces[first] or pieces[first].isspace()):
                    first += 1
                while stop > first and (not pieces[stop - 1] or pieces[stop - 1].isspace()):
                    stop -= 1
                if stop > first:
                    result[first] = stop
                line_start = index + 1
    return result


def highlight(text: str, spans: Sequence[tuple[int, int]], limit: int) -> str:
    """``text`` escaped, with ``spans`` (offsets into the raw ``text``) in bold, ≤ ``limit``.

    When the text is too long it is cut at a character boundary and ends with "…"; escapes such
    as ``&amp;`` are never split, a bold span reaching the cut is closed at the cut, and a span
    that would be left empty is dropped.
    """
    if limit <= 0:
        return ""
    pieces = [_ESCAPES.get(piece, piece) for piece in _clean_pieces(text)]
    starts = _normalise_spans(pieces, spans)
    full_length = sum(map(len, pieces)) + 2 * len(starts)
    fits = full_length <= limit
    budget = limit if fits else limit - len(ELLIPSIS)

    out: list[str] = []
    used = 0
    open_end: int | None = None  # where the bold span being written ends
    opener = -1  # index in ``out`` of the open span's "*"
    for index, piece in enumerate(pieces):
        if open_end == index:
            out.append("*")  # its length was reserved when the span was opened
            open_end = None
        if not piece:
            continue
        opening = open_end is None and index in starts
        cost = len(piece) + (2 if opening else 0)
        if used + cost > budget:
            break
        if opening:
            opener = len(out)
            out.append("*")
            open_end = starts[index]
        out.append(piece)
        used += cost
    else:
        if open_end is not None:
            out.append("*")
        return "".join(out)

    _tidy_cut(out, opener + 1 if open_end is not None else 0)
    if open_end is not None:
        if len(out) == opener + 1:
            out.pop()  # nothing of the span made it before the cut
            _tidy_cut(out, 0)
        else:
            out.append("*")
    out.append(ELLIPSIS)
    return "".join(out)


def truncate(text: str, limit: int) -> str:
    """``text`` escaped and, if needed, cut so that the escaped result is ≤ ``limit``."""
    return highlight(text, (), limit)


def plain(text: str, limit: int, *, multiline: bool = False) -> str:
    """``text`` for a plain_text object: cleaned, on one line unless ``multiline``, ≤ ``limit``.

    Slack does not parse plain_text, so nothing is escaped; invisible characters still go.
    """
    if limit <= 0:
        return ""
    cleaned = clean(text)
    if not multiline:
        cleaned = " ".join(cleaned.split())
    if len(cleaned) <= limit:
        return cleaned
    out = list(cleaned[: limit - len(ELLIPSIS)])
    _tidy_cut(out, 0)
    return "".join(out) + ELLIPSIS


def safe_url(url: str | None) -> str | None:
    """``url`` normalised for Slack if it is an http(s) URL we are willing to show, else None.

    The result is ASCII with no whitespace, ``<``, ``>`` or ``|`` (so it can neither end a
    ``<url|label>`` token nor open another one), has no ``user:password@`` part (which makes
    ``https://bank.com@evil.example`` look like bank.com) and shows non-ASCII host names as
    punycode, which exposes look-alike domains.
    """
    if not url:
        return None
    try:
        parts = urlsplit(clean(url).strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not re.fullmatch(r"[a-z0-9.:\-\[\]_]+", host):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    result = f"{parts.scheme.lower()}://{netloc}{quote(parts.path, safe=_URL_SAFE_PATH)}"
    if parts.query:
        result += "?" + quote(parts.query, safe=_URL_SAFE_QUERY)
    if parts.fragment:
        result += "#" + quote(parts.fragment, safe=_URL_SAFE_QUERY)
    return result if len(result) <= MAX_URL_LENGTH else None


def link(url: str | None, label: str) -> str:
    """A ``<url|label>`` link if ``url`` is a safe http(s) URL, else just the escaped label.

    A label that itself reads as a URL (``https://bank.example`` over a link to somewhere
    else) is how links are disguised, so such a label is shown as text and followed by a
    link named after the host it really goes to.
    """
    # "|" has no escape in mrkdwn; a look-alike keeps the label from being split.
    text = escape(label).replace("|", "∣")
    target = safe_url(url)
    if target is None:
        return text
    host = escape(urlsplit(target).hostname or target)
    href = target.replace("&", "&amp;")
    if not text.strip():
        return f"<{href}|{host}>"
    if _LOOKS_LIKE_URL.search(text):
        return f"{text} <{href}|{host}>"
    return f"<{href}|{text}>"


def is_user_id(value: str | None) -> bool:
    """Whether ``value`` looks exactly like a Slack user id (``U…`` or ``W…``)."""
    return value is not None and _USER_ID.fullmatch(value) is not None


def user(user_id: str | None) -> str | None:
    """``<@U…>`` for a valid user id, None for anything else."""
    return f"<@{user_id}>" if user_id is not None and is_user_id(user_id) else None


def date(at: datetime, token: str = "{date_short_pretty} at {time}") -> str:
    """A Slack date that every reader sees in their own time zone, with a UTC fallback.

    A naive ``at`` is taken to be UTC, which is what storage hands back from SQLite.
    """
    moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{token}|{fallback}>"
