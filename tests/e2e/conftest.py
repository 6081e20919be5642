"""The deployment the end-to-end source tests share: the real runtime, restartable, polling
local servers that speak each public API's documented format."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.test_all_sources import Deployment
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import SlackRequestSigner
from tests.support.earful import earful_settings
from tests.support.local_http import LocalServer
from tests.support.public_apis import PublicApis


@pytest.fixture
def apis(local_server: LocalServer) -> PublicApis:
    return PublicApis(local_server)


@pytest.fixture
async def deployment(
    database_url: str,
    fake_slack: FakeSlackApi,
    slack_signer: SlackRequestSigner,
    signing_secret: str,
    apis: PublicApis,
) -> AsyncIterator[Deployment]:
    settings = earful_settings(
        database_url,
        fake_slack.url,
        signing_secret,
        EARFUL_POLL_TICK_SECONDS=0.2,
        EARFUL_FETCH_PER_HOST_RATE=1000,  # every "host" is 127.0.0.1
        **apis.settings(),
    )
    deployment = Deployment(settings, fake_slack, slack_signer)
    try:
        yield deployment
    finally:
        await deployment.stop()
