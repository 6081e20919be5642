"""``serve()`` in Socket Mode: Slack's requests arrive over the socket, /healthz stays on HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.logs import correlation_id
from bot.runtime import serve
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import (
    FORM,
    SlackRequestSigner,
    app_home_opened,
    event_callback,
    post_signed,
    slash_command,
)
from tests.support.earful import ADMIN, earful_settings

APP_TOKEN = "xapp-1-A0EARFUL-123-abc"
BOT_TOKEN = "xoxb-1234-5678-earfultest"  # the one earful_settings configures
NOT_ADMIN = "U0BOB"
HELP_EXAMPLE = '/earful watch add acme "acme" sources=rss:https://example.com/feed.xml'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    task: asyncio.Task[None]
    stop: asyncio.Event
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serving(
    sqlite_url: str, slack: FakeSlackApi, signing_secret: str, *, grace: float = 5
) -> AsyncIterator[Served]:
    """serve() as a task; on the way out it is stopped, and cancelled after `grace` seconds."""
    port = free_port()
    settings = earful_settings(
        sqlite_url,
        slack.url,
        signing_secret,
        SLACK_APP_TOKEN=APP_TOKEN,
        PORT=port,
        EARFUL_HOST="127.0.0.1",
        # No polls but the start-up one: Runtime.stop() does not wait for a poll in flight,
        # which then outlives serve() (a shutdown bug of its own, not Socket Mode's).
        EARFUL_POLL_TICK_SECONDS=300,
    )
    stop = asyncio.Event()
    served = Served(asyncio.create_task(serve(settings, stop=stop), name="serve"), stop, port)
    try:
        yield served
    finally:
        stop.set()
        await asyncio.wait({served.task}, timeout=grace)
        if not served.task.done():
            served.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await served.task


async def connected(served: Served, slack: FakeSlackApi) -> None:
    """Wait for the app's socket, failing at once (with its error) if serve() gives up."""
    waiting = asyncio.ensure_future(slack.socket_connected(timeout=10))
    done, _ = await asyncio.wait({waiting, served.task}, return_when=asyncio.FIRST_COMPLETED)
    if served.task in done:
        waiting.cancel()
        served.task.result()  # raises serve()'s exception, if it had one
        pytest.fail("serve() returned before connecting over Socket Mode")
    waiting.result()


@pytest.fixture
async def served(
    sqlite_url: str, fake_slack: FakeSlackApi, signing_secret: str
) -> AsyncIterator[Served]:
    async with serving(sqlite_url, fake_slack, signing_secret) as running:
        await connected(running, fake_slack)
        yield running


async def command(
    slack: FakeSlackApi, text: str, *, user_id: str = ADMIN, user_name: str = "alice"
) -> dict[str, Any]:
    """`/earful <text>` over the socket; returns the payload of the app's ack."""
    body = slash_command(
        text, user_id=user_id, user_name=user_name, response_url=slack.response_url()
    )
    ack = await slack.socket_send("slash_commands", body)
    assert "payload" in ack, f"the ack of /earful {text} carries no reply: {ack}"
    payload: dict[str, Any] = ack["payload"]
    return payload


async def test_commands_are_answered_in_the_socket_ack(
    served: Served, fake_slack: FakeSlackApi
) -> None:
    (opened,) = fake_slack.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN  # the app-level token, not the bot token

    help_reply = await command(fake_slack, "help")
    assert help_reply["response_type"] == "ephemeral"
    assert "watch add" in help_reply["text"]

    refused = await command(
        fake_slack, HELP_EXAMPLE.removeprefix("/earful "), user_id=NOT_ADMIN, user_name="bob"
    )
    assert refused["response_type"] == "ephemeral"
    assert "Only Earful admins" in refused["text"]
    assert NOT_ADMIN in refused["text"]  # tells them what to ask an admin for
    # Nothing was saved for them.
    listed = await command(fake_slack, "watch list")
    assert "No watches yet" in listed["text"]

    # Web API calls still go out with the bot token.
    assert fake_slack.calls_to("auth.test")
    assert {c.token for c in fake_slack.calls if c.method != "apps.connections.open"} == {BOT_TOKEN}


async def test_events_arrive_over_the_socket(served: Served, fake_slack: FakeSlackApi) -> None:
    ack = await fake_slack.socket_send("events_api", event_callback(app_home_opened(ADMIN)))
    assert "payload" not in ack  # events are acked bare
    (published,) = await fake_slack.wait_for("views.publish")
    assert published.ok and published.args["user_id"] == ADMIN


async def test_health_stays_on_http_and_slack_events_is_not_served(
    served: Served, fake_slack: FakeSlackApi, slack_signer: SlackRequestSigner
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["ok"] is True
        # In Socket Mode nothing may answer Slack over HTTP, even a correctly signed request.
        body = slash_command("help")
        response = await post_signed(http, f"{served.base}/slack/events", body, FORM, slack_signer)
        assert response.status == 404
        response.release()
    assert not fake_slack.socket_acks


async def test_stop_closes_the_socket_and_returns(served: Served, fake_slack: FakeSlackApi) -> None:
    served.stop.set()
    await asyncio.wait_for(served.task, timeout=5)
    assert served.task.result() is None
    await fake_slack.socket_disconnected(timeout=2)
    assert fake_slack.socket_connections == 1  # it left; it did not reconnect
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{served.base}/healthz")


async def test_stop_is_honoured_while_slack_refuses_the_app_token(
    sqlite_url: str, signing_secret: str
) -> None:
    # A revoked app-level token: Slack accepts the bot token but refuses the xapp- one.
    async with (
        FakeSlackApi(tokens=[BOT_TOKEN]) as slack,
        serving(sqlite_url, slack, signing_secret, grace=0) as running,
    ):
        (refused,) = await slack.wait_for("apps.connections.open")
        assert refused.response == {"ok": False, "error": "invalid_auth"}
        running.stop.set()
        await asyncio.wait_for(asyncio.shield(running.task), timeout=3)


async def test_each_socket_request_has_its_own_correlation_id(
    served: Served, fake_slack: FakeSlackApi
) -> None:
    # Over HTTP the web server gives each request its id; over the socket, Bolt does.
    seen: list[str | None] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "conversations.list failed" in record.getMessage():
                seen.append(correlation_id())

    capture = Capture()
    logging.getLogger().addHandler(capture)
    try:
        for _ in range(2):
            fake_slack.fail("conversations.list", error="ratelimited")
            reply = await command(fake_slack, "route support #no-such-channel")
            assert "can't find a channel" in reply["text"]
    finally:
        logging.getLogger().removeHandler(capture)
    assert len(seen) == 2
    assert all(cid is not None and cid.startswith("req-") for cid in seen), seen
    assert seen[0] != seen[1]
