"""``/earful …`` text → a typed command, or a CommandError that says what was wrong.

Slack delivers the text escaped (``&lt;`` for ``<``) and, with ``should_escape`` on, wraps
channels, users and links in ``<…>``. We undo both before tokenising, and tokenise with only
double quotes as quotes so that apostrophes ("acme's") stay ordinary characters.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TypeVar

from bot.answers import AnswersCommand, parse_answers
from bot.command_text import no_more, shorten
from bot.digest_commands import DigestCommand, parse_digest
from bot.errors import CommandError
from bot.mrkdwn import clean, escape
from bot.queue_commands import HEADS as QUEUE_HEADS
from bot.queue_commands import QueueCommand, parse_queue_command
from bot.sla_commands import SlaCommand, parse_oncall, parse_sla
from watchers.departments import Department, Intent, WatchKind

MAX_TEXT = 4_000
MAX_SOURCES = 20
MAX_INTERVAL_SECONDS = 7 * 86_400
DEFAULT_INTERVAL_SECONDS = 15 * 60

WATCH_TEST_EXAMPLE = '/earful watch test "acme NEAR/3 outage" sources=hn,reddit'
WATCH_EXCLUDE_EXAMPLE = '/earful watch exclude acme "acmeville OR \\"acme corp careers\\""'
WATCH_ADD_EXAMPLE = (
    '/earful watch add acme "acme OR \\"acme cloud\\" -acmeville" '
    "sources=rss:https://example.com/feed.xml kind=brand every=5m"
)
ROUTE_EXAMPLE = "/earful route support #support-alerts"
LEAD_EXAMPLE = "/earful lead support @dana"
ROUTE_RULE_EXAMPLE = "/earful route complaint competitor sales cc=competitive"
ROUTE_RESET_EXAMPLE = "/earful route reset complaint competitor"
# Words that stand for "no clear intent" (stored as "*") and for "every kind of watch".
NO_INTENT_WORDS = ("none", "*", "any", "no_intent")
ALL_KINDS_WORDS = ("*", "all", "any")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]*)(?:\|([^>]*))?>")
_CHANNEL_REF = re.compile(r"<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>")
_USER_REF = re.compile(r"<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>")
_INTERVAL_PART = re.compile(r"(\d+)\s*(s|sec|m|min|h|hr|d)", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86_400}
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "″": '"'})
_OPTION_KEYS = ("sources", "kind", "dept", "department", "every", "exclude")

_E = TypeVar("_E", WatchKind, Department)


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class WatchAdd:
    name: str
    query: str
    sources: tuple[str, ...]
    kind: WatchKind
    department: Department | None
    interval_seconds: int
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class WatchList:
    pass


@dataclass(frozen=True, slots=True)
class WatchSetPaused:
    name: str
    paused: bool


@dataclass(frozen=True, slots=True)
class WatchRemove:
    name: str


@dataclass(frozen=True, slots=True)
class WatchExclude:
    name: str
    exclude: str | None  # None clears the exclusion


@dataclass(frozen=True, slots=True)
class WatchTest:
    query: str
    sources: tuple[str, ...]  # source specs or bare types ("hn", "reddit"); empty = all


@dataclass(frozen=True, slots=True)
class RouteSet:
    department: Department
    channel_id: str | None  # known when Slack sent <#C…>
    channel_name: str | None  # a bare "#name" to look up


@dataclass(frozen=True, slots=True)
class RuleSet:
    """``/earful route <intent> <kind> <dept> [cc=…]``: edit the routing table."""

    intent: Intent | None  # None: no clear intent (and intents without a rule of their own)
    kinds: tuple[WatchKind, ...]
    department: Department
    cc: tuple[Department, ...]


@dataclass(frozen=True, slots=True)
class RuleReset:
    intent: Intent | None
    kinds: tuple[WatchKind, ...]


@dataclass(frozen=True, slots=True)
class RouteEdit:
    """``/earful route edit [<intent> <kind>]``: the routing editor (a modal)."""

    intent: Intent | None = None
    kind: WatchKind | None = None  # with ``intent``, the rule the editor starts from


@dataclass(frozen=True, slots=True)
class Routes:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    pass


@dataclass(frozen=True, slots=True)
class LeadSet:
    """``/earful lead <dept> @user`` (or ``none``): who leads a department."""

    department: Department
    user_id: str | None  # None removes the department's lead


@dataclass(frozen=True, slots=True)
class Leads:
    pass


Command = (
    Help
    | WatchAdd
    | WatchList
    | WatchSetPaused
    | WatchRemove
    | WatchExclude
    | WatchTest
    | RouteSet
    | RuleSet
    | RuleReset
    | RouteEdit
    | Routes
    | Status
    | LeadSet
    | Leads
    | AnswersCommand
    | QueueCommand
    | SlaCommand
    | DigestCommand
)


def normalize_slack_text(text: str) -> str:
    # Invisible characters would make "ac\u200bme" a query that never matches, and come back
    # in replies where nobody can see them.
    text = clean(text)
    text = _CHANNEL_REF.sub(lambda m: f"<#{m.group(1)}>", text)
    text = _USER_REF.sub(lambda m: f"<@{m.group(1)}>", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.translate(_SMART_QUOTES).strip()


def tokenize(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.quotes = '"'
    lexer.escapedquotes = '"'
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        raise CommandError(
            "A double quote is not closed. Put the query in double quotes and escape quotes "
            'inside it as \\".',
            example=WATCH_ADD_EXAMPLE,
        ) from None


def parse_command(text: str, *, allow_private: bool = False, min_interval: int = 60) -> Command:
    if len(text) > MAX_TEXT:
        raise CommandError(f"That command is too long (over {MAX_TEXT:,} characters).")
    tokens = tokenize(normalize_slack_text(text))
    if not tokens:
        return Help()
    head, rest = tokens[0].lower(), tokens[1:]
    if head in ("help", "?", "-h", "--help"):
        return Help(rest[0].lower() if rest else None)
    if head in ("watch", "watches"):
        return _parse_watch(rest, allow_private=allow_private, min_interval=min_interval)
    if head == "route":
        return _parse_route(rest)
    if head == "routes":
        no_more(rest, "/earful routes")
        return Routes()
    if head == "status":
        no_more(rest, "/earful status")
        return Status()
    if head == "lead":
        return _parse_lead(rest)
    if head == "leads":
        no_more(rest, "/earful leads")
        return Leads()
    if head == "answers":
        return parse_answers(rest)
    if head in QUEUE_HEADS:
        return parse_queue_command(head, rest)
    if head == "sla":
        return parse_sla(rest)
    if head == "oncall":
        return parse_oncall(rest)
    if head == "digest":
        return parse_digest(rest)
    raise CommandError(f"I don't know the command `{shorten(tokens[0])}`.", example="/earful help")


def _parse_watch(tokens: list[str], *, allow_private: bool, min_interval: int) -> Command:
    if not tokens:
        raise CommandError(
            "Say what to do with watches: add, list, test, exclude, pause, resume or remove.",
            example=WATCH_ADD_EXAMPLE,
        )
    verb, rest = tokens[0].lower(), tokens[1:]
    if verb == "add":
        return _parse_watch_add(rest, allow_private=allow_private, min_interval=min_interval)
    if verb == "list":
        no_more(rest, "/earful watch list")
        return WatchList()
    if verb == "test":
        return _parse_watch_test(rest, allow_private=allow_private)
    if verb == "exclude":
        if len(rest) != 2:
            raise CommandError(
                "`watch exclude` takes a watch name and a query in double quotes (or `none`).",
                example=WATCH_EXCLUDE_EXAMPLE,
            )
        name = _watch_name(rest[0], WATCH_EXCLUDE_EXAMPLE)
        if rest[1].strip().lower() in ("none", "off", ""):
            return WatchExclude(name=name, exclude=None)
        _check_query(rest[1].strip(), example=WATCH_EXCLUDE_EXAMPLE, what="exclusion")
        return WatchExclude(name=name, exclude=rest[1].strip())
    if verb in ("pause", "resume", "remove", "delete", "rm"):
        example = f"/earful watch {verb} acme"
        if len(rest) != 1:
            raise CommandError(f"`watch {verb}` takes one watch name.", example=example)
        name = _watch_name(rest[0], example)
        if verb in ("pause", "resume"):
            return WatchSetPaused(name=name, paused=verb == "pause")
        return WatchRemove(name=name)
    raise CommandError(
        f"`watch {shorten(tokens[0])}` is not a watch command; use add, list, test, exclude, "
        "pause, resume or remove.",
        example=WATCH_ADD_EXAMPLE,
    )


def _parse_watch_add(tokens: list[str], *, allow_private: bool, min_interval: int) -> WatchAdd:
    positional: list[str] = []
    options: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        lowered = key.lower()
        if sep and lowered in _OPTION_KEYS:
            lowered = "dept" if lowered == "department" else lowered
            if lowered in options:
                raise CommandError(f"`{lowered}=` is given twice.", example=WATCH_ADD_EXAMPLE)
            options[lowered] = value
        elif sep and len(positional) >= 2 and re.fullmatch(r"[A-Za-z_]+", key):
            raise CommandError(
                f"I don't know the option `{shorten(key)}=`; use sources=, kind=, dept= or every=.",
                example=WATCH_ADD_EXAMPLE,
            )
        else:
            positional.append(token)
    if not positional:
        raise CommandError("Give the watch a name and a query.", example=WATCH_ADD_EXAMPLE)
    name = _watch_name(positional[0], WATCH_ADD_EXAMPLE)
    if len(positional) == 1:
        raise CommandError(
            f'Watch `{name}` needs a query in double quotes, like "acme OR \\"acme cloud\\"".',
            example=WATCH_ADD_EXAMPLE,
        )
    if len(positional) > 2:
        raise CommandError(
            "Put the whole query in double quotes (I found several separate words after the "
            f"name: {', '.join(f'`{shorten(p)}`' for p in positional[1:4])}).",
            example=WATCH_ADD_EXAMPLE,
        )
    query = positional[1].strip()
    if not query:
        raise CommandError("The query is empty.", example=WATCH_ADD_EXAMPLE)
    _check_query(query)
    if "sources" not in options:
        raise CommandError(
            "Say where to look with `sources=`, e.g. sources=rss:https://example.com/feed.xml.",
            example=WATCH_ADD_EXAMPLE,
        )
    sources = parse_sources(options["sources"], allow_private=allow_private)
    kind = _enum(WatchKind, options.get("kind", "brand"), "kind")
    department = _enum(Department, options["dept"], "dept") if options.get("dept") else None
    exclude = options.get("exclude", "").strip() or None
    if exclude is not None:
        _check_query(exclude, what="exclusion")
    interval = (
        parse_interval(options["every"], minimum=min_interval)
        if "every" in options
        else max(DEFAULT_INTERVAL_SECONDS, min_interval)
    )
    return WatchAdd(
        name=name,
        query=query,
        sources=sources,
        kind=kind,
        department=department,
        interval_seconds=interval,
        exclude=exclude,
    )


def _check_query(query: str, *, example: str = WATCH_ADD_EXAMPLE, what: str = "query") -> None:
    from watchers.query import QuerySyntaxError, parse

    try:
        parse(query)
    except QuerySyntaxError as exc:
        raise CommandError(f"The {what} has a problem: {exc}.", example=example) from None


def _parse_watch_test(tokens: list[str], *, allow_private: bool) -> WatchTest:
    positional: list[str] = []
    sources: tuple[str, ...] = ()
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep and key.lower() == "sources":
            sources = _test_sources(value, allow_private=allow_private)
        elif sep and re.fullmatch(r"[A-Za-z_]+", key) and positional:
            raise CommandError(
                f"`watch test` only takes `sources=`, not `{shorten(key)}=`.",
                example=WATCH_TEST_EXAMPLE,
            )
        else:
            positional.append(token)
    if len(positional) != 1 or not positional[0].strip():
        raise CommandError(
            "`watch test` takes one query in double quotes.", example=WATCH_TEST_EXAMPLE
        )
    query = positional[0].strip()
    _check_query(query, example=WATCH_TEST_EXAMPLE)
    return WatchTest(query=query, sources=sources)


def _test_sources(value: str, *, allow_private: bool) -> tuple[str, ...]:
    """Bare source types (``hn``, ``rss``) are allowed here: they mean "any of that type"."""
    from watchers.registry import SOURCE_TYPES

    kept: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if part.lower() in SOURCE_TYPES:
            kept.append(part.lower())
        else:
            kept.extend(parse_sources(part, allow_private=allow_private))
    if not kept:
        raise CommandError("`sources=` is empty.", example=WATCH_TEST_EXAMPLE)
    return tuple(dict.fromkeys(kept))


def parse_sources(value: str, *, allow_private: bool = False) -> tuple[str, ...]:
    from watchers.registry import SUPPORTED_SOURCES, UnknownSource, normalize_source

    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise CommandError("`sources=` is empty.", example=WATCH_ADD_EXAMPLE)
    if len(parts) > MAX_SOURCES:
        raise CommandError(f"At most {MAX_SOURCES} sources per watch.", example=WATCH_ADD_EXAMPLE)
    normalized: list[str] = []
    for part in parts:
        try:
            spec = normalize_source(part, allow_private=allow_private)
        except UnknownSource as exc:
            # The reason quotes what was typed, and the list has "<feed url>": both are text.
            raise CommandError(
                f"{escape(str(exc))} Supported sources: {escape(SUPPORTED_SOURCES)}.",
                example=WATCH_ADD_EXAMPLE,
            ) from None
        if spec not in normalized:
            normalized.append(spec)
    return tuple(normalized)


def parse_interval(value: str, *, minimum: int = 60) -> int:
    text = value.strip().lower()
    position = 0
    total = 0
    for match in _INTERVAL_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match.group(1)[:9]) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    if not text or position != len(text):
        raise CommandError(
            f"`every={shorten(value)}` is not an interval; use a number and a unit like 30s, "
            "5m, 1h or 1d.",
            example=WATCH_ADD_EXAMPLE,
        )
    if total < minimum or total > MAX_INTERVAL_SECONDS:
        raise CommandError(
            f"`every=` must be between {minimum} seconds and 7 days.", example=WATCH_ADD_EXAMPLE
        )
    return total


def _parse_route(tokens: list[str]) -> RouteSet | RuleSet | RuleReset | RouteEdit:
    """A department first sets its channel; an intent first edits the routing table.

    No department is named like an intent (nor like ``reset`` or ``edit``), so the first word
    alone decides which form this is.
    """
    if not tokens:
        raise CommandError(
            "`route` takes a department and a channel, or an intent, a watch kind and a "
            "department.",
            example=ROUTE_RULE_EXAMPLE,
        )
    head = tokens[0].lower()
    if head == "edit":
        return _parse_route_edit(tokens[1:])
    if head == "reset":
        return _parse_route_reset(tokens[1:])
    if head not in {d.value for d in Department}:
        if _intent_or_none(tokens[0]) is None:
            raise CommandError(
                f"`{shorten(tokens[0])}` is not one of the departments ("
                + ", ".join(d.value for d in Department)
                + ") or intents ("
                + ", ".join(i.value for i in Intent)
                + ", or `none` for no clear intent).",
                example=ROUTE_RULE_EXAMPLE,
            )
        return _parse_route_rule(tokens)
    if len(tokens) != 2:
        raise CommandError(
            f"`route {head}` takes a department and a channel: it sets where {head} alerts go. "
            "To change which department gets an intent, start with the intent.",
            example=f"{ROUTE_EXAMPLE}  or  {ROUTE_RULE_EXAMPLE}",
        )
    department = _enum(Department, tokens[0], "department")
    target = tokens[1]
    if match := re.fullmatch(r"<#([CG][A-Z0-9]{2,})>", target):
        return RouteSet(department=department, channel_id=match.group(1), channel_name=None)
    if re.fullmatch(r"[CG][A-Z0-9]{8,}", target):
        return RouteSet(department=department, channel_id=target, channel_name=None)
    if match := re.fullmatch(r"#([a-z0-9][a-z0-9_-]{0,79})", target.lower()):
        return RouteSet(department=department, channel_id=None, channel_name=match.group(1))
    raise CommandError(
        f"`{shorten(target)}` is not a channel; mention it with #, e.g. #support-alerts.",
        example=ROUTE_EXAMPLE,
    )


def _intent_or_none(value: str) -> tuple[Intent | None] | None:
    """``(intent,)`` (``(None,)`` for a no-intent word), or None when it is not an intent."""
    word = value.strip().lower().replace("-", "_")
    if word in NO_INTENT_WORDS:
        return (None,)
    try:
        return (Intent(word),)
    except ValueError:
        return None


def _rule_intent(value: str, example: str) -> Intent | None:
    found = _intent_or_none(value)
    if found is None:
        raise CommandError(
            f"`{shorten(value)}` is not an intent; use one of: "
            + ", ".join(i.value for i in Intent)
            + ", or `none` for no clear intent.",
            example=example,
        )
    return found[0]


def _rule_kinds(value: str, example: str) -> tuple[WatchKind, ...]:
    word = value.strip().lower()
    if word in ALL_KINDS_WORDS:
        return tuple(WatchKind)
    try:
        return (WatchKind(word),)
    except ValueError:
        raise CommandError(
            f"`{shorten(value)}` is not a watch kind; use one of: "
            + ", ".join(k.value for k in WatchKind)
            + ", or `all`.",
            example=example,
        ) from None


def _rule_department(value: str, what: str) -> Department:
    try:
        return Department(value.strip().lower())
    except ValueError:
        raise CommandError(
            f"`{shorten(value)}` is not a department{what}; use one of: "
            + ", ".join(d.value for d in Department)
            + ".",
            example=ROUTE_RULE_EXAMPLE,
        ) from None


def _parse_route_rule(tokens: list[str]) -> RuleSet:
    positional: list[str] = []
    cc_value: str | None = None
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep and key.lower() == "cc":
            if cc_value is not None:
                raise CommandError("`cc=` is given twice.", example=ROUTE_RULE_EXAMPLE)
            cc_value = value
        elif sep:
            raise CommandError(
                f"I don't know the option `{shorten(key)}=`; a routing rule only takes `cc=`.",
                example=ROUTE_RULE_EXAMPLE,
            )
        else:
            positional.append(token)
    if len(positional) != 3:
        raise CommandError(
            "A routing rule takes an intent, a watch kind and a department (then optionally "
            "`cc=` departments).",
            example=ROUTE_RULE_EXAMPLE,
        )
    intent = _rule_intent(positional[0], ROUTE_RULE_EXAMPLE)
    kinds = _rule_kinds(positional[1], ROUTE_RULE_EXAMPLE)
    department = _rule_department(positional[2], "")
    cc: list[Department] = []
    no_cc = (cc_value or "").strip().lower() in ("", "none")
    for part in [] if no_cc else (cc_value or "").split(","):
        part = part.strip()
        if not part:
            continue
        copied = _rule_department(part, " (in `cc=`)")
        if copied is department:
            raise CommandError(
                f"`cc=` can't include {department.value}: it already gets the alert.",
                example=ROUTE_RULE_EXAMPLE,
            )
        if copied not in cc:
            cc.append(copied)
    return RuleSet(intent=intent, kinds=kinds, department=department, cc=tuple(cc))


def _parse_route_reset(tokens: list[str]) -> RuleReset:
    if len(tokens) != 2:
        raise CommandError(
            "`route reset` takes an intent and a watch kind.", example=ROUTE_RESET_EXAMPLE
        )
    return RuleReset(
        intent=_rule_intent(tokens[0], ROUTE_RESET_EXAMPLE),
        kinds=_rule_kinds(tokens[1], ROUTE_RESET_EXAMPLE),
    )


def _parse_route_edit(tokens: list[str]) -> RouteEdit:
    example = "/earful route edit complaint competitor"
    if not tokens:
        return RouteEdit()
    if len(tokens) != 2:
        raise CommandError(
            "`route edit` opens the routing editor; it takes nothing, or an intent and a watch "
            "kind to start from.",
            example=example,
        )
    intent = _rule_intent(tokens[0], example)
    kinds = _rule_kinds(tokens[1], example)
    if len(kinds) != 1:
        raise CommandError("`route edit` starts from one watch kind.", example=example)
    return RouteEdit(intent=intent, kind=kinds[0])


def is_route_edit(text: str) -> bool:
    """Whether this ``/earful`` text asks for the routing editor (which needs a trigger_id)."""
    if len(text) > MAX_TEXT:
        return False
    try:
        tokens = tokenize(normalize_slack_text(text))
    except CommandError:
        return False
    return len(tokens) >= 2 and tokens[0].lower() == "route" and tokens[1].lower() == "edit"


def _parse_lead(tokens: list[str]) -> LeadSet:
    if len(tokens) != 2:
        raise CommandError(
            "`lead` takes a department and a person (or `none`).", example=LEAD_EXAMPLE
        )
    try:
        department = Department(tokens[0].strip().lower())
    except ValueError:
        raise CommandError(
            f"`{shorten(tokens[0])}` is not a department; use one of: "
            + ", ".join(d.value for d in Department)
            + ".",
            example=LEAD_EXAMPLE,
        ) from None
    target = tokens[1]
    if target.lower() == "none":
        return LeadSet(department=department, user_id=None)
    if match := re.fullmatch(r"<@([UW][A-Z0-9]{2,})>", target):
        return LeadSet(department=department, user_id=match.group(1))
    raise CommandError(
        f"`{shorten(target)}` is not a person; mention them with @ so Slack sends who it is.",
        example=LEAD_EXAMPLE,
    )


def _watch_name(value: str, example: str) -> str:
    name = value.lower()
    if not _NAME.match(name):
        raise CommandError(
            f"`{shorten(value)}` can't be a watch name: use up to 40 letters, digits, - or _, "
            "starting with a letter or digit.",
            example=example,
        )
    return name


def _enum(enum: type[_E], value: str, option: str) -> _E:
    try:
        return enum(value.strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise CommandError(
            f"`{option}={shorten(value)}` is not one of: {choices}.",
            example=ROUTE_EXAMPLE if option == "department" else WATCH_ADD_EXAMPLE,
        ) from None
