"""A fake Slack Web API that holds the app to Slack's published contract.

Point `AsyncWebClient(base_url=await fake.start())` at it. Every call is checked against
Slack's own OpenAPI spec (method names, required arguments) and Block Kit limits; anything
Slack would reject, or warn about, is appended to `fake.violations` so a test can fail on
it. Messages, views and reactions are kept in memory and returned in Slack's documented
shapes, so code that reads back what it posted (history, permalinks, updates) runs as it
would against Slack.

Socket Mode too: `apps.connections.open` (app-level token only) hands out a WebSocket URL on
the same server; a test waits for the app with `await fake.socket_connected()` and then plays
Slack with `await fake.socket_send("slash_commands", slash_command("help"))`, which returns the
app's ack.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

# The workspace the fake pretends to be. slack_requests.py signs events and interactions with
# the same identities, so Bolt sees one coherent install (and ignores the bot's own events).
TEAM_ID = "T0TEAM"
TEAM_NAME = "Earful Test"
TEAM_DOMAIN = "earful-test"
APP_ID = "A0EARFUL"
BOT_ID = "B0EARFUL"
BOT_USER_ID = "U0EARFUL"
BOT_USER_NAME = "earful"
BOT_SCOPES = (
    "commands,chat:write,chat:write.public,channels:read,groups:read,channels:history,"
    "groups:history,reactions:read,users:read,im:write,files:write"
)

# What every fake workspace starts with; tests add more with add_channel/add_user.
SEED_CHANNELS = {
    "C0GENERAL": "general",
    "C0SUPPORT": "support",
    "C0PRODUCT": "product",
    "C0PRCOMMS": "pr-comms",
    "C0SALES": "sales",
    "C0EXECS": "execs",
}
SEED_PRIVATE_CHANNELS = frozenset({"C0EXECS"})
SEED_USERS = {
    "U0ALICE": ("alice", "Alice Anders"),
    "U0BOB": ("bob", "Bob Brown"),
    "U0ADMIN": ("ada", "Ada Admin"),
}
SEED_ADMIN = "U0ADMIN"

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40_000
MAX_ALT_TXT = 1_000  # files.getUploadURLExternal: alt_txt_too_large beyond this

# Block Kit methods whose `blocks` Slack validates, and the ones slack_sdk warns about when the
# top-level `text` (what screen readers and notifications use) is missing.
_MESSAGE_BLOCK_METHODS = frozenset(
    {"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage"}
)
_VIEW_METHODS = frozenset({"views.publish", "views.open", "views.update", "views.push"})

# Methods Slack added after the 2020 spec was published, with their documented required args.
_NEWER_METHODS: dict[str, frozenset[str]] = {
    "files.getUploadURLExternal": frozenset({"filename", "length"}),
    "files.completeUploadExternal": frozenset({"files"}),
    "apps.manifest.validate": frozenset({"manifest"}),
    "apps.manifest.create": frozenset({"manifest"}),
    "apps.manifest.update": frozenset({"app_id", "manifest"}),
    "apps.manifest.export": frozenset({"app_id"}),
    "apps.manifest.delete": frozenset({"app_id"}),
    "apps.connections.open": frozenset(),
}
# Methods that take an app-level token (xapp-) and nothing else; every other method refuses one.
# Slack answers `not_allowed_token_type` either way round.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# The 2020 spec marks these optional, but Slack's method pages list them as required and Slack
# answers `invalid_arguments` (or `channel_not_found`) without them.
_REQUIRED_BEYOND_SPEC: dict[str, frozenset[str]] = {
    "conversations.history": frozenset({"channel"}),
    "conversations.info": frozenset({"channel"}),
    "conversations.replies": frozenset({"channel", "ts"}),
    "conversations.members": frozenset({"channel"}),
    "chat.delete": frozenset({"channel", "ts"}),
    "chat.scheduleMessage": frozenset({"channel", "post_at"}),
    "users.info": frozenset({"user"}),
    "views.update": frozenset({"view"}),
}
# Still in the 2020 spec, but Slack has switched them off.
_RETIRED_METHODS: dict[str, str] = {
    "files.upload": "files.upload was retired in 2025; use files_upload_v2",
}
# Arguments that form-encoded callers send as JSON strings.
_JSON_ARGS: dict[str, str] = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "metadata": "invalid_metadata_format",
    "view": "invalid_arguments",
    "files": "invalid_arguments",
    "manifest": "invalid_manifest",
}


def slack_spec_dir() -> Path:
    """Where Slack's reference material lives: `../shared/slack-api-spec` beside the repo."""
    override = os.environ.get("EARFUL_SHARED_DIR")
    shared = Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared"
    return shared / "slack-api-spec"


@cache
def web_api_methods(spec_path: Path | None = None) -> dict[str, frozenset[str]]:
    """Method name -> required argument names, from Slack's OpenAPI spec plus newer methods.

    `token` is left out: it travels in the Authorization header, which the fake checks itself.
    """
    path = spec_path or slack_spec_dir() / "web-api" / "slack_web_openapi_v2.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    methods: dict[str, frozenset[str]] = {}
    for route, operations in spec["paths"].items():
        required: set[str] = set()
        for operation in operations.values():
            required.update(
                p["name"]
                for p in operation.get("parameters", [])
                if p.get("required") and p["name"] != "token"
            )
        name = route.lstrip("/")
        methods[name] = frozenset(required | _REQUIRED_BEYOND_SPEC.get(name, frozenset()))
    methods.update(_NEWER_METHODS)
    return methods


# --------------------------------------------------------------------------- Block Kit checks


def _at(pointer: str, message: str) -> str:
    # Slack's own wording: "must be less than 3001 characters [json-pointer:/blocks/0/text/text]".
    return f"{message} [json-pointer:{pointer}]"


def _length_problems(value: object, max_len: int, pointer: str) -> list[str]:
    if not isinstance(value, str):
        return [_at(pointer, "must be a string")]
    if len(value) > max_len:
        return [_at(pointer, f"must be less than {max_len + 1} characters")]
    return []


def _text_problems(
    obj: object, max_len: int, pointer: str, *, required: bool = True, plain_only: bool = False
) -> list[str]:
    if obj is None:
        return [_at(pointer, "is required")] if required else []
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return [_at(pointer, "must be a text object")]
    problems = []
    if plain_only and obj.get("type") != "plain_text":
        problems.append(_at(f"{pointer}/type", "must be plain_text"))
    if not obj["text"]:
        problems.append(_at(f"{pointer}/text", "must be more than 0 characters"))
    return problems + _length_problems(obj["text"], max_len, f"{pointer}/text")


def _options_problems(options: object, max_count: int, pointer: str) -> list[str]:
    if not isinstance(options, list):
        return [_at(pointer, "must be an array")]
    problems = []
    if len(options) > max_count:
        problems.append(_at(pointer, f"must contain at most {max_count} items"))
    for i, option in enumerate(options):
        here = f"{pointer}/{i}"
        if not isinstance(option, dict):
            problems.append(_at(here, "must be an option object"))
            continue
        problems += _text_problems(option.get("text"), 75, f"{here}/text")
        problems += _length_problems(option.get("value", ""), 150, f"{here}/value")
    return problems


def _element_problems(element: object, pointer: str, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict):
        return [_at(pointer, "must be an element object")]
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None:
        problems += _length_problems(action_id, 255, f"{pointer}/action_id")
        # Slack requires action_id to be unique among the elements of one block only; the same
        # action_id on a button in each of several blocks (one per item) is allowed.
        if action_id in action_ids:
            problems.append(_at(f"{pointer}/action_id", f"duplicate action_id {action_id!r}"))
        action_ids.add(str(action_id))
    kind = element.get("type")
    if kind == "button":
        problems += _text_problems(element.get("text"), 75, f"{pointer}/text", plain_only=True)
        if "value" in element:
            problems += _length_problems(element["value"], 2000, f"{pointer}/value")
        if "url" in element:
            problems += _length_problems(element["url"], 3000, f"{pointer}/url")
    elif kind in ("static_select", "multi_static_select"):
        if "options" in element:
            problems += _options_problems(element["options"], 100, f"{pointer}/options")
        for g, group in enumerate(element.get("option_groups") or []):
            problems += _options_problems(
                group.get("options"), 100, f"{pointer}/option_groups/{g}/options"
            )
    elif kind == "overflow":
        problems += _options_problems(element.get("options"), 5, f"{pointer}/options")
    elif kind in ("radio_buttons", "checkboxes"):
        problems += _options_problems(element.get("options"), 10, f"{pointer}/options")
    return problems


def _section_problems(block: dict[str, Any], pointer: str) -> list[str]:
    problems = _text_problems(block.get("text"), 3000, f"{pointer}/text", required=False)
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list):
            return [*problems, _at(f"{pointer}/fields", "must be an array")]
        if len(fields) > 10:
            problems.append(_at(f"{pointer}/fields", "must contain at most 10 items"))
        for i, item in enumerate(fields):
            problems += _text_problems(item, 2000, f"{pointer}/fields/{i}")
    if "accessory" in block:
        problems += _element_problems(block["accessory"], f"{pointer}/accessory", set())
    return problems


def _elements_problems(block: dict[str, Any], pointer: str, max_count: int) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list):
        return [_at(f"{pointer}/elements", "must be an array")]
    problems = []
    if len(elements) > max_count:
        problems.append(_at(f"{pointer}/elements", f"must contain at most {max_count} items"))
    return problems


def _actions_problems(block: dict[str, Any], pointer: str) -> list[str]:
    problems = _elements_problems(block, pointer, 25)
    action_ids: set[str] = set()
    for i, element in enumerate(block.get("elements") or []):
        problems += _element_problems(element, f"{pointer}/elements/{i}", action_ids)
    return problems


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _section_problems,
    "header": lambda b, p: _text_problems(b.get("text"), 150, f"{p}/text", plain_only=True),
    "context": lambda b, p: _elements_problems(b, p, 10),
    "actions": _actions_problems,
    "input": lambda b, p: _element_problems(b.get("element"), f"{p}/element", set()),
}


def _sdk_problems(block: dict[str, Any], pointer: str) -> list[str]:
    """What slack_sdk's own models reject (required fields, types, their length validators)."""
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return [_at(pointer, f"unsupported block type {block.get('type')!r}")]
        parsed.to_dict()
    except SlackObjectFormationError as exc:
        return [_at(pointer, str(exc))]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return [_at(pointer, f"malformed block: {exc}")]
    return []


def block_kit_problems(
    blocks: object, *, max_blocks: int = MESSAGE_MAX_BLOCKS, pointer: str = "/blocks"
) -> list[str]:
    """Every reason Slack would answer `invalid_blocks`, worded like Slack's `errors` list.

    Usable on its own to unit-test a Block Kit builder without a server.
    """
    if not isinstance(blocks, list):
        return [_at(pointer, "must be an array of blocks")]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(_at(pointer, f"must contain at most {max_blocks} blocks"))
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        here = f"{pointer}/{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(_at(here, "must be a block object with a type"))
            continue
        found: list[str] = []
        block_id = block.get("block_id")
        if block_id is not None:
            found += _length_problems(block_id, 255, f"{here}/block_id")
            if block_id in block_ids:
                found.append(_at(f"{here}/block_id", f"duplicate block_id {block_id!r}"))
            block_ids.add(str(block_id))
        check = _BLOCK_CHECKS.get(block["type"])
        if check is not None:
            found += check(block, here)
        # slack_sdk's models catch the rest (required fields, types, other limits); asked only
        # when the precise checks above pass, so one mistake is reported once.
        problems += found or _sdk_problems(block, here)
    return problems


def view_problems(view: object, *, expected_type: str | None = None) -> list[str]:
    """Every reason Slack would reject a view passed to views.publish/open/update/push."""
    if not isinstance(view, dict):
        return [_at("/view", "must be a view object")]
    problems = []
    if expected_type is not None and view.get("type") != expected_type:
        problems.append(_at("/view/type", f"must be {expected_type!r}"))
    # The view-level validators (title, submit, close, private_metadata, callback_id) run on a
    # stand-in block so that block problems are reported once, by block_kit_problems.
    try:
        View(**{**view, "blocks": [{"type": "divider"}]}).to_dict()
    except SlackObjectFormationError as exc:
        problems.append(_at("/view", str(exc)))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        problems.append(_at("/view", f"malformed view: {exc}"))
    return problems + block_kit_problems(
        view.get("blocks"), max_blocks=VIEW_MAX_BLOCKS, pointer="/view/blocks"
    )


# --------------------------------------------------------------------------- Socket Mode

SOCKET_MODE_PATH = "/socket-mode"
SOCKET_ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
_INTERACTION_TYPES = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "interactive_message",
        "message_action",
        "shortcut",
        "view_closed",
        "view_submission",
    }
)
# Interactions whose answer goes in the ack (options for a menu, a modal's next state); Slack
# marks their envelopes `accepts_response_payload: true`, as it does slash commands.
_INTERACTIONS_ANSWERED_IN_ACK = frozenset({"block_suggestion", "view_submission"})


def socket_payload(body: bytes | str) -> dict[str, Any]:
    """The object Slack puts in an envelope's `payload`, from a body built by slack_requests.

    Over HTTP Slack sends slash commands form-encoded, interactions as a form field `payload`
    holding JSON, and events as JSON; over Socket Mode each arrives as that object, decoded.
    """
    text = body.decode() if isinstance(body, bytes) else body
    if text.lstrip().startswith("{"):
        decoded = json.loads(text)
    else:
        form = dict(parse_qsl(text, keep_blank_values=True))
        decoded = json.loads(form["payload"]) if set(form) == {"payload"} else form
    if not isinstance(decoded, dict):
        raise ValueError("a Socket Mode payload is a JSON object")
    return decoded


def _envelope_mismatch(envelope_type: str, payload: Mapping[str, Any]) -> str | None:
    """Why `payload` cannot travel in an envelope of `envelope_type` (a mistake in the test)."""
    if envelope_type not in SOCKET_ENVELOPE_TYPES:
        return (
            f"unknown envelope type {envelope_type!r}; Slack sends {sorted(SOCKET_ENVELOPE_TYPES)}"
        )
    if envelope_type == "slash_commands" and not payload.get("command"):
        return "a slash_commands payload names its `command`"
    if envelope_type == "interactive" and payload.get("type") not in _INTERACTION_TYPES:
        return f"an interactive payload has an interaction `type`, not {payload.get('type')!r}"
    if envelope_type == "events_api" and payload.get("type") != "event_callback":
        return "an events_api payload is the Events API wrapper (`type: event_callback`)"
    return None


def _accepts_response_payload(envelope_type: str, payload: Mapping[str, Any]) -> bool:
    if envelope_type == "slash_commands":
        return True
    return envelope_type == "interactive" and payload.get("type") in _INTERACTIONS_ANSWERED_IN_ACK


def _ack_problems(envelope: Mapping[str, Any], ack: Mapping[str, Any]) -> list[str]:
    """What Slack would drop or reject in the app's ack of `envelope`."""
    if "payload" not in ack:
        return []
    payload = ack["payload"]
    if not envelope["accepts_response_payload"]:
        return ["ack carries a payload, but the envelope does not accept one (Slack drops it)"]
    if not isinstance(payload, dict):
        return ["ack payload is not a JSON object"]
    problems: list[str] = []
    if payload.get("response_type", "ephemeral") not in ("ephemeral", "in_channel"):
        problems.append(f"response_type {payload['response_type']!r} is not ephemeral/in_channel")
    if "blocks" in payload:
        problems += block_kit_problems(payload["blocks"], pointer="/payload/blocks")
    if "view" in payload:
        problems += view_problems(payload["view"], expected_type="modal")
    return problems


# --------------------------------------------------------------------------- the fake server


@dataclass
class Call:
    """One request the app made, as the fake understood it."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    http_method: str = "POST"
    token: str | None = None
    # Filled in when the reply is sent; None while the call is still in flight.
    status: int | None = None
    response: dict[str, Any] | None = None
    # time.monotonic() when the request arrived: for ordering and spacing invariants
    # ("nothing to that channel before Retry-After"), never for performance assertions.
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response and self.response.get("ok"))


@dataclass
class _Fault:
    status: int | None
    error: str | None
    retry_after: int | None
    delay: float
    channel: str | None = None  # only calls about this channel (Slack limits posts per channel)


class SlackError(Exception):
    """A documented Slack error reply: `{"ok": false, "error": code, **extra}`."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class _Channel:
    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    is_archived: bool = False
    is_im: bool = False
    im_user: str | None = None
    created: int = 1_600_000_000
    messages: list[dict[str, Any]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "creator": "U0ALICE",
            "is_archived": self.is_archived,
            "is_general": self.name == "general",
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": self.is_member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }


def _input_keys(blocks: Iterable[Any]) -> set[tuple[str, str]]:
    """(block_id, action_id) of every input element in a view's blocks."""
    keys = set()
    for block in blocks:
        if not isinstance(block, dict):
            continue
        element = block.get("element")
        if block.get("type") == "input" and isinstance(element, dict):
            keys.add((str(block.get("block_id")), str(element.get("action_id"))))
    return keys


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _ts_key(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise SlackError("invalid_ts_latest") from exc


def _limit(args: dict[str, Any], default: int, maximum: int) -> int:
    try:
        limit = int(args.get("limit") or default)
    except (TypeError, ValueError) as exc:
        raise SlackError("invalid_limit") from exc
    return min(limit if limit > 0 else default, maximum)


def _page(
    items: list[Any], args: dict[str, Any], default: int, maximum: int
) -> tuple[list[Any], str]:
    """Slack-style cursor pagination: an opaque cursor, "" when there is nothing more."""
    cursor = str(args.get("cursor") or "")
    try:
        start = int(cursor.removeprefix("next:")) if cursor else 0
    except ValueError as exc:
        raise SlackError("invalid_cursor") from exc
    limit = _limit(args, default, maximum)
    end = start + limit
    return items[start:end], (f"next:{end}" if end < len(items) else "")


class FakeSlackApi:
    """An in-memory Slack workspace behind Slack's Web API, on 127.0.0.1.

    `tokens`: when given, only these tokens are accepted (otherwise any `xoxb-`/`xoxp-` token,
    and any `xapp-` app-level token for Socket Mode); list the app-level token too if the app
    under test connects over Socket Mode.
    `clock`: source of message timestamps; the wall clock by default so that `oldest`/`latest`
    computed from the current time by the app behave as they would against Slack.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self._tokens = frozenset(tokens) if tokens is not None else None
        self._clock = clock
        self._last_ts_micros = 0
        self._ids = itertools.count(1)
        self._faults: dict[str, deque[_Fault]] = {}
        self._channels: dict[str, _Channel] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        # Socket Mode: every envelope sent and every ack received, in order, and how many
        # connections the app has opened in all (a reconnect counts again).
        self.socket_envelopes: list[dict[str, Any]] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_tickets: set[str] = set()
        self._awaiting_ack: dict[
            str, tuple[web.WebSocketResponse, asyncio.Future[dict[str, Any]]]
        ] = {}
        self._awaiting_pong: dict[bytes, asyncio.Future[None]] = {}
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._root = ""
        self._methods = web_api_methods()
        self._handlers: dict[str, Callable[[Call], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "reactions.add": self._reactions_add,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }
        for channel_id, name in SEED_CHANNELS.items():
            self.add_channel(channel_id, name, is_private=channel_id in SEED_PRIVATE_CHANNELS)
        for user_id, (name, real_name) in SEED_USERS.items():
            self.add_user(user_id, name, real_name=real_name, is_admin=user_id == SEED_ADMIN)
        self.add_user(BOT_USER_ID, BOT_USER_NAME, real_name="Earful", is_bot=True)

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Serve on an ephemeral port; returns the base URL for `AsyncWebClient(base_url=…)`."""
        self._changed = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_post("/response_url/{hook_id}", self._handle_response_url)
        app.router.add_get(SOCKET_MODE_PATH, self._handle_socket)
        # A short shutdown grace so stop() does not wait out a test's simulated timeout.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._root = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        # Close open sockets first, with "going away" as Slack does, so that the app's client
        # sees the end of the connection rather than a socket that silently stops answering.
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlackApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL ending in `/api/`, as slack_sdk expects."""
        if not self._root:
            raise RuntimeError("FakeSlackApi.start() has not been awaited")
        return f"{self._root}/api/"

    # ----------------------------------------------------------------- test set-up

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_private: bool = False,
        is_member: bool = True,
        is_archived: bool = False,
    ) -> None:
        self._channels[channel_id] = _Channel(
            channel_id, name, is_private=is_private, is_member=is_member, is_archived=is_archived
        )

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        is_admin: bool = False,
        is_bot: bool = False,
        tz: str = "Europe/London",
    ) -> None:
        real_name = real_name or name
        self._users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": 0,
            "is_admin": is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1_600_000_000,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": name,
                "display_name_normalized": name,
                "team": TEAM_ID,
                "image_48": f"https://avatars.example.invalid/{user_id}_48.png",
            },
        }

    def fail(
        self,
        method: str,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: int | None = None,
        error: str | None = None,
        delay: float = 0,
        channel: str | None = None,
    ) -> None:
        """Make the next `times` calls to `method` ("*" for any method) fail.

        `channel`: only calls whose `channel` argument is this one, as Slack rate-limits
        `chat.postMessage` per channel; calls about other channels go through.

        - `status=429`: HTTP 429, `Retry-After: retry_after` (default 1), `"ratelimited"`.
        - `status=5xx`: that HTTP status with `"internal_error"` (or `error`).
        - `error="channel_not_found"` alone: HTTP 200 `{"ok": false, "error": …}`, as Slack
          reports API errors.
        - `delay` alone: the call takes effect at once but is answered only after `delay`
          seconds, like a Slack that posted the message but answered too late for the client.
        - nothing at all: HTTP 500.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is None and error is None and not delay:
            status = 500
        if status is None and error is not None:
            status = 200
        if status == 429 and retry_after is None:
            retry_after = 1
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(status, error, retry_after, delay, channel) for _ in range(times))

    def response_url(self) -> str:
        """A fresh `response_url` served by the fake; what is posted to it lands in `calls`
        under the method name "response_url"."""
        return f"{self.url.removesuffix('/api/')}/response_url/{next(self._ids)}"

    # ----------------------------------------------------------------- views people fill in

    def type_into(
        self, view_id: str, block_id: str, action_id: str, value: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Play a person filling in an input of an open view, as Slack records it in `state`.

        `value` is the state object Slack reports, e.g. `{"type": "plain_text_input",
        "value": "Thanks!"}`. Returns the view as Slack then sends it in a payload.
        """
        view = self.views.get(view_id)
        if view is None:
            raise KeyError(f"no open view {view_id!r}")
        if (block_id, action_id) not in _input_keys(view["blocks"]):
            raise ValueError(f"the view has no input {block_id!r}/{action_id!r}")
        view["state"]["values"].setdefault(block_id, {})[action_id] = dict(value)
        return copy.deepcopy(view)

    def view(self, view_id: str) -> dict[str, Any]:
        """An open view as Slack sends it in a block_actions or view_submission payload."""
        return copy.deepcopy(self.views[view_id])

    # ----------------------------------------------------------------- introspection

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def upload_flow(self) -> list[str]:
        """The files_upload_v2 steps, in the order the app made them."""
        steps = ("files.getUploadURLExternal", "upload", "files.completeUploadExternal")
        return [call.method for call in self.calls if call.method in steps]

    def messages(self, channel: str, *, include_replies: bool = True) -> list[dict[str, Any]]:
        """What is in `channel` now, oldest first, in Slack's message shape (copies)."""
        stored = self._channels[channel].messages if channel in self._channels else []
        return [
            copy.deepcopy(m)
            for m in stored
            if include_replies or m.get("thread_ts") in (None, m["ts"])
        ]

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(e)
            for e in self._ephemerals
            if channel in (None, e["channel"]) and user in (None, e["user"])
        ]

    def take_violations(self) -> list[str]:
        """Return the violations seen so far and forget them (for tests that provoke some)."""
        taken, self.violations = self.violations, []
        return taken

    # A timeout argument (rather than leaving it to asyncio.timeout at the call site) gives every
    # wait a deadline by default, so a test whose app never calls Slack fails instead of hanging.
    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5,  # noqa: ASYNC109
    ) -> list[Call]:
        """Wait until `count` calls to `method` have been answered; returns all such calls."""
        changed = self._changed
        if changed is None:
            raise RuntimeError("FakeSlackApi.start() has not been awaited")
        done: list[Call] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    # Cleared before looking, so a call answered in between still wakes us.
                    changed.clear()
                    done = [c for c in self.calls_to(method) if c.status is not None]
                    if len(done) >= count:
                        return done
                    await changed.wait()
        except TimeoutError:
            seen = sorted({c.method for c in self.calls})
            raise TimeoutError(
                f"waited {timeout}s for {count} {method} call(s), got {len(done)}; "
                f"methods called: {seen}"
            ) from None

    # ----------------------------------------------------------------- Socket Mode

    async def socket_connected(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until the app holds an open Socket Mode connection (it has had its `hello`)."""
        await self._wait_until(lambda: bool(self._sockets), timeout, "the app to connect")

    async def socket_disconnected(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until the app has no Socket Mode connection open (e.g. after it shut down)."""
        await self._wait_until(lambda: not self._sockets, timeout, "the app to disconnect")

    async def socket_send(
        self,
        envelope_type: str,
        payload: Mapping[str, Any] | bytes | str,
        /,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Send an envelope to the app, as Slack does, and return the app's ack (its JSON).

        `envelope_type` is "slash_commands", "interactive" or "events_api"; `payload` is the
        object Slack wraps, or a body built by slack_requests (`slash_command(...)`, …).
        `accepts_response_payload` defaults to what Slack sends for that payload: true for
        slash commands, view submissions and options requests, false for the rest.
        `retry_attempt`/`retry_reason` go on events_api envelopes, as Slack's redeliveries do.
        Slack gives up on an ack after 3 seconds; `timeout` is the test's own deadline.
        """
        body = socket_payload(payload) if isinstance(payload, bytes | str) else dict(payload)
        mismatch = _envelope_mismatch(envelope_type, body)
        if mismatch is not None:
            raise ValueError(mismatch)
        ws = self._sockets[-1] if self._sockets else None
        if ws is None:
            raise RuntimeError("no app is connected over Socket Mode (await socket_connected())")
        if accepts_response_payload is None:
            accepts_response_payload = _accepts_response_payload(envelope_type, body)
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "payload": body,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        envelope_id = envelope["envelope_id"]
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._awaiting_ack[envelope_id] = (ws, acked)
        self.socket_envelopes.append(envelope)
        try:
            await ws.send_json(envelope)
            async with asyncio.timeout(timeout):
                return copy.deepcopy(await acked)
        except TimeoutError:
            raise TimeoutError(
                f"the app did not ack the {envelope_type} envelope {envelope_id} within "
                f"{timeout}s (Slack gives up after 3s)"
            ) from None
        finally:
            self._awaiting_ack.pop(envelope_id, None)

    async def socket_ping(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Ping the app's connection, as Slack does now and then; returns once it has ponged."""
        if not self._sockets:
            raise RuntimeError("no app is connected over Socket Mode (await socket_connected())")
        data = f"fake-slack-ping:{next(self._ids)}".encode()
        ponged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._awaiting_pong[data] = ponged
        try:
            await self._sockets[-1].ping(data)
            async with asyncio.timeout(timeout):
                await ponged
        except TimeoutError:
            raise TimeoutError(f"the app did not answer a ping within {timeout}s") from None
        finally:
            self._awaiting_pong.pop(data, None)

    async def _wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109
        what: str,
    ) -> None:
        changed = self._changed
        if changed is None:
            raise RuntimeError("FakeSlackApi.start() has not been awaited")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    if condition():
                        return
                    await changed.wait()
        except TimeoutError:
            answers = [c.response for c in self.calls_to("apps.connections.open")]
            raise TimeoutError(
                f"waited {timeout}s for {what}; {len(self._sockets)} connection(s) open, "
                f"apps.connections.open answered {answers}"
            ) from None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _apps_connections_open(self, call: Call) -> dict[str, Any]:
        ticket = secrets.token_urlsafe(16)
        self._socket_tickets.add(ticket)
        ws_root = self._root.replace("http://", "ws://", 1)
        return {"url": f"{ws_root}{SOCKET_MODE_PATH}?ticket={ticket}&app_id={APP_ID}"}

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._socket_tickets:
            # Only a URL fresh from apps.connections.open opens a connection, and only once.
            return web.Response(status=401, text="invalid_ticket")
        self._socket_tickets.discard(ticket)
        # autoping off: pings and pongs are answered and recorded here. A short close timeout
        # so that stop() does not wait long for an app that never answers the close frame.
        ws = web.WebSocketResponse(autoping=False, timeout=1.0)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {
                        "host": "applink-fake-1",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
            self._notify()
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive_ack(message.data)
                elif message.type == WSMsgType.PING:
                    await ws.pong(message.data)
                elif message.type == WSMsgType.PONG:
                    ponged = self._awaiting_pong.get(bytes(message.data))
                    if ponged is not None and not ponged.done():
                        ponged.set_result(None)
                elif message.type == WSMsgType.BINARY:
                    self._violate("socket", "binary frame (Socket Mode speaks JSON text frames)")
        finally:
            self._sockets.remove(ws)
            for owner, acked in self._awaiting_ack.values():
                if owner is ws and not acked.done():
                    acked.set_exception(ConnectionError("the socket closed before the app acked"))
            self._notify()
        return ws

    def _receive_ack(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            self._violate("socket", f"message is not JSON: {data[:200]!r}")
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        envelope = next((e for e in self.socket_envelopes if e["envelope_id"] == envelope_id), None)
        if envelope is None:
            self._violate("socket", f"ack for an envelope Slack never sent: {data[:200]!r}")
            return
        where = f"socket {envelope['type']}"
        if any(a["envelope_id"] == envelope_id for a in self.socket_acks):
            self._violate(where, f"envelope {envelope_id} acked twice")
        self.socket_acks.append(ack)
        for problem in _ack_problems(envelope, ack):
            self._violate(where, problem)
        waiting = self._awaiting_ack.get(envelope_id)
        if waiting is not None and not waiting[1].done():
            waiting[1].set_result(ack)
        self._notify()

    # ----------------------------------------------------------------- HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, token, decode_errors = await self._read_args(request)
        call = Call(
            method=method,
            args=args,
            headers=dict(request.headers),
            http_method=request.method,
            token=token,
        )
        self.calls.append(call)
        fault = self._next_fault(method, args)
        headers: dict[str, str] = {}
        if fault is not None and fault.status is not None:
            status = fault.status
            if status == 429:
                headers["Retry-After"] = str(fault.retry_after)
                body: dict[str, Any] = {"ok": False, "error": fault.error or "ratelimited"}
            else:
                body = {"ok": False, "error": fault.error or "internal_error"}
        else:
            status = 200
            body = self._respond(call, decode_errors)
            if method == "auth.test" and body.get("ok"):
                headers["X-OAuth-Scopes"] = BOT_SCOPES
        if fault is not None and fault.delay:
            # Done already; only the answer is late (the client may have given up by then).
            await asyncio.sleep(fault.delay)
        return self._finish(call, status, body, headers)

    def _finish(
        self, call: Call, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> web.Response:
        call.status, call.response = status, body
        if self._changed is not None:
            self._changed.set()
        return web.json_response(body, status=status, headers=headers)

    def _next_fault(self, method: str, args: Mapping[str, Any]) -> _Fault | None:
        for key in (method, "*"):
            queue = self._faults.get(key) or deque()
            for fault in queue:
                if fault.channel is None or fault.channel == str(args.get("channel")):
                    queue.remove(fault)
                    return fault
        return None

    @staticmethod
    async def _read_args(request: web.Request) -> tuple[dict[str, Any], str | None, list[str]]:
        args: dict[str, Any] = dict(request.query)
        decode_errors: list[str] = []
        header_token = None
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            header_token = auth.removeprefix("Bearer ").strip()
        if request.content_type == "multipart/form-data":
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        elif request.body_exists:
            raw = await request.read()
            if request.content_type == "application/json":
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    decode_errors.append("invalid_json")
                    body = {}
                # Slack ignores a token inside a JSON body: JSON callers must use the header.
                body.pop("token", None)
                args.update(body)
            else:
                args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        token = header_token or args.get("token")
        args.pop("token", None)
        for name, error in _JSON_ARGS.items():
            value = args.get(name)
            if isinstance(value, str) and value:
                try:
                    args[name] = json.loads(value)
                except ValueError:
                    decode_errors.append(error)
        return args, token, decode_errors

    def _violate(self, method: str, problem: str) -> None:
        self.violations.append(f"{method}: {problem}")

    def _respond(self, call: Call, decode_errors: list[str]) -> dict[str, Any]:
        method = call.method
        if method not in self._methods:
            self._violate(method, "unknown method (not in Slack's Web API spec)")
            return {"ok": False, "error": "unknown_method"}
        if method in _RETIRED_METHODS:
            self._violate(method, _RETIRED_METHODS[method])
            return {"ok": False, "error": "method_deprecated"}
        if not call.token:
            return {"ok": False, "error": "not_authed"}
        app_token_method = method in _APP_TOKEN_METHODS
        if app_token_method and not call.headers.get("Authorization", "").startswith("Bearer "):
            # Slack's page for apps.connections.open: the token must come in the Authorization
            # header; passed as a POST parameter it is refused.
            return {"ok": False, "error": "invalid_auth"}
        if not self._token_ok(call.token):
            return {"ok": False, "error": "invalid_auth"}
        if call.token.startswith("xapp-") != app_token_method:
            return {"ok": False, "error": "not_allowed_token_type"}
        missing = sorted(
            name for name in self._methods[method] if call.args.get(name) in (None, "")
        )
        if missing:
            self._violate(method, f"missing required argument(s): {', '.join(missing)}")
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {
                    "messages": [f"[ERROR] missing required field: {name}" for name in missing]
                },
            }
        if decode_errors:
            self._violate(method, f"argument is not valid JSON ({decode_errors[0]})")
            return {"ok": False, "error": decode_errors[0]}
        rejection = self._check_content(call)
        if rejection is not None:
            return rejection
        handler = self._handlers.get(method)
        if handler is None:
            return {"ok": True}
        try:
            return {"ok": True, **handler(call)}
        except SlackError as exc:
            return {"ok": False, "error": exc.code, **exc.extra}

    def _token_ok(self, token: str) -> bool:
        if self._tokens is not None:
            return token in self._tokens
        return token.startswith(("xoxb-", "xoxp-", "xapp-"))

    def _check_content(self, call: Call) -> dict[str, Any] | None:
        """Slack's content rules for messages and views; None when the call may proceed."""
        method, args = call.method, call.args
        problems: list[str] = []
        if method in _MESSAGE_BLOCK_METHODS:
            text = args.get("text")
            if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
                self._violate(method, f"text is longer than {MESSAGE_TEXT_MAX} characters")
                return {"ok": False, "error": "msg_too_long"}
            has_content = any(args.get(k) for k in ("text", "blocks", "attachments"))
            if method != "chat.update" and not has_content and not args.get("markdown_text"):
                self._violate(method, "neither text nor blocks nor attachments given")
                return {"ok": False, "error": "no_text"}
            if args.get("blocks") and not (
                str(args.get("text") or "").strip() or args.get("markdown_text")
            ):
                # Not an error at Slack, but the message is silent to screen readers and
                # notifications; slack_sdk warns for the same reason.
                self._violate(method, "blocks sent without top-level text (accessibility)")
            if "blocks" in args:
                problems = block_kit_problems(args["blocks"])
            if "metadata" in args:
                metadata = args["metadata"]
                if not (
                    isinstance(metadata, dict)
                    and isinstance(metadata.get("event_type"), str)
                    and isinstance(metadata.get("event_payload"), dict)
                ):
                    self._violate(method, "metadata needs event_type and event_payload")
                    return {"ok": False, "error": "invalid_metadata_format"}
        elif method in _VIEW_METHODS:
            expected = {"views.publish": "home", "views.open": "modal", "views.push": "modal"}
            problems = view_problems(args.get("view"), expected_type=expected.get(method))
        if not problems:
            return None
        for problem in problems:
            self._violate(method, problem)
        return {
            "ok": False,
            "error": "invalid_blocks",
            "errors": problems,
            "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
        }

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        # The middle step of files_upload_v2 goes to files.slack.com, not the Web API; it is
        # recorded in `calls` too ("upload"), so a test sees the flow in order.
        call = Call("upload", {"file_id": file_id, "length": len(data)}, dict(request.headers))
        self.calls.append(call)
        if file_id not in self.files:
            call.status, call.response = 404, {"ok": False, "error": "file_not_found"}
            self._notify()
            return web.Response(status=404, text="file_not_found")
        stored = self.files[file_id]
        if stored["completed"]:
            self._violate("upload", f"{file_id} was uploaded after completeUploadExternal")
        if len(data) != stored["length"]:
            self._violate(
                "upload",
                f"{file_id}: {len(data)} bytes uploaded, but getUploadURLExternal said "
                f"{stored['length']}",
            )
        stored["content"] = data
        call.status, call.response = 200, {"ok": True}
        self._notify()
        # What files.slack.com answers; slack_sdk only checks the status.
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        args = payload if isinstance(payload, dict) else {}
        call = Call("response_url", args, dict(request.headers))
        self.calls.append(call)
        if not isinstance(payload, dict):
            self._violate("response_url", "body is not a JSON object")
            call.status, call.response = 400, {"ok": False, "error": "invalid_payload"}
            return web.Response(status=400, text="invalid_payload")
        problems = block_kit_problems(payload["blocks"]) if "blocks" in payload else []
        if not any(payload.get(k) for k in ("text", "blocks", "delete_original")):
            problems.append("neither text nor blocks given")
        for problem in problems:
            self._violate("response_url", problem)
        status = 400 if problems else 200
        call.status, call.response = status, {"ok": not problems}
        if self._changed is not None:
            self._changed.set()
        return web.Response(status=status, text="invalid_blocks" if problems else "ok")

    # ----------------------------------------------------------------- state helpers

    def _next_ts(self) -> str:
        micros = max(int(self._clock() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08d}"

    def _dm_for(self, user_id: str) -> _Channel:
        if user_id not in self._users:
            raise SlackError("user_not_found")
        channel_id = f"D{user_id[1:]}"
        if channel_id not in self._channels:
            self._channels[channel_id] = _Channel(
                channel_id, channel_id, is_private=True, is_im=True, im_user=user_id
            )
        return self._channels[channel_id]

    def _channel(self, ref: Any, *, for_posting: bool = False) -> _Channel:
        ref = str(ref)
        if ref in self._channels:
            channel = self._channels[ref]
        elif for_posting and ref[:1] in ("U", "W") and ref in self._users:
            # chat.postMessage to a user ID posts in the app's DM with that user.
            channel = self._dm_for(ref)
        else:
            by_name = [c for c in self._channels.values() if c.name == ref.removeprefix("#")]
            if not by_name:
                raise SlackError("channel_not_found")
            channel = by_name[0]
        if for_posting:
            if channel.is_archived:
                raise SlackError("is_archived")
            if channel.is_private and not channel.is_member:
                raise SlackError("not_in_channel")
        return channel

    @staticmethod
    def _message(channel: _Channel, ts: str) -> dict[str, Any]:
        for message in channel.messages:
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    def _with_generated_ids(self, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Slack fills in block_id (and action_id) when the app leaves them out, and returns
        # them in history and in interaction payloads.
        blocks = copy.deepcopy(blocks)
        for block in blocks:
            block.setdefault("block_id", f"b{next(self._ids)}")
            elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
            if isinstance(block.get("accessory"), dict):
                elements.append(block["accessory"])
            for element in elements:
                if isinstance(element, dict) and "type" in element:
                    element.setdefault("action_id", f"a{next(self._ids)}")
        return blocks

    # ----------------------------------------------------------------- method handlers

    def _auth_test(self, call: Call) -> dict[str, Any]:
        if call.token and call.token.startswith("xoxp-"):
            return {
                "url": f"https://{TEAM_DOMAIN}.slack.com/",
                "team": TEAM_NAME,
                "user": "alice",
                "team_id": TEAM_ID,
                "user_id": "U0ALICE",
                "is_enterprise_install": False,
            }
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, call: Call) -> dict[str, Any]:
        args = call.args
        channel = self._channel(args["channel"], for_posting=True)
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "text": args.get("text") or "",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": ts,
        }
        for key in ("attachments", "metadata"):
            if args.get(key):
                message[key] = args[key]
        if args.get("blocks"):
            message["blocks"] = self._with_generated_ids(args["blocks"])
        thread_ts = args.get("thread_ts")
        if thread_ts:
            broadcast = _truthy(args.get("reply_broadcast"))
            self._attach_to_thread(channel, message, str(thread_ts), broadcast)
        channel.messages.append(message)
        return {"channel": channel.id, "ts": ts, "message": copy.deepcopy(message)}

    @staticmethod
    def _attach_to_thread(
        channel: _Channel, message: dict[str, Any], thread_ts: str, broadcast: bool
    ) -> None:
        parents = [m for m in channel.messages if m["ts"] == thread_ts]
        # A reply to a reply joins the root's thread, as in Slack.
        root_ts = parents[0].get("thread_ts", thread_ts) if parents else thread_ts
        message["thread_ts"] = root_ts
        if broadcast:
            message["subtype"] = "thread_broadcast"
        root = [m for m in channel.messages if m["ts"] == root_ts]
        if not root:
            return
        parent = root[0]
        message["parent_user_id"] = parent.get("user")
        parent["thread_ts"] = root_ts
        parent["reply_count"] = parent.get("reply_count", 0) + 1
        parent["latest_reply"] = message["ts"]
        parent["reply_users"] = sorted({*parent.get("reply_users", []), BOT_USER_ID})
        parent["reply_users_count"] = len(parent["reply_users"])

    def _chat_update(self, call: Call) -> dict[str, Any]:
        args = call.args
        channel = self._channel(args["channel"])
        message = self._message(channel, str(args["ts"]))
        if message.get("bot_id") != BOT_ID:
            raise SlackError("cant_update_message")
        # Fields left out keep their previous value; an empty blocks array removes the blocks.
        if "text" in args:
            message["text"] = args["text"] or ""
        if "blocks" in args:
            if args["blocks"]:
                message["blocks"] = self._with_generated_ids(args["blocks"])
            else:
                message.pop("blocks", None)
        for key in ("attachments", "metadata"):
            if key in args:
                message[key] = args[key]
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "channel": channel.id,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_delete(self, call: Call) -> dict[str, Any]:
        channel = self._channel(call.args["channel"])
        message = self._message(channel, str(call.args["ts"]))
        channel.messages.remove(message)
        return {"channel": channel.id, "ts": message["ts"]}

    def _chat_post_ephemeral(self, call: Call) -> dict[str, Any]:
        args = call.args
        channel = self._channel(args["channel"], for_posting=True)
        if args["user"] not in self._users:
            raise SlackError("user_not_in_channel")
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel.id,
                "user": args["user"],
                "text": args.get("text") or "",
                "blocks": args.get("blocks") or [],
                "thread_ts": args.get("thread_ts"),
                "ts": ts,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, call: Call) -> dict[str, Any]:
        channel = self._channel(call.args["channel"])
        message = self._message(channel, str(call.args["message_ts"]))
        digits = message["ts"].replace(".", "")
        permalink = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{digits}"
        if message.get("thread_ts") not in (None, message["ts"]):
            permalink += f"?thread_ts={message['thread_ts']}&cid={channel.id}"
        return {"channel": channel.id, "permalink": permalink}

    @staticmethod
    def _visible(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        shown = copy.deepcopy(message)
        if not with_metadata:
            shown.pop("metadata", None)
        return shown

    def _conversations_history(self, call: Call) -> dict[str, Any]:
        args = call.args
        channel = self._channel(args["channel"])
        inclusive = _truthy(args.get("inclusive"))
        oldest = _ts_key(args.get("oldest") or 0)
        latest = _ts_key(args["latest"]) if args.get("latest") else None
        with_metadata = _truthy(args.get("include_all_metadata"))

        def in_window(message: dict[str, Any]) -> bool:
            ts = _ts_key(message["ts"])
            after = ts >= oldest if inclusive else ts > oldest
            before = latest is None or (ts <= latest if inclusive else ts < latest)
            return after and before

        # History shows thread parents and broadcast replies, not the other replies.
        top_level = [
            m
            for m in channel.messages
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        newest_first = [m for m in reversed(top_level) if in_window(m)]
        page, next_cursor = _page(newest_first, args, default=100, maximum=999)
        return {
            "messages": [self._visible(m, with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, call: Call) -> dict[str, Any]:
        args = call.args
        channel = self._channel(args["channel"])
        parent = self._message(channel, str(args["ts"]))
        root_ts = parent.get("thread_ts", parent["ts"])
        thread = [m for m in channel.messages if root_ts in (m["ts"], m.get("thread_ts"))]
        page, next_cursor = _page(thread, args, default=1000, maximum=1000)
        with_metadata = _truthy(args.get("include_all_metadata"))
        return {
            "messages": [self._visible(m, with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_info(self, call: Call) -> dict[str, Any]:
        return {"channel": self._channel(call.args["channel"]).info()}

    def _conversations_list(self, call: Call) -> dict[str, Any]:
        args = call.args
        types = set(str(args.get("types") or "public_channel").split(","))
        exclude_archived = _truthy(args.get("exclude_archived"))

        def kind(channel: _Channel) -> str:
            if channel.is_im:
                return "im"
            return "private_channel" if channel.is_private else "public_channel"

        channels = [
            c.info()
            for c in self._channels.values()
            if kind(c) in types
            and not (exclude_archived and c.is_archived)
            # A bot sees only the private channels it is a member of.
            and not (c.is_private and not c.is_im and not c.is_member)
        ]
        page, next_cursor = _page(channels, args, default=100, maximum=1000)
        return {"channels": page, "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_open(self, call: Call) -> dict[str, Any]:
        args = call.args
        if args.get("channel"):
            return {"channel": self._channel(args["channel"]).info()}
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            # Group DMs are not simulated; Earful only opens one-to-one DMs.
            raise SlackError("users_list_not_supplied" if not users else "not_supported")
        return {"no_op": False, "already_open": False, "channel": self._dm_for(users[0]).info()}

    def _users_info(self, call: Call) -> dict[str, Any]:
        user = self._users.get(str(call.args["user"]))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _store_view(
        self, view: dict[str, Any], *, view_id: str | None = None, previous: str | None = None
    ) -> dict[str, Any]:
        view_id = view_id or self._new_id("V")
        stored = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view.get("type"),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": self._with_generated_ids(view.get("blocks") or []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{next(self._ids):08d}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self.views[view_id] = stored
        return stored

    def _views_publish(self, call: Call) -> dict[str, Any]:
        user_id = str(call.args["user_id"])
        if user_id not in self._users:
            raise SlackError("user_not_found")
        previous = self.home_views.get(user_id)
        stored = self._store_view(call.args["view"], view_id=previous["id"] if previous else None)
        self.home_views[user_id] = stored
        return {"view": copy.deepcopy(stored)}

    def _views_open(self, call: Call) -> dict[str, Any]:
        return {"view": copy.deepcopy(self._store_view(call.args["view"]))}

    def _views_update(self, call: Call) -> dict[str, Any]:
        args = call.args
        if args.get("view_id"):
            current = self.views.get(str(args["view_id"]))
        elif args.get("external_id"):
            matches = [v for v in self.views.values() if v["external_id"] == args["external_id"]]
            current = matches[-1] if matches else None
        else:
            raise SlackError("invalid_arguments")
        if current is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        stored = self._store_view(args["view"], view_id=current["id"])
        # Slack keeps what was typed into an input whose block_id and action_id the new view
        # still has (views.update, "Preserving input entry"); a renamed input starts afresh.
        still_there = _input_keys(stored["blocks"])
        for block_id, actions in current["state"]["values"].items():
            for action_id, value in actions.items():
                if (block_id, action_id) in still_there:
                    stored["state"]["values"].setdefault(block_id, {})[action_id] = value
        return {"view": copy.deepcopy(stored)}

    def _reactions_add(self, call: Call) -> dict[str, Any]:
        args = call.args
        message = self._message(self._channel(args["channel"]), str(args["timestamp"]))
        name = str(args["name"]).strip(":")
        reactions = message.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["name"] == name:
                if BOT_USER_ID in reaction["users"]:
                    raise SlackError("already_reacted")
                reaction["users"].append(BOT_USER_ID)
                reaction["count"] += 1
                return {}
        reactions.append({"name": name, "users": [BOT_USER_ID], "count": 1})
        return {}

    def _files_get_upload_url(self, call: Call) -> dict[str, Any]:
        # files.getUploadURLExternal: `length` is the byte size to come (Slack answers
        # missing_argument for 0), `alt_txt` at most 1,000 characters (alt_txt_too_large).
        try:
            length = int(call.args["length"])
        except (TypeError, ValueError) as exc:
            raise SlackError("invalid_arguments") from exc
        if length <= 0:
            self._violate(call.method, "length must be the file's size in bytes, above 0")
            raise SlackError("missing_argument")
        alt_txt = call.args.get("alt_txt")
        if isinstance(alt_txt, str) and len(alt_txt) > MAX_ALT_TXT:
            self._violate(call.method, f"alt_txt is longer than {MAX_ALT_TXT} characters")
            raise SlackError("alt_txt_too_large")
        file_id = self._new_id("F")
        self.files[file_id] = {
            "id": file_id,
            "name": call.args["filename"],
            "length": length,
            "alt_txt": alt_txt or None,
            "content": None,
            "completed": False,
            "shares": [],
        }
        upload_url = f"{self.url.removesuffix('/api/')}/upload/v1/{file_id}"
        return {"upload_url": upload_url, "file_id": file_id}

    def _files_complete_upload(self, call: Call) -> dict[str, Any]:
        args = call.args
        entries = args["files"] if isinstance(args["files"], list) else []
        done = []
        if not entries:
            self._violate(call.method, "files must be a non-empty array of {id, title}")
            raise SlackError("invalid_arguments")
        channel = None
        if args.get("channel_id"):
            channel = self._channel(args["channel_id"], for_posting=True)
            if args.get("thread_ts"):
                # A thread's parent must be a message of that channel (never a reply).
                parent = self._message(channel, str(args["thread_ts"]))
                if parent.get("thread_ts") not in (None, parent["ts"]):
                    self._violate(call.method, "thread_ts is a reply; use its parent's ts")
        elif args.get("thread_ts"):
            self._violate(call.method, "thread_ts given without the channel to share in")
        for entry in entries:
            stored = self.files.get(str(entry.get("id")))
            if stored is None or stored["content"] is None:
                # Never uploaded (or an unknown id): Slack has nothing to complete.
                raise SlackError("file_not_found")
            if stored["completed"]:
                self._violate(call.method, f"{stored['id']} was already completed")
            stored["completed"] = True
            stored["title"] = entry.get("title") or stored["name"]
            done.append(
                {
                    "id": stored["id"],
                    "name": stored["name"],
                    "title": stored["title"],
                    "size": len(stored["content"]),
                    "alt_txt": stored["alt_txt"],
                }
            )
        if channel is not None:
            for entry in done:
                self.files[entry["id"]]["shares"].append(
                    {"channel": channel.id, "thread_ts": args.get("thread_ts")}
                )
            message = {
                "type": "message",
                "text": args.get("initial_comment") or "",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "team": TEAM_ID,
                "ts": self._next_ts(),
                "files": done,
                "upload": True,
            }
            if args.get("thread_ts"):
                message["thread_ts"] = str(args["thread_ts"])
            channel.messages.append(message)
        return {"files": done}
