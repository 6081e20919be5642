"""A running Earful (the real Bolt app over real HTTP) wired to the fake Slack API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.runtime import Runtime
from bot.server import build_web_app
from bot.settings import Settings, load_settings
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import (
    FORM,
    JSON,
    SlackRequestSigner,
    block_action,
    event_callback,
    post_signed,
    slash_command,
)

ADMIN = "U0ALICE"


def earful_settings(
    database_url: str, slack_url: str, signing_secret: str, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": "xoxb-1234-5678-earfultest",
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": slack_url,
        "DATABASE_URL": database_url,
        "EARFUL_ADMINS": f"{ADMIN},U0ADMIN",
        "EARFUL_FETCH_ALLOW_PRIVATE": True,
        "EARFUL_POLL_TICK_SECONDS": 0.2,
        "EARFUL_SCORING_WORKERS": 0,
        "EARFUL_FETCH_TIMEOUT_SECONDS": 1.0,
        "EARFUL_FETCH_MAX_BYTES": 200_000,
    }
    values.update(extra)
    return load_settings(**values)


@dataclass
class Earful:
    runtime: Runtime
    url: str
    http: aiohttp.ClientSession
    signer: SlackRequestSigner
    slack: FakeSlackApi

    async def command(self, text: str, *, user_id: str = ADMIN, **kwargs: Any) -> dict[str, Any]:
        body = slash_command(text, user_id=user_id, **kwargs)
        response = await post_signed(self.http, self.url, body, FORM, self.signer)
        assert response.status == 200, await response.text()
        return json.loads(await response.text())

    async def click(
        self, channel: str, message: dict[str, Any], action_id: str, *, user_id: str, **kwargs: Any
    ) -> int:
        body = block_action(
            action_id,
            user_id=user_id,
            channel_id=channel,
            message_ts=message["ts"],
            message_text=message.get("text", ""),
            message_blocks=message.get("blocks"),
            **kwargs,
        )
        response = await post_signed(self.http, self.url, body, FORM, self.signer)
        await response.read()
        return response.status

    async def event(self, event: dict[str, Any]) -> int:
        response = await post_signed(self.http, self.url, event_callback(event), JSON, self.signer)
        await response.read()
        return response.status


async def start_earful(
    settings: Settings, slack: FakeSlackApi, signer: SlackRequestSigner
) -> tuple[Earful, TestServer]:
    runtime = Runtime(settings, per_channel_interval=0.0)
    await runtime.start()
    server = TestServer(
        build_web_app(runtime.app, db=runtime.db, scheduler_running=runtime.scheduler_running)
    )
    await server.start_server()
    http = aiohttp.ClientSession()
    url = str(server.make_url("/slack/events"))
    return Earful(runtime=runtime, url=url, http=http, signer=signer, slack=slack), server


@pytest.fixture
async def earful(
    database_url: str,
    fake_slack: FakeSlackApi,
    slack_signer: SlackRequestSigner,
    signing_secret: str,
) -> AsyncIterator[Earful]:
    settings = earful_settings(database_url, fake_slack.url, signing_secret)
    app, server = await start_earful(settings, fake_slack, slack_signer)
    try:
        yield app
    finally:
        await app.http.close()
        await server.close()
        await app.runtime.stop()
