"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import SlackRequestSigner

pytest_plugins = [
    "tests.support.databases",
    "tests.support.feeds",
    "tests.support.earful",
    "tests.support.local_http",
]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlackApi]:
    """A running fake Slack Web API; pass `fake_slack.url` as the client's base_url.

    Any call Slack would reject or warn about fails the test at teardown, so a test that
    provokes violations on purpose must consume them with `fake_slack.take_violations()`.
    """
    fake = FakeSlackApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert not fake.violations, "calls Slack would reject:\n" + "\n".join(fake.violations)


@pytest.fixture
def signing_secret() -> str:
    # The example secret from Slack's "Verifying requests from Slack" guide.
    return "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack_signer(signing_secret: str) -> SlackRequestSigner:
    return SlackRequestSigner(signing_secret)
