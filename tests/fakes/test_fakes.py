"""The test doubles are only worth something if they behave like Slack: test them first."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import jsonschema
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    HeaderBlock,
    Option,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack_api import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    FakeSlackApi,
    block_kit_problems,
    slack_spec_dir,
)
from tests.fakes.slack_requests import (
    FORM,
    JSON,
    SlackRequestSigner,
    app_home_opened,
    block_action,
    channel_ref,
    event_callback,
    post_signed,
    reaction_added,
    slash_command,
    url_verification,
)


@pytest.fixture
async def client(fake_slack: FakeSlackApi) -> AsyncIterator[AsyncWebClient]:
    yield AsyncWebClient(base_url=fake_slack.url, token="xoxb-test")


def _alert_blocks() -> list[dict[str, Any]]:
    return [
        HeaderBlock(text="Complaint on Hacker News").to_dict(),
        SectionBlock(text="*acme* checkout is broken again", block_id="mention").to_dict(),
        ActionsBlock(
            block_id="alert_actions",
            elements=[
                ButtonElement(text="Claim", action_id="claim", value="mention:42"),
                StaticSelectElement(
                    action_id="reroute",
                    placeholder="Reroute to…",
                    options=[
                        Option(text="Product", value="product"),
                        Option(text="PR", value="pr"),
                    ],
                ),
            ],
        ).to_dict(),
    ]


# ------------------------------------------------------------------ the Web API fake


async def test_post_then_update_round_trip(fake_slack: FakeSlackApi, client: AsyncWebClient):
    posted = await client.chat_postMessage(
        channel="C0SUPPORT",
        text="Complaint: checkout is broken",
        blocks=_alert_blocks(),
        metadata={"event_type": "earful_alert", "event_payload": {"mention_id": 42}},
    )
    assert posted["channel"] == "C0SUPPORT"
    assert posted["message"]["bot_id"] == BOT_ID
    assert posted["message"]["user"] == BOT_USER_ID

    updated = await client.chat_update(
        channel="C0SUPPORT", ts=posted["ts"], text="Claimed by alice", blocks=_alert_blocks()[:2]
    )
    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "Claimed by alice"

    (stored,) = fake_slack.messages("C0SUPPORT")
    assert stored["text"] == "Claimed by alice"
    assert [b["block_id"] for b in stored["blocks"]][1] == "mention"
    assert len(stored["blocks"]) == 2
    assert stored["metadata"]["event_payload"] == {"mention_id": 42}
    assert [c.method for c in fake_slack.calls] == ["chat.postMessage", "chat.update"]
    assert fake_slack.violations == []


async def test_timestamps_are_unique_and_increasing(client: AsyncWebClient):
    stamps = [
        (await client.chat_postMessage(channel="C0SUPPORT", text=f"n{i}"))["ts"] for i in range(5)
    ]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5


async def test_update_of_unknown_message_is_message_not_found(client: AsyncWebClient):
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel="C0SUPPORT", ts="1.000001", text="x")
    assert raised.value.response["error"] == "message_not_found"


async def test_history_is_newest_first_and_honours_window_and_metadata(
    fake_slack: FakeSlackApi, client: AsyncWebClient
):
    metadata = {"event_type": "earful_alert", "event_payload": {"mention_id": 1}}
    first = await client.chat_postMessage(channel="C0PRODUCT", text="one", metadata=metadata)
    second = await client.chat_postMessage(channel="C0PRODUCT", text="two")
    await client.chat_postMessage(channel="C0PRODUCT", text="reply", thread_ts=first["ts"])
    third = await client.chat_postMessage(channel="C0PRODUCT", text="three")

    history = await client.conversations_history(channel="C0PRODUCT")
    assert [m["text"] for m in history["messages"]] == ["three", "two", "one"]
    assert "metadata" not in history["messages"][-1]
    assert history["messages"][-1]["reply_count"] == 1

    window = await client.conversations_history(
        channel="C0PRODUCT", oldest=first["ts"], latest=third["ts"]
    )
    assert [m["ts"] for m in window["messages"]] == [second["ts"]]

    page = await client.conversations_history(
        channel="C0PRODUCT", limit=1, include_all_metadata=True, latest=second["ts"]
    )
    assert page["messages"][0]["metadata"] == metadata
    assert page["has_more"] is False

    limited = await client.conversations_history(channel="C0PRODUCT", limit=2)
    assert len(limited["messages"]) == 2 and limited["has_more"] is True
    assert limited["response_metadata"]["next_cursor"]
    assert len(fake_slack.messages("C0PRODUCT")) == 4


async def test_channels_users_and_permalinks(fake_slack: FakeSlackApi, client: AsyncWebClient):
    fake_slack.add_channel("C0LEGAL", "legal", is_private=True)
    info = await client.conversations_info(channel="C0LEGAL")
    assert info["channel"]["name"] == "legal" and info["channel"]["is_private"] is True
    listed = await client.conversations_list(types="public_channel,private_channel")
    assert {"C0SUPPORT", "C0LEGAL"} <= {c["id"] for c in listed["channels"]}
    user = await client.users_info(user="U0ALICE")
    assert user["user"]["name"] == "alice"
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await client.chat_postMessage(channel="C0NOWHERE", text="hi")

    posted = await client.chat_postMessage(channel="#legal", text="hello")
    assert posted["channel"] == "C0LEGAL"
    link = await client.chat_getPermalink(channel="C0LEGAL", message_ts=posted["ts"])
    assert link["permalink"].endswith(f"/archives/C0LEGAL/p{posted['ts'].replace('.', '')}")

    dm = await client.conversations_open(users="U0BOB")
    await client.chat_postMessage(channel=dm["channel"]["id"], text="You have 3 open items")
    assert fake_slack.messages(dm["channel"]["id"])[0]["text"] == "You have 3 open items"


async def test_auth_test_and_token_checks(fake_slack: FakeSlackApi):
    auth = await AsyncWebClient(base_url=fake_slack.url, token="xoxb-test").auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == (TEAM_ID, BOT_USER_ID, BOT_ID)
    assert "chat:write" in auth.headers["X-OAuth-Scopes"]

    with pytest.raises(SlackApiError, match="not_authed"):
        await AsyncWebClient(base_url=fake_slack.url).auth_test()
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await AsyncWebClient(base_url=fake_slack.url, token="not-a-token").auth_test()


async def test_unknown_method_is_a_violation(fake_slack: FakeSlackApi, client: AsyncWebClient):
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.postMesage", json={"channel": "C0SUPPORT", "text": "hi"})
    assert raised.value.response["error"] == "unknown_method"
    assert fake_slack.take_violations() == [
        "chat.postMesage: unknown method (not in Slack's Web API spec)"
    ]


async def test_missing_required_argument_is_a_violation(
    fake_slack: FakeSlackApi, client: AsyncWebClient
):
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.update", json={"channel": "C0SUPPORT", "text": "x"})
    assert raised.value.response["error"] == "invalid_arguments"
    assert fake_slack.take_violations() == ["chat.update: missing required argument(s): ts"]


async def test_newer_methods_and_files_upload_v2(fake_slack: FakeSlackApi, client: AsyncWebClient):
    await client.files_upload_v2(
        channel="C0EXECS", content=b"\x89PNG fake chart", filename="digest.png", title="Digest"
    )
    (stored,) = fake_slack.files.values()
    assert stored["content"] == b"\x89PNG fake chart"
    assert fake_slack.messages("C0EXECS")[0]["files"][0]["title"] == "Digest"
    with pytest.raises(SlackApiError, match="method_deprecated"):
        await client.api_call("files.upload", data={"channels": "C0EXECS", "content": "x"})
    assert fake_slack.take_violations() == [
        "files.upload: files.upload was retired in 2025; use files_upload_v2"
    ]


async def test_form_encoded_blocks_are_decoded(fake_slack: FakeSlackApi, client: AsyncWebClient):
    await client.api_call(
        "chat.postMessage",
        data={"channel": "C0SUPPORT", "text": "hi", "blocks": json.dumps(_alert_blocks())},
    )
    (call,) = fake_slack.calls_to("chat.postMessage")
    assert call.args["blocks"][1]["block_id"] == "mention"
    assert call.headers["Content-Type"] == FORM


def _section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def _button(text: str = "Go", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, **extra}


def _actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def _options(count: int, text: str = "o") -> list[dict[str, Any]]:
    return [{"text": {"type": "plain_text", "text": text}, "value": str(i)} for i in range(count)]


_SELECT = {"type": "static_select", "action_id": "s"}
_MRKDWN = {"type": "mrkdwn", "text": "f"}

# Each case breaks one documented limit; the pointer says where Slack would report it.
OVER_LIMIT: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "51 blocks": ("/blocks", [_section("x") for _ in range(51)]),
    "section text 3001": ("/blocks/0/text/text", [_section("x" * 3001)]),
    "11 fields": ("/blocks/0/fields", [{"type": "section", "fields": [_MRKDWN] * 11}]),
    "field 2001": (
        "/blocks/0/fields/0/text",
        [{"type": "section", "fields": [{**_MRKDWN, "text": "f" * 2001}]}],
    ),
    "empty section text": ("/blocks/0/text/text", [_section("")]),
    "header 151": (
        "/blocks/0/text/text",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    ),
    "context 11": ("/blocks/0/elements", [{"type": "context", "elements": [_MRKDWN] * 11}]),
    "actions 26": (
        "/blocks/0/elements",
        [_actions(*(_button(action_id=f"a{i}") for i in range(26)))],
    ),
    "button text 76": ("/blocks/0/elements/0/text/text", [_actions(_button("b" * 76))]),
    "button value 2001": ("/blocks/0/elements/0/value", [_actions(_button(value="v" * 2001))]),
    "button url 3001": (
        "/blocks/0/elements/0/url",
        [_actions(_button(url="https://x.test/" + "u" * 3000))],
    ),
    "action_id 256": ("/blocks/0/elements/0/action_id", [_actions(_button(action_id="a" * 256))]),
    "block_id 256": ("/blocks/0/block_id", [_section("x", block_id="b" * 256)]),
    "duplicate block_id": (
        "/blocks/1/block_id",
        [_section("x", block_id="same"), _section("y", block_id="same")],
    ),
    "duplicate action_id in a block": (
        "/blocks/0/elements/1/action_id",
        [_actions(_button(action_id="a"), _button(action_id="a"))],
    ),
    "101 options": (
        "/blocks/0/elements/0/options",
        [_actions({**_SELECT, "options": _options(101)})],
    ),
    "option text 76": (
        "/blocks/0/accessory/options/0/text/text",
        [_section("pick", accessory={**_SELECT, "options": _options(1, "o" * 76)})],
    ),
    "image without alt_text": (
        "/blocks/0",
        [{"type": "image", "image_url": "https://x.test/chart.png"}],
    ),
    "unknown block type": ("/blocks/0", [{"type": "sectoin", "text": _MRKDWN}]),
}


@pytest.mark.parametrize(("pointer", "blocks"), OVER_LIMIT.values(), ids=OVER_LIMIT.keys())
async def test_over_limit_blocks_are_rejected(
    fake_slack: FakeSlackApi, client: AsyncWebClient, pointer: str, blocks: list[dict[str, Any]]
):
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0SUPPORT", text="alert", blocks=blocks)
    assert raised.value.response["error"] == "invalid_blocks"
    violations = fake_slack.take_violations()
    assert any(v.endswith(f"[json-pointer:{pointer}]") for v in violations), violations
    assert fake_slack.messages("C0SUPPORT") == []


def test_same_action_id_in_different_blocks_is_allowed():
    # One "claim" button per mention in a digest is fine: Slack only wants action_ids unique
    # within a block.
    blocks = [
        {"type": "actions", "elements": [_button(action_id="claim", value=str(i))]}
        for i in range(3)
    ]
    assert block_kit_problems(blocks) == []


async def test_message_text_limit_and_missing_content(
    fake_slack: FakeSlackApi, client: AsyncWebClient
):
    with pytest.raises(SlackApiError, match="msg_too_long"):
        await client.chat_postMessage(channel="C0SUPPORT", text="x" * 40_001)
    with pytest.raises(SlackApiError, match="no_text"):
        await client.api_call("chat.postMessage", json={"channel": "C0SUPPORT"})
    assert len(fake_slack.take_violations()) == 2


async def test_blocks_without_text_are_an_accessibility_violation(
    fake_slack: FakeSlackApi, client: AsyncWebClient
):
    with pytest.warns(UserWarning, match="top-level `text`"):
        await client.chat_postMessage(channel="C0SUPPORT", blocks=_alert_blocks())
    assert fake_slack.take_violations() == [
        "chat.postMessage: blocks sent without top-level text (accessibility)"
    ]


async def test_views_are_validated_and_stored(fake_slack: FakeSlackApi, client: AsyncWebClient):
    home = {"type": "home", "blocks": _alert_blocks()}
    published = await client.views_publish(user_id="U0ALICE", view=home)
    assert fake_slack.home_views["U0ALICE"]["id"] == published["view"]["id"]

    modal = {
        "type": "modal",
        "callback_id": "answer",
        "title": {"type": "plain_text", "text": "Answer"},
        "blocks": [_section("Draft a reply")],
    }
    opened = await client.views_open(trigger_id="123.456.abc", view=modal)
    updated = await client.views_update(view_id=opened["view"]["id"], view=modal)
    assert updated["view"]["id"] == opened["view"]["id"]

    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.views_open(trigger_id="123.456.abc", view={**modal, "type": "home"})
    too_long_title = {**modal, "title": {"type": "plain_text", "text": "t" * 25}}
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.views_open(trigger_id="123.456.abc", view=too_long_title)
    assert len(fake_slack.take_violations()) == 2


async def test_reactions_and_delete(fake_slack: FakeSlackApi, client: AsyncWebClient):
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="alert")
    await client.reactions_add(channel="C0SUPPORT", name="eyes", timestamp=posted["ts"])
    with pytest.raises(SlackApiError, match="already_reacted"):
        await client.reactions_add(channel="C0SUPPORT", name="eyes", timestamp=posted["ts"])
    assert fake_slack.messages("C0SUPPORT")[0]["reactions"][0]["name"] == "eyes"
    await client.chat_delete(channel="C0SUPPORT", ts=posted["ts"])
    assert fake_slack.messages("C0SUPPORT") == []


async def test_ephemeral_messages_are_kept_apart(fake_slack: FakeSlackApi, client: AsyncWebClient):
    answer = await client.chat_postEphemeral(channel="C0SUPPORT", user="U0BOB", text="Only you")
    assert answer["message_ts"]
    assert fake_slack.ephemerals(user="U0BOB")[0]["text"] == "Only you"
    assert fake_slack.messages("C0SUPPORT") == []


# ------------------------------------------------------------------ fault injection


async def test_rate_limit_is_retried_after_retry_after(fake_slack: FakeSlackApi):
    fake_slack.fail("chat.postMessage", status=429, retry_after=1)
    client = AsyncWebClient(
        base_url=fake_slack.url,
        token="xoxb-test",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    started = time.monotonic()
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="after the limit")
    assert time.monotonic() - started >= 1
    first, second = fake_slack.calls_to("chat.postMessage")
    assert (first.status, first.response) == (429, {"ok": False, "error": "ratelimited"})
    assert second.ok and posted["ok"]
    assert len(fake_slack.messages("C0SUPPORT")) == 1


async def test_rate_limit_without_retry_handler_surfaces(
    client: AsyncWebClient, fake_slack: FakeSlackApi
):
    fake_slack.fail("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0SUPPORT", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"


async def test_server_errors_and_api_errors(fake_slack: FakeSlackApi):
    fake_slack.fail("chat.postMessage", status=503)
    fake_slack.fail("chat.update", error="channel_not_found", times=2)
    client = AsyncWebClient(
        base_url=fake_slack.url,
        token="xoxb-test",
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="x")
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [503, 200]
    for _ in range(2):
        with pytest.raises(SlackApiError, match="channel_not_found"):
            await client.chat_update(channel="C0SUPPORT", ts=posted["ts"], text="y")
    await client.chat_update(channel="C0SUPPORT", ts=posted["ts"], text="y")


async def test_slow_reply_times_out_but_the_post_still_lands(fake_slack: FakeSlackApi):
    # The case idempotent delivery exists for: Slack posted, the client never heard back.
    fake_slack.fail("chat.postMessage", delay=0.5)
    # slack_sdk annotates timeout as int, but hands it to aiohttp, which takes fractions.
    impatient = AsyncWebClient(
        base_url=fake_slack.url,
        token="xoxb-test",
        timeout=0.1,  # type: ignore[arg-type]
    )
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel="C0SUPPORT", text="late")
    await fake_slack.wait_for("chat.postMessage")
    assert [m["text"] for m in fake_slack.messages("C0SUPPORT")] == ["late"]


async def test_wait_for_wakes_on_arrival_and_times_out(
    fake_slack: FakeSlackApi, client: AsyncWebClient
):
    async def post_later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C0SUPPORT", text="later")

    task = asyncio.create_task(post_later())
    (call,) = await fake_slack.wait_for("chat.postMessage", timeout=2)
    assert call.args["text"] == "later"
    await task
    with pytest.raises(TimeoutError, match=r"chat\.update"):
        await fake_slack.wait_for("chat.update", timeout=0.05)


async def test_response_url_posts_are_recorded(fake_slack: FakeSlackApi):
    webhook = AsyncWebhookClient(fake_slack.response_url())
    reply = await webhook.send(text="Watch added", response_type="ephemeral")
    assert reply.status_code == 200
    (call,) = await fake_slack.wait_for("response_url")
    assert call.args["text"] == "Watch added"


# ------------------------------------------------------------------ Socket Mode

APP_TOKEN = "xapp-1-A0EARFUL-123-abc"


async def _open_socket_url(fake: FakeSlackApi) -> str:
    opened = await AsyncWebClient(base_url=fake.url).apps_connections_open(app_token=APP_TOKEN)
    url = str(opened["url"])
    assert url.startswith("ws://127.0.0.1:") and "ticket=" in url
    return url


async def test_apps_connections_open_takes_only_an_app_level_token(fake_slack: FakeSlackApi):
    await _open_socket_url(fake_slack)
    (call,) = fake_slack.calls_to("apps.connections.open")
    assert call.headers["Authorization"] == f"Bearer {APP_TOKEN}"

    # The bot token cannot open a socket, and the app-level token cannot call the Web API.
    bot = AsyncWebClient(base_url=fake_slack.url, token="xoxb-test")
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await bot.apps_connections_open(app_token="xoxb-test")
    app_level = AsyncWebClient(base_url=fake_slack.url, token=APP_TOKEN)
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await app_level.chat_postMessage(channel="C0SUPPORT", text="hi")
    # Slack wants the app-level token in the Authorization header, not in the form.
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await AsyncWebClient(base_url=fake_slack.url).api_call(
            "apps.connections.open", data={"token": APP_TOKEN}
        )
    with pytest.raises(SlackApiError, match="not_authed"):
        await AsyncWebClient(base_url=fake_slack.url).api_call("apps.connections.open")
    assert fake_slack.messages("C0SUPPORT") == []


async def test_socket_says_hello_answers_pings_and_returns_acks(fake_slack: FakeSlackApi):
    url = await _open_socket_url(fake_slack)
    with pytest.raises(RuntimeError, match="no app is connected"):
        await fake_slack.socket_send("slash_commands", slash_command("help"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):  # a ticket the fake never issued
            await session.ws_connect(url.replace("ticket=", "ticket=forged"))
        async with session.ws_connect(url, autoping=False) as ws:
            hello = await ws.receive_json(timeout=2)
            assert hello["type"] == "hello" and hello["num_connections"] == 1
            assert hello["connection_info"] == {"app_id": APP_ID}
            await fake_slack.socket_connected(timeout=2)
            with pytest.raises(aiohttp.WSServerHandshakeError):  # a URL opens one connection
                await session.ws_connect(url)

            await ws.ping(b"sdk-ping-pong:1")
            pong = await ws.receive(timeout=2)
            assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"sdk-ping-pong:1")
            pinged = asyncio.create_task(fake_slack.socket_ping(timeout=2))
            ping = await ws.receive(timeout=2)
            assert ping.type == aiohttp.WSMsgType.PING
            await ws.pong(ping.data)
            await pinged

            sent = asyncio.create_task(
                fake_slack.socket_send("slash_commands", slash_command("help", user_id="U0BOB"))
            )
            envelope = await ws.receive_json(timeout=2)
            assert envelope["type"] == "slash_commands"
            assert envelope["accepts_response_payload"] is True
            assert envelope["payload"]["command"] == "/earful"
            assert envelope["payload"]["text"] == "help"
            assert envelope["payload"]["user_id"] == "U0BOB"
            reply = {"text": "Earful commands", "response_type": "ephemeral"}
            await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": reply})
            ack = await sent
            assert ack == {"envelope_id": envelope["envelope_id"], "payload": reply}
            assert fake_slack.socket_acks == [ack]

            # The fake's stop() closes the socket as a server going away.
            await fake_slack.stop()
            closing = await ws.receive(timeout=2)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == aiohttp.WSCloseCode.GOING_AWAY
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.ws_connect(url)
    assert not fake_slack.violations


async def test_socket_acks_are_held_to_slacks_rules(fake_slack: FakeSlackApi):
    url = await _open_socket_url(fake_slack)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "hello"

        async def answer(ack: Callable[[str], dict[str, Any]]) -> None:
            envelope = await ws.receive_json(timeout=2)
            await ws.send_json(ack(envelope["envelope_id"]))

        # An event cannot be answered in its ack; Slack drops the payload.
        event = event_callback(reaction_added("U0BOB", "eyes", "C0SUPPORT", "1.000001"))
        answering = asyncio.create_task(
            answer(lambda eid: {"envelope_id": eid, "payload": {"text": "seen"}})
        )
        ack = await fake_slack.socket_send("events_api", event)
        await answering
        assert fake_slack.socket_envelopes[-1]["accepts_response_payload"] is False
        assert fake_slack.socket_envelopes[-1]["retry_attempt"] == 0
        assert ack["payload"] == {"text": "seen"}
        # A reply's blocks obey Block Kit's limits.
        bad_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
        answering = asyncio.create_task(
            answer(lambda eid: {"envelope_id": eid, "payload": {"text": "x", "blocks": bad_blocks}})
        )
        await fake_slack.socket_send("slash_commands", slash_command("help"))
        await answering
        # An ack must name an envelope Slack sent.
        await ws.send_json({"envelope_id": "never-sent"})
        with pytest.raises(TimeoutError, match="did not ack"):
            await fake_slack.socket_send("slash_commands", slash_command("help"), timeout=0.2)
        with pytest.raises(ValueError, match="event_callback"):
            await fake_slack.socket_send("events_api", slash_command("help"))

    violations = fake_slack.take_violations()
    assert violations[0].startswith("socket events_api: ack carries a payload")
    assert violations[1].endswith("[json-pointer:/payload/blocks/0/text/text]")
    assert violations[2].startswith("socket: ack for an envelope Slack never sent")
    assert len(violations) == 3


async def test_bolt_socket_mode_handler_runs_against_the_fake(
    fake_slack: FakeSlackApi, signing_secret: str
):
    # The real client Earful uses in Socket Mode: slack_sdk's aiohttp SocketModeClient via Bolt.
    app = AsyncApp(
        client=AsyncWebClient(base_url=fake_slack.url, token="xoxb-test"),
        signing_secret=signing_secret,
    )
    seen: list[str] = []

    @app.command("/earful")
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(text=f"you said {command['text']}", response_type="ephemeral")

    @app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        seen.append(event["reaction"])

    handler = AsyncSocketModeHandler(app, APP_TOKEN)
    await handler.connect_async()
    try:
        await fake_slack.socket_connected()
        ack = await fake_slack.socket_send("slash_commands", slash_command("watch list"))
        assert ack["payload"] == {"text": "you said watch list", "response_type": "ephemeral"}
        event = event_callback(reaction_added("U0BOB", "eyes", "C0SUPPORT", "1.000001"))
        ack = await fake_slack.socket_send("events_api", event)
        assert set(ack) == {"envelope_id"}
        await fake_slack.socket_ping()  # slack_sdk answers Slack's pings
        assert seen == ["eyes"]
    finally:
        await handler.close_async()
    await fake_slack.socket_disconnected()
    assert fake_slack.socket_connections == 1
    assert fake_slack.calls_to("auth.test")[0].token == "xoxb-test"


# ------------------------------------------------------------------ requests to the app


def test_signer_matches_slack_sdk_verifier(slack_signer: SlackRequestSigner, signing_secret: str):
    verifier = SignatureVerifier(signing_secret)
    body = slash_command("help")
    assert verifier.is_valid_request(body, slack_signer.headers(body))
    assert not verifier.is_valid_request(body, slack_signer.headers(body, tamper=True))
    stale = slack_signer.headers(body, timestamp=int(time.time()) - 6 * 60)
    assert not verifier.is_valid_request(body, stale)
    assert not verifier.is_valid_request(body + b"x", slack_signer.headers(body))


def test_slash_command_body_has_every_documented_field():
    text = f"route complaints {channel_ref('C0SUPPORT', 'support')}"
    fields = {k: v[0] for k, v in parse_qs(slash_command(text).decode()).items()}
    assert fields["text"] == "route complaints <#C0SUPPORT|support>"
    assert set(fields) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }


def test_block_action_clicks_what_the_message_contains():
    blocks = _alert_blocks()
    payload = json.loads(
        parse_qs(block_action("claim", message_blocks=blocks).decode())["payload"][0]
    )
    (action,) = payload["actions"]
    assert (action["type"], action["block_id"], action["value"]) == (
        "button",
        "alert_actions",
        "mention:42",
    )
    assert payload["container"]["type"] == "message"

    picked = json.loads(
        parse_qs(block_action("reroute", selected_option="pr", message_blocks=blocks).decode())[
            "payload"
        ][0]
    )
    assert picked["actions"][0]["selected_option"]["value"] == "pr"
    with pytest.raises(ValueError, match="no element"):
        block_action("resolve", message_blocks=blocks)


def test_event_builder_matches_slack_wrapper_schema():
    schema_path = slack_spec_dir() / "events-api" / "slack_common_event_wrapper_schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    for event in (
        reaction_added("U0ALICE", "eyes", "C0SUPPORT", "1700000000.000100"),
        app_home_opened("U0ALICE"),
    ):
        body = json.loads(event_callback(event))
        assert list(validator.iter_errors(body)) == []
    assert not validator.is_valid(json.loads(url_verification("challenge")))


async def test_bolt_accepts_the_signed_requests(
    fake_slack: FakeSlackApi, slack_signer: SlackRequestSigner, signing_secret: str
):
    # Bolt's own verification, authorization (auth.test against the fake) and listener
    # matching must all accept what the builders produce.
    app = AsyncApp(
        client=AsyncWebClient(base_url=fake_slack.url, token="xoxb-test"),
        signing_secret=signing_secret,
        # Listeners finish before dispatch returns, so there is nothing to wait for below.
        process_before_response=True,
    )
    seen: list[str] = []

    @app.command("/earful")
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack()
        seen.append(f"command:{command['text']}")

    @app.action("claim")
    async def on_claim(ack: AsyncAck, action: dict[str, Any]) -> None:
        await ack()
        seen.append(f"action:{action['value']}")

    @app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        seen.append(f"event:{event['reaction']}")

    requests = [
        (slash_command("help"), FORM),
        (block_action("claim", message_blocks=_alert_blocks()), FORM),
        (event_callback(reaction_added("U0BOB", "eyes", "C0SUPPORT", "1.000001")), JSON),
    ]
    for body, content_type in requests:
        headers: dict[str, str | Sequence[str]] = {
            "content-type": content_type,
            **slack_signer.headers(body),
        }
        response = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
        assert response.status == 200, response.body
    tampered = slash_command("help")
    response = await app.async_dispatch(
        AsyncBoltRequest(
            body=tampered.decode(),
            headers={"content-type": FORM, **slack_signer.headers(tampered, tamper=True)},
        )
    )
    assert response.status == 401
    assert sorted(seen) == ["action:mention:42", "command:help", "event:eyes"]
    assert fake_slack.calls_to("auth.test")


async def test_post_signed_sends_slack_headers(
    slack_signer: SlackRequestSigner, signing_secret: str
):
    received: dict[str, str] = {}

    async def capture(request: aiohttp.web.Request) -> aiohttp.web.Response:
        received.update(request.headers)
        body = await request.read()
        ok = SignatureVerifier(signing_secret).is_valid_request(body, dict(request.headers))
        return aiohttp.web.Response(status=200 if ok else 401)

    app = aiohttp.web.Application()
    app.router.add_post("/slack/events", capture)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            body = event_callback(app_home_opened("U0ALICE"))
            url = f"http://{host}:{port}/slack/events"
            response = await post_signed(session, url, body, JSON, slack_signer, retry_num=1)
            assert response.status == 200
            response.release()
    finally:
        await runner.cleanup()
    assert received["X-Slack-Retry-Num"] == "1"
    assert received["Content-Type"] == JSON
