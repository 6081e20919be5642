"""Reading what reached the fake Slack the way Slack reads it: which ``<…>`` tokens are live.

Slack turns ``<!channel>``, ``<@U…>``, ``<#C…>``, ``<!subteam^…>`` and ``<url|label>`` in
mrkdwn (and in a message's top-level ``text``) into pings, mentions and links; ``&lt;``,
``&gt;`` and ``&amp;`` are shown as the characters. Text in ``plain_text`` objects is never
parsed. So a source's text is inert exactly when every live token in mrkdwn was written by
Earful itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.fakes.slack_api import BOT_USER_ID, SEED_CHANNELS, SEED_USERS

_TOKEN = re.compile(r"<([^<>]*)>")
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u202c", "\u2066")
_EARFUL_TOKENS = (
    re.compile(r"!date\^\d+\^[^|]*\|[^|]*"),
    re.compile(r"@(?P<user>[UW][A-Z0-9]+)"),
    re.compile(r"#(?P<channel>C[A-Z0-9]+)(\|[^|]*)?"),
    re.compile(r"(?P<url>https?://[^|\s]+)(\|(?P<label>[^|]*))?"),
)
# Keys whose strings Slack never renders as message text.
_NOT_TEXT = frozenset(
    {
        "url",
        "value",
        "action_id",
        "block_id",
        "callback_id",
        "private_metadata",
        "image_url",
        "external_id",
        "channel",
        "ts",
        "thread_ts",
        "user",
        "trigger_id",
        "response_url",
        "view_id",
        "hash",
        "event_type",
        "event_payload",
        "type",
        "style",
        "initial_option",
    }
)


def mrkdwn_strings(payload: Any, *, parsed: bool = True) -> Iterator[tuple[str, bool]]:
    """Every string Slack may display in ``payload``, with whether Slack parses it as mrkdwn."""
    if isinstance(payload, str):
        if payload[:1] in "[{":
            try:
                yield from mrkdwn_strings(json.loads(payload), parsed=parsed)
                return
            except ValueError:
                pass
        yield payload, parsed
    elif isinstance(payload, list):
        for item in payload:
            yield from mrkdwn_strings(item, parsed=parsed)
    elif isinstance(payload, dict):
        is_plain = payload.get("type") == "plain_text"
        for key, value in payload.items():
            if key in _NOT_TEXT:
                continue
            yield from mrkdwn_strings(value, parsed=parsed and not is_plain)


def live_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


_PLACEHOLDER = re.compile(r"[a-z][a-z ]*")


def foreign_markup(
    text: str, *, link_hosts: frozenset[str], placeholders: bool = False
) -> list[str]:
    """The live tokens in mrkdwn ``text`` that Earful could not have written.

    ``placeholders``: tolerate ``<department>``-style words, which Earful's own help texts
    use (Slack shows them as broken links: untidy, but nobody is pinged or misled).
    """
    known_users = {*SEED_USERS, BOT_USER_ID}
    problems: list[str] = []
    for token in live_tokens(text):
        if placeholders and _PLACEHOLDER.fullmatch(token):
            continue
        for pattern in _EARFUL_TOKENS:
            match = pattern.fullmatch(token)
            if match is None:
                continue
            groups = match.groupdict()
            if groups.get("user") and groups["user"] not in known_users:
                problems.append(f"mention of unknown user <{token}>")
            elif groups.get("channel") and groups["channel"] not in SEED_CHANNELS:
                problems.append(f"link to unknown channel <{token}>")
            elif groups.get("url"):
                host = re.sub(r"^https?://([^/:?#]+).*$", r"\1", groups["url"])
                label = groups.get("label") or ""
                if host not in link_hosts:
                    problems.append(f"link to a host Earful did not vouch for <{token}>")
                elif "://" in label or "www." in label.lower():
                    problems.append(f"link disguised as another URL <{token}>")
            break
        else:
            problems.append(f"live token <{token}>")
    return problems


def inspect(payload: Any, *, link_hosts: frozenset[str], placeholders: bool = False) -> list[str]:
    """Every way ``payload`` (a Web API call's arguments, a view, an HTTP answer) is unsafe."""
    problems: list[str] = []
    for text, parsed in mrkdwn_strings(payload):
        if parsed:
            problems += foreign_markup(text, link_hosts=link_hosts, placeholders=placeholders)
        hidden = [f"U+{ord(c):04X}" for c in INVISIBLE if c in text]
        if hidden:
            problems.append(f"invisible characters {hidden} in {text[:80]!r}")
    return problems
