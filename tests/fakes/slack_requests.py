"""Requests from "Slack" to the app: signed like Slack signs them, shaped like Slack sends them.

Bodies follow Slack's documented payloads (slash commands, block_actions, view_submission,
the Events API wrapper) so that Bolt's own parsing and signature verification run unchanged.
Identities default to the workspace simulated by `slack_api.FakeSlackApi`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.models.blocks import Block

from tests.fakes.slack_api import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    SEED_CHANNELS,
    SEED_USERS,
    TEAM_DOMAIN,
    TEAM_ID,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# Slack still sends the deprecated verification token in every payload; Bolt ignores it.
VERIFICATION_TOKEN = "fakeVerificationToken0001"

_serial = itertools.count(1)


class SlackRequestSigner:
    """Signs request bodies the way Slack does (signing secret, version v0)."""

    def __init__(self, signing_secret: str) -> None:
        self._secret = signing_secret.encode()

    def signature(self, body: bytes, timestamp: int) -> str:
        base = b"v0:" + str(timestamp).encode() + b":" + body
        return "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()

    def headers(
        self, body: bytes, *, timestamp: int | None = None, tamper: bool = False
    ) -> dict[str, str]:
        """`X-Slack-Signature` and `X-Slack-Request-Timestamp` for `body`.

        `timestamp`: sign as of another time (e.g. six minutes ago, which Bolt must refuse).
        `tamper`: send a signature that does not match, as a forger would.
        """
        ts = int(time.time()) if timestamp is None else timestamp
        signature = self.signature(body, ts)
        if tamper:
            # Flip the last hex digit: well-formed, but wrong.
            signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(ts)}


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    content_type: str,
    signer: SlackRequestSigner,
    *,
    timestamp: int | None = None,
    tamper: bool = False,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST `body` to the app as Slack would; the caller reads (and so releases) the response.

    `retry_num` adds Slack's `X-Slack-Retry-Num`/`X-Slack-Retry-Reason` headers, which Slack
    sends when it redelivers an event the app did not acknowledge in time.
    """
    all_headers = {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        **signer.headers(body, timestamp=timestamp, tamper=tamper),
    }
    if retry_num is not None:
        all_headers["X-Slack-Retry-Num"] = str(retry_num)
        all_headers["X-Slack-Retry-Reason"] = retry_reason
    all_headers.update(headers or {})
    return await session.post(url, data=body, headers=all_headers)


# ------------------------------------------------------------------ shared pieces


def _trigger_id() -> str:
    # Shaped like Slack's: "13345224609.738474920.8088930838d88f008e0".
    return f"{next(_serial):011d}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


def _response_url(team_id: str, kind: str = "commands") -> str:
    return f"https://hooks.slack.com/{kind}/{team_id}/{next(_serial)}/{secrets.token_urlsafe(18)}"


def _now_ts() -> str:
    return f"{time.time():.6f}"


def channel_ref(channel_id: str, name: str) -> str:
    """A channel mention as Slack writes it into command text when should_escape is on."""
    return f"<#{channel_id}|{name}>"


def user_ref(user_id: str, name: str) -> str:
    """A user mention as Slack writes it into command text when should_escape is on."""
    return f"<@{user_id}|{name}>"


def _user(user_id: str, user_name: str | None, team_id: str) -> dict[str, str]:
    name = user_name or SEED_USERS.get(user_id, (user_id.lower(), ""))[0]
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _as_dicts(blocks: Sequence[Block | dict[str, Any]]) -> list[dict[str, Any]]:
    return [b.to_dict() if isinstance(b, Block) else dict(b) for b in blocks]


def _interactive_elements(blocks: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    found: list[tuple[str | None, dict[str, Any]]] = []
    for block in blocks:
        block_id = block.get("block_id")
        if block.get("type") == "actions":
            found += [(block_id, e) for e in block.get("elements", [])]
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                found.append((block_id, block[key]))
    return found


# ------------------------------------------------------------------ slash commands


def slash_command(
    text: str,
    *,
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0SUPPORT",
    channel_name: str | None = None,
    team_id: str = TEAM_ID,
    command: str = "/earful",
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> bytes:
    """The form body Slack POSTs for `/earful <text>` (send with content type FORM).

    With should_escape on, write mentions in `text` as Slack does: see channel_ref/user_ref.
    """
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name or SEED_CHANNELS.get(channel_id, "directmessage"),
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url or _response_url(team_id),
        "trigger_id": trigger_id or _trigger_id(),
    }
    return urlencode(fields).encode()


# ------------------------------------------------------------------ interactivity


def block_action(
    action_id: str,
    value: str | None = None,
    *,
    selected_option: dict[str, Any] | str | None = None,
    block_id: str | None = None,
    user_id: str = "U0ALICE",
    user_name: str | None = None,
    channel_id: str = "C0SUPPORT",
    channel_name: str | None = None,
    message_ts: str = "1700000000.000100",
    message_text: str = "",
    message_blocks: Sequence[Block | dict[str, Any]] | None = None,
    team_id: str = TEAM_ID,
    is_ephemeral: bool = False,
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> bytes:
    """The form body (`payload=<json>`) Slack POSTs when someone clicks a button or picks a
    menu option in a message the app posted.

    Pass `message_blocks` (e.g. from `fake.messages(channel)[-1]["blocks"]`) to click what is
    really there: block_id, element type, button text and value are then taken from the
    element, and clicking an action_id the message does not contain raises ValueError.
    Without them, a button (or, with `selected_option`, a static_select) is assumed.
    """
    blocks = _as_dicts(message_blocks) if message_blocks is not None else None
    element: dict[str, Any] = {}
    if blocks is not None:
        matches = [
            (bid, e)
            for bid, e in _interactive_elements(blocks)
            if e.get("action_id") == action_id and block_id in (None, bid)
        ]
        if not matches:
            raise ValueError(f"no element with action_id {action_id!r} in the message blocks")
        block_id, element = matches[0]
    kind = element.get("type") or ("static_select" if selected_option is not None else "button")
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or "actions",
        "type": kind,
        "action_ts": _now_ts(),
    }
    if kind == "button":
        action["text"] = element.get("text") or {"type": "plain_text", "text": action_id}
        chosen = value if value is not None else element.get("value")
        if chosen is not None:
            action["value"] = chosen
    else:
        action["selected_option"] = _selected_option(element, selected_option)
        if "placeholder" in element:
            action["placeholder"] = element["placeholder"]
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": team_id,
        "ts": message_ts,
        "text": message_text,
    }
    if blocks is not None:
        message["blocks"] = blocks
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {
            "id": channel_id,
            "name": channel_name or SEED_CHANNELS.get(channel_id, "directmessage"),
        },
        "message": message,
        "state": {"values": {}},
        "response_url": response_url or _response_url(team_id, "actions"),
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def _selected_option(
    element: dict[str, Any], selected: dict[str, Any] | str | None
) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options", [])
    wanted = selected.get("value") if isinstance(selected, dict) else selected
    for option in options:
        if option.get("value") == wanted:
            return dict(option)
    if options:
        raise ValueError(f"no option with value {wanted!r} in the menu")
    if isinstance(selected, dict):
        return selected
    return {"text": {"type": "plain_text", "text": str(wanted)}, "value": wanted}


def view_submission(
    callback_id: str,
    values: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    private_metadata: str = "",
    user_id: str = "U0ALICE",
    user_name: str | None = None,
    team_id: str = TEAM_ID,
    view_id: str | None = None,
    blocks: Sequence[Block | dict[str, Any]] = (),
) -> bytes:
    """The form body Slack POSTs when a modal is submitted.

    `values` is the modal state as Slack reports it, block_id -> action_id -> value object,
    e.g. `{"reply": {"text": {"type": "plain_text_input", "value": "Thanks!"}}}`.
    """
    view_id = view_id or f"V0{next(_serial):08d}"
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": _as_dicts(blocks),
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": {k: dict(v) for k, v in values.items()}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": {"type": "plain_text", "text": "Earful"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


# ------------------------------------------------------------------ Events API


def event_callback(
    event: Mapping[str, Any],
    *,
    team_id: str = TEAM_ID,
    event_id: str | None = None,
    event_time: int | None = None,
) -> bytes:
    """The JSON body Slack POSTs for an event (send with content type JSON).

    Pass the same `event_id` twice to simulate Slack redelivering one event.
    """
    event_ts = str(event.get("event_ts") or _now_ts())
    body = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": {**event, "event_ts": event_ts},
        "type": "event_callback",
        "event_id": event_id or f"Ev0{next(_serial):08d}",
        "event_time": event_time if event_time is not None else int(float(event_ts)),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        # Deprecated by Slack in favour of `authorizations`, but still sent and still required
        # by Slack's published wrapper schema.
        "authed_users": [BOT_USER_ID],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_urlsafe(24)}",
    }
    return json.dumps(body).encode()


def reaction_added(
    user: str, reaction: str, channel: str, ts: str, item_user: str = BOT_USER_ID
) -> dict[str, Any]:
    """A `reaction_added` event: `user` reacted with `reaction` to message `ts` in `channel`."""
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": _now_ts(),
    }


def app_home_opened(user: str, *, tab: str = "home") -> dict[str, Any]:
    """An `app_home_opened` event: `user` opened the app's Home tab."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": f"D{user[1:]}",
        "tab": tab,
        "event_ts": _now_ts(),
    }


def url_verification(challenge: str) -> bytes:
    """The handshake Slack sends when a Request URL is saved; the app must echo `challenge`."""
    body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    return json.dumps(body).encode()
