"""The real Bolt app over real HTTP, without the scheduler and pollers a full Runtime starts.

Hostile-input tests send many requests and sometimes need two app instances on one database
(two replicas); building only the Slack-facing half keeps them quick.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import build_services, create_app
from bot.app_services import Services
from bot.server import build_web_app
from storage.db import Database
from tests.fakes.slack_api import FakeSlackApi
from tests.support.earful import earful_settings


@dataclass
class SlackFacing:
    """One app instance: its services and the URL Slack posts to."""

    services: Services
    url: str


StartInstance = Callable[..., Awaitable[SlackFacing]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start_instance(
    database_url: str, fake_slack: FakeSlackApi, signing_secret: str
) -> AsyncIterator[StartInstance]:
    """Start app instances (replicas) on the same database; all are stopped afterwards."""
    started: list[tuple[TestServer, Database]] = []

    async def start(**settings_overrides: Any) -> SlackFacing:
        settings = earful_settings(
            database_url, fake_slack.url, signing_secret, **settings_overrides
        )
        db = Database(settings.database_url)
        services = build_services(settings, db)
        web_app = build_web_app(create_app(services), db=db, scheduler_running=lambda: True)
        server = TestServer(web_app)
        await server.start_server()
        started.append((server, db))
        return SlackFacing(services=services, url=str(server.make_url("/slack/events")))

    yield start
    for server, db in started:
        await server.close()
        await db.dispose()


@pytest.fixture
async def instance(start_instance: StartInstance) -> SlackFacing:
    return await start_instance()
