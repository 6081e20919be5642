"""Metrics recorded by the real Slack clients against the fake Slack, the outbox gauge against a
real database, and /metrics served over real HTTP with its optional token."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.server import build_web_app
from bot.slack_client import build_client, build_posting_client, connection_retries
from storage import outbox
from storage.db import Database
from storage.models import OutboxKind
from tests.fakes.slack_api import FakeSlackApi
from tests.support.earful import earful_settings
from tests.support.metrics import scrape

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def retries(method: str, reason: str) -> float:
    return sample("earful_slack_retries_total", method=method, reason=reason)


def api_errors(method: str, error: str) -> float:
    return sample("earful_slack_api_errors_total", method=method, error=error)


async def test_rate_limited_post_is_retried_once_and_counted(
    fake_slack: FakeSlackApi, signing_secret: str
) -> None:
    client = build_posting_client(earful_settings("sqlite://", fake_slack.url, signing_secret))
    before = retries("chat.postMessage", "rate_limited")
    fake_slack.fail("chat.postMessage", status=429, retry_after=0)

    await client.chat_postMessage(channel="C0GENERAL", text="hello")

    assert retries("chat.postMessage", "rate_limited") == before + 1
    assert [m["text"] for m in fake_slack.messages("C0GENERAL")] == ["hello"]


async def test_server_errors_are_retried_and_counted(
    fake_slack: FakeSlackApi, signing_secret: str
) -> None:
    client = build_client(earful_settings("sqlite://", fake_slack.url, signing_secret))
    before = retries("conversations.history", "server_error")
    fake_slack.fail("conversations.history", status=500)

    response = await client.conversations_history(channel="C0GENERAL")

    assert response["ok"] is True
    assert retries("conversations.history", "server_error") == before + 1


async def test_connection_retries_are_counted() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    client = AsyncWebClient(
        token="xoxb-1-2-3",
        base_url=f"http://127.0.0.1:{port}/api/",
        retry_handlers=[connection_retries(1)],
    )
    before = retries("auth.test", "connection")

    with pytest.raises(aiohttp.ClientError):
        await client.auth_test()

    assert retries("auth.test", "connection") == before + 1


async def test_slack_api_errors_are_counted_by_method_and_code(
    fake_slack: FakeSlackApi, signing_secret: str
) -> None:
    client = build_client(earful_settings("sqlite://", fake_slack.url, signing_secret))
    before = api_errors("chat.postEphemeral", "channel_not_found")
    fake_slack.fail("chat.postEphemeral", error="channel_not_found")

    with pytest.raises(SlackApiError):
        await client.chat_postEphemeral(channel="C0GENERAL", user="U0BOB", text="hi")

    assert api_errors("chat.postEphemeral", "channel_not_found") == before + 1


def test_labels_stay_within_small_vocabularies() -> None:
    # A watch's feed URL, a made-up department or a hostile error code never becomes a series.
    assert metrics.source_label("rss:https://news.example.com/private/feed.xml") == "rss"
    assert metrics.source_label("appstore:123456789:us") == "appstore"
    assert metrics.source_label("gopher://example.com") == "other"
    assert metrics.slack_method_label("https://slack.com/api/chat.postMessage?x=1") == (
        "chat.postMessage"
    )
    assert metrics.slack_method_label("https://slack.com/api/../../etc/passwd") == "other"

    @dataclass
    class Stored:
        department: str
        priority: str

    before = sample("earful_mentions_stored_total", department="other", priority="other")
    metrics.mentions_stored([Stored("<@U0ADMIN> from a payload", "P0 ⚠")])
    assert sample("earful_mentions_stored_total", department="other", priority="other") == (
        before + 1
    )
    before = api_errors("chat.update", "other")
    metrics.slack_api_error(method="chat.update", error="<!channel> " * 10)
    assert api_errors("chat.update", "other") == before + 1


def test_request_types_from_slack_bodies() -> None:
    assert metrics.slack_request_type({"command": "/earful", "text": "help"}) == "command"
    assert metrics.slack_request_type({"type": "block_actions"}) == "block_actions"
    assert metrics.slack_request_type({"type": "view_submission"}) == "view_submission"
    assert metrics.slack_request_type({"type": "event_callback"}) == "event"
    assert metrics.slack_request_type({"type": "anything else"}) == "other"
    assert metrics.slack_request_type({}) == "other"


def test_recording_a_metric_never_raises() -> None:
    # The poll, post or request being measured must go on whatever the metrics code meets.
    metrics.polls_finished([object()])  # type: ignore[list-item]
    metrics.mentions_stored([None])  # type: ignore[list-item]
    metrics.slack_retry(url=None, reason="rate_limited")  # type: ignore[arg-type]


async def test_outbox_depth_is_read_at_most_once_per_max_age(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    queries = 0

    async def count_pending() -> int:
        nonlocal queries
        queries += 1
        async with db.session() as session:
            return await outbox.pending_count(session)

    async def enqueue(n: int) -> None:
        async with db.session() as session:
            for _ in range(n):
                outbox.enqueue(session, kind=OutboxKind.DIRECT_MESSAGE, mention_id=None)

    now = [100.0]
    depth = metrics.OutboxDepth(count_pending, max_age=5, clock=lambda: now[0])
    try:
        await enqueue(2)
        await depth.refresh()
        assert sample("earful_outbox_pending") == 2 and queries == 1

        await enqueue(1)
        now[0] += 4
        # A burst of scrapes inside max_age shares the last count: the database is not asked.
        await asyncio.gather(*(depth.refresh() for _ in range(20)))
        assert sample("earful_outbox_pending") == 2 and queries == 1

        now[0] += 1
        await depth.refresh()
        assert sample("earful_outbox_pending") == 3 and queries == 2
    finally:
        await db.dispose()


async def test_outbox_depth_keeps_the_last_value_when_the_database_fails() -> None:
    metrics.OUTBOX_PENDING.set(7)

    async def broken() -> int:
        raise ConnectionRefusedError("database down")

    await metrics.OutboxDepth(broken).refresh()  # no exception: the scrape still answers
    assert sample("earful_outbox_pending") == 7


@pytest.fixture
async def metrics_server(sqlite_url: str) -> AsyncIterator[tuple[TestServer, Database]]:
    db = Database(sqlite_url)
    server = TestServer(
        build_web_app(
            None,
            db=db,
            scheduler_running=lambda: True,
            metrics_token=SecretStr(METRICS_TOKEN),
        )
    )
    await server.start_server()
    try:
        yield server, db
    finally:
        await server.close()
        await db.dispose()


async def test_metrics_token_is_required_when_set(
    metrics_server: tuple[TestServer, Database],
) -> None:
    server, _ = metrics_server
    url = str(server.make_url("/metrics"))
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-of-some-length"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        ):
            async with http.get(url, headers=headers) as response:
                assert response.status == 401, headers
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert "earful_" not in await response.text()

        samples = await scrape(http, url, token=METRICS_TOKEN)
        # Ours, and prometheus-client's process collectors.
        assert {"earful_outbox_pending", "earful_leader", "process_cpu_seconds_total"} <= (
            samples.names()
        )

        # The load balancer's health check needs no token.
        async with http.get(server.make_url("/healthz")) as response:
            assert response.status == 200


async def test_metrics_are_open_without_a_token(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    server = TestServer(build_web_app(None, db=db, scheduler_running=lambda: True))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            samples = await scrape(http, str(server.make_url("/metrics")))
        assert "earful_outbox_pending" in samples.names()
    finally:
        await server.close()
        await db.dispose()
