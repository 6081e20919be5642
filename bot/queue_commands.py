"""``/earful queue|mine|search|mute|unmute|mutes`` text → typed commands.

:func:`bot.command_parser.parse_command` hands the tokens here (already unescaped and split,
double quotes honoured) when the first word is one of :data:`HEADS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.command_text import no_more, shorten
from bot.errors import CommandError
from watchers.departments import Department

if TYPE_CHECKING:
    from bot.mutes import Mutes
    from bot.queues import Queues
    from bot.replies import Reply

QUEUE_EXAMPLE = "/earful queue support"
SEARCH_EXAMPLE = '/earful search "refund policy"'
MUTE_EXAMPLE = (
    '/earful mute author=spambot4000 for=30d   or   /earful mute phrase="crypto giveaway"'
)
UNMUTE_EXAMPLE = "/earful unmute 12"
MAX_SEARCH = 100
MIN_SEARCH = 2
MAX_MUTE_VALUE = 200
MIN_PHRASE = 3
MAX_MUTE_DAYS = 365
ALL_WORDS = ("all", "*", "any", "everything")

_DURATION = re.compile(r"(\d{1,4})\s*(m|min|h|hr|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86_400, "w": 7 * 86_400}
_DOMAIN = re.compile(
    r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$"
)
_SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,19}(?::\S{1,300})?$")


class MuteKind(StrEnum):
    AUTHOR = "author"
    DOMAIN = "domain"
    PHRASE = "phrase"


@dataclass(frozen=True, slots=True)
class QueueShow:
    """``/earful queue [dept|all]``: open mentions by priority, then age."""

    department: Department | None = None
    everything: bool = False  # "all" said out loud: don't default to the channel's department


@dataclass(frozen=True, slots=True)
class Mine:
    pass


@dataclass(frozen=True, slots=True)
class Search:
    text: str


@dataclass(frozen=True, slots=True)
class MuteAdd:
    kind: MuteKind
    value: str  # normalised (see normalize_mute_value)
    source: str | None = None
    department: Department | None = None
    duration: timedelta | None = None  # None: until unmuted


@dataclass(frozen=True, slots=True)
class MuteRemove:
    rule_id: int


@dataclass(frozen=True, slots=True)
class MuteList:
    pass


QueueCommand = QueueShow | Mine | Search | MuteAdd | MuteRemove | MuteList
HEADS = frozenset({"queue", "mine", "search", "mute", "unmute", "mutes"})


async def run_queue_command(
    command: QueueCommand,
    *,
    queues: Queues,
    mutes: Mutes,
    user_id: str,
    channel_id: str | None,
) -> Reply:
    """Run a parsed queue or mute command (``channel_id``: where it was typed, if known)."""
    if isinstance(command, MuteAdd | MuteRemove | MuteList):
        return await mutes.run(command, user_id=user_id)
    return await queues.run(command, user_id=user_id, channel_id=channel_id)


def parse_queue_command(head: str, tokens: list[str]) -> QueueCommand:
    if head == "queue":
        return _parse_queue(tokens)
    if head == "mine":
        no_more(tokens, "/earful mine")
        return Mine()
    if head == "search":
        return _parse_search(tokens)
    if head == "mute":
        return _parse_mute(tokens)
    if head == "unmute":
        return _parse_unmute(tokens)
    if head == "mutes":
        no_more(tokens, "/earful mutes")
        return MuteList()
    raise CommandError(f"`{shorten(head)}` is not a queue command.", example=QUEUE_EXAMPLE)


def _parse_queue(tokens: list[str]) -> QueueShow:
    if not tokens:
        return QueueShow()
    if len(tokens) > 1:
        raise CommandError("`queue` takes at most one department.", example=QUEUE_EXAMPLE)
    word = tokens[0].strip().lower().removeprefix("dept=").removeprefix("department=")
    if word in ALL_WORDS:
        return QueueShow(everything=True)
    return QueueShow(department=_department(word, QUEUE_EXAMPLE))


def _parse_search(tokens: list[str]) -> Search:
    text = " ".join(" ".join(tokens).split())
    if len(text) < MIN_SEARCH:
        raise CommandError(
            f"Say what to look for (at least {MIN_SEARCH} characters).", example=SEARCH_EXAMPLE
        )
    if len(text) > MAX_SEARCH:
        raise CommandError(
            f"Search for at most {MAX_SEARCH} characters at a time.", example=SEARCH_EXAMPLE
        )
    return Search(text=text)


def _parse_mute(tokens: list[str]) -> MuteAdd:
    what: tuple[MuteKind, str] | None = None
    options: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        key = key.strip().lower()
        if not sep:
            raise CommandError(
                f'`{shorten(token)}`: say what to mute as author=…, domain=… or phrase="…".',
                example=MUTE_EXAMPLE,
            )
        if key in {kind.value for kind in MuteKind}:
            if what is not None:
                raise CommandError(
                    "Mute one thing at a time: one of author=, domain= or phrase=.",
                    example=MUTE_EXAMPLE,
                )
            what = (MuteKind(key), value)
        elif key in ("source", "for", "dept", "department"):
            key = "dept" if key == "department" else key
            if key in options:
                raise CommandError(f"`{key}=` is given twice.", example=MUTE_EXAMPLE)
            options[key] = value.strip()
        else:
            raise CommandError(
                f"I don't know the option `{shorten(key)}=`; use author=, domain= or phrase=, "
                "then optionally source=, for= and dept=.",
                example=MUTE_EXAMPLE,
            )
    if what is None:
        raise CommandError(
            'Say what to mute: author=…, domain=… or phrase="…".', example=MUTE_EXAMPLE
        )
    kind, raw = what
    return MuteAdd(
        kind=kind,
        value=normalize_mute_value(kind, raw),
        source=_source(options["source"]) if options.get("source") else None,
        department=_department(options["dept"], MUTE_EXAMPLE) if options.get("dept") else None,
        duration=parse_duration(options["for"]) if options.get("for") else None,
    )


def normalize_mute_value(kind: MuteKind, raw: str) -> str:
    """What a rule stores and compares: lower case, and in the form posts are compared in."""
    value = " ".join(raw.split()).lower()
    if kind is MuteKind.AUTHOR:
        value = normalize_author(value)
        if not value:
            raise CommandError("`author=` is empty.", example=MUTE_EXAMPLE)
    elif kind is MuteKind.DOMAIN:
        value = normalize_domain(value)
        if not _DOMAIN.match(value):
            raise CommandError(
                f"`{shorten(raw)}` is not a domain name like example.com.", example=MUTE_EXAMPLE
            )
    elif len(value) < MIN_PHRASE:
        raise CommandError(
            f"A phrase to mute needs at least {MIN_PHRASE} characters, so it can't silence "
            "half the internet.",
            example=MUTE_EXAMPLE,
        )
    if len(value) > MAX_MUTE_VALUE:
        raise CommandError(
            f"`{kind.value}=` takes at most {MAX_MUTE_VALUE} characters.", example=MUTE_EXAMPLE
        )
    return value


def normalize_author(author: str) -> str:
    """``@Foo``, ``u/foo`` and ``foo`` are one author."""
    value = author.strip().lower()
    for prefix in ("@", "u/", "/u/"):
        value = value.removeprefix(prefix)
    return value


def normalize_domain(value: str) -> str:
    """``https://www.Example.com/x`` → ``example.com``."""
    host = value.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host
    return host.removeprefix("www.")


def parse_duration(value: str) -> timedelta:
    text = value.strip().lower()
    position = 0
    seconds = 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    if not text or position != len(text):
        raise CommandError(
            f"`for={shorten(value)}` is not a duration; use a number and a unit like 12h, 30d "
            "or 2w.",
            example=MUTE_EXAMPLE,
        )
    if seconds < 60 or seconds > MAX_MUTE_DAYS * 86_400:
        raise CommandError(
            f"`for=` must be between a minute and {MAX_MUTE_DAYS} days.", example=MUTE_EXAMPLE
        )
    return timedelta(seconds=seconds)


def _source(value: str) -> str:
    """A bare source type (``reddit``) or a spec (``reddit:r/acme``), as sources are stored."""
    from watchers.registry import SOURCE_TYPES, UnknownSource, normalize_source

    word = value.strip()
    if word.lower() in SOURCE_TYPES:
        return word.lower()
    try:
        spec = normalize_source(word, allow_private=True)
    except UnknownSource:
        spec = ""
    if not spec or not _SOURCE.match(spec):
        raise CommandError(
            f"`source={shorten(value)}` is not a source; use a type like "
            + ", ".join(sorted(SOURCE_TYPES))
            + ", or a source as watches name it.",
            example=MUTE_EXAMPLE,
        )
    return spec


def _parse_unmute(tokens: list[str]) -> MuteRemove:
    if len(tokens) != 1 or not re.fullmatch(r"#?\d{1,9}", tokens[0].strip()):
        raise CommandError(
            "`unmute` takes the number of a mute rule (`/earful mutes` lists them).",
            example=UNMUTE_EXAMPLE,
        )
    return MuteRemove(rule_id=int(tokens[0].strip().lstrip("#")))


def _department(value: str, example: str) -> Department:
    try:
        return Department(value.strip().lower())
    except ValueError:
        raise CommandError(
            f"`{shorten(value)}` is not a department; use one of: "
            + ", ".join(d.value for d in Department)
            + ".",
            example=example,
        ) from None
