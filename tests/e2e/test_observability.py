"""/metrics and structured logs from a running Earful, after real work: signed Slack requests,
polls of local feeds, an alert delivered through the fake Slack after a 429."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.ids import ActionId
from bot.runtime import Runtime
from bot.server import build_web_app
from storage.models import Mention
from tests.e2e.test_cli import CLEAN_ENV, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import (
    FORM,
    SlackRequestSigner,
    block_action,
    post_signed,
    slash_command,
)
from tests.support.earful import Earful, earful_settings
from tests.support.earful_process import EarfulProcess
from tests.support.feeds import FeedItem, FeedServer, rss
from tests.support.leaks import assert_no_leaks
from tests.support.metrics import Samples, scrape, scrape_until

METRICS_TOKEN = "scrape-me-with-this-0123456789"
COMPLAINT = FeedItem(
    "post-1",
    "Acme Cloud is down again",
    "Acme Cloud crashes on login and support had me on hold for 2 hours.",
    "https://example.com/p/1",
)


@pytest.fixture
async def monitored(
    database_url: str,
    fake_slack: FakeSlackApi,
    slack_signer: SlackRequestSigner,
    signing_secret: str,
) -> AsyncIterator[tuple[Earful, str]]:
    """A running Earful whose /metrics needs a token and counts the outbox at every scrape."""
    settings = earful_settings(
        database_url, fake_slack.url, signing_secret, EARFUL_METRICS_TOKEN=METRICS_TOKEN
    )
    runtime = Runtime(settings, per_channel_interval=0.0)
    await runtime.start()
    server = TestServer(
        build_web_app(
            runtime.app,
            db=runtime.db,
            scheduler_running=runtime.scheduler_running,
            metrics_token=settings.metrics_token,
            outbox_depth_max_age=0,
        )
    )
    await server.start_server()
    http = aiohttp.ClientSession()
    earful = Earful(
        runtime=runtime,
        url=str(server.make_url("/slack/events")),
        http=http,
        signer=slack_signer,
        slack=fake_slack,
    )
    try:
        yield earful, str(server.make_url("/metrics"))
    finally:
        await http.close()
        await server.close()
        await runtime.stop()


async def test_metrics_follow_polls_mentions_outbox_retries_and_acks(
    monitored: tuple[Earful, str], fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    earful, metrics_url = monitored

    async def scrape_now() -> Samples:
        return await scrape(earful.http, metrics_url, token=METRICS_TOKEN)

    async def scrape_when(condition: Any) -> Samples:
        return await scrape_until(earful.http, metrics_url, condition, token=METRICS_TOKEN)

    async with earful.http.get(metrics_url) as refused:
        assert refused.status == 401
    start = await scrape_now()

    def grew(now: Samples, name: str, by: float, **labels: str) -> bool:
        return now.get(name, **labels) == start.get(name, **labels) + by

    good = feed_server.serve("/good.xml", rss([COMPLAINT]))
    broken = feed_server.serve("/broken.xml", b"oops", status=500)
    for name, url in (("acme", good), ("acmebroken", broken)):
        reply = await earful.command(f'watch add {name} "acme" sources=rss:{url} kind=brand')
        assert "saved" in reply["text"], reply

    # One poll of each feed; the good one stores the complaint, whose alert waits in the
    # outbox because no channel is routed for its department yet.
    polled = await scrape_when(
        lambda s: (
            grew(s, "earful_polls_total", 1, source="rss", outcome="ok")
            and grew(s, "earful_polls_total", 1, source="rss", outcome="error")
            and s.get("earful_outbox_pending") == 1
        )
    )
    assert grew(polled, "earful_source_errors_total", 1, source="rss")
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
    assert mention.department == "support"
    labels = {"department": mention.department, "priority": mention.priority}
    assert grew(polled, "earful_mentions_stored_total", 1, **labels)

    # Slack answers the alert's first post with 429: the client waits and posts it once.
    fake_slack.fail("chat.postMessage", status=429, retry_after=0)
    reply = await earful.command("route support <#C0SUPPORT|support>")
    assert "support" in reply["text"]
    await fake_slack.wait_for("chat.postMessage", count=2, timeout=15)
    [alert] = fake_slack.messages("C0SUPPORT")
    delivered = await scrape_when(lambda s: s.get("earful_outbox_pending") == 0)
    assert grew(
        delivered, "earful_slack_retries_total", 1, method="chat.postMessage", reason="rate_limited"
    )

    assert await earful.click("C0SUPPORT", alert, ActionId.CLAIM, user_id="U0BOB") == 200
    # A forged request is refused, and is no ack: it must not reach the ack histogram.
    forged = await post_signed(
        earful.http, earful.url, slash_command("help"), FORM, earful.signer, tamper=True
    )
    assert forged.status == 401
    await fake_slack.wait_for("chat.update")
    final = await scrape_when(lambda s: s.get("earful_outbox_pending") == 0)
    ack_count = "earful_slack_ack_seconds_count"
    assert grew(final, ack_count, 3, request_type="command")
    assert grew(final, ack_count, 1, request_type="block_actions")
    # Every ack was far under Slack's 3 seconds (the histogram's 3 s bucket holds them all).
    for kind in ("command", "block_actions"):
        assert final.get("earful_slack_ack_seconds_bucket", request_type=kind, le="3.0") == (
            final.get(ack_count, request_type=kind)
        )
    # Nothing here polled twice or failed to post.
    assert grew(final, "earful_polls_total", 1, source="rss", outcome="ok")
    assert grew(final, "earful_mentions_stored_total", 1, **labels)


# ------------------------------------------------------------------ JSON logs from `earful run`

BOT_TOKEN = "xoxb-4242-4343-LogTestBotToken"
FEED_SECRET = "xoxb-777-888-FeedPathSecret"


async def test_json_logs_carry_one_correlation_id_per_request(
    tmp_path: Path,
    fake_slack: FakeSlackApi,
    feed_server: FeedServer,
    slack_signer: SlackRequestSigner,
    signing_secret: str,
) -> None:
    env = {
        **CLEAN_ENV,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": fake_slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/earful.db",
        "PORT": str(free_port()),
        "EARFUL_HOST": "127.0.0.1",
        "EARFUL_ADMINS": "U0ALICE",
        "EARFUL_LOG_FORMAT": "json",
        "EARFUL_LOG_LEVEL": "DEBUG",
        "EARFUL_METRICS_TOKEN": METRICS_TOKEN,
        "EARFUL_FETCH_ALLOW_PRIVATE": "true",
        "EARFUL_POLL_TICK_SECONDS": "0.2",
        "EARFUL_SCORING_WORKERS": "0",
    }
    # A feed whose address holds something that looks like a token; it fails, and the warning
    # about it must not print the token.
    feed = feed_server.serve(f"/{FEED_SECRET}/feed.xml", b"down", status=500)
    earful = EarfulProcess(env, tmp_path)
    await earful.start()
    base = earful.base
    sent = 0
    try:
        async with aiohttp.ClientSession() as http:
            await earful.wait_healthy(within=30)
            async with http.get(base + "/metrics") as refused:
                assert refused.status == 401
            await scrape(http, base + "/metrics", token=METRICS_TOKEN)

            for text in ("help", f'watch add leaky "acme" sources=rss:{feed} kind=brand'):
                response = await post_signed(
                    http, earful.events_url, slash_command(text), FORM, slack_signer
                )
                reply = await response.text()
                assert response.status == 200 and "Only Earful admins" not in reply, reply
                sent += 1
            # A click that the listener answers with an ephemeral note, which Slack refuses:
            # the listener logs a warning after the ack, from a task of its own.
            fake_slack.fail("chat.postEphemeral", error="channel_not_found")
            click = block_action(ActionId.CLAIM, "not-a-mention", channel_id="C0GENERAL")
            response = await post_signed(http, earful.events_url, click, FORM, slack_signer)
            assert response.status == 200
            sent += 1
            await fake_slack.wait_for("chat.postEphemeral")
            await scrape_until(
                http,
                base + "/metrics",
                lambda s: (
                    s.get(
                        "earful_slack_api_errors_total",
                        method="chat.postEphemeral",
                        error="channel_not_found",
                    )
                    == 1
                    and s.get("earful_polls_total", source="rss", outcome="error") == 1
                ),
                token=METRICS_TOKEN,
            )
    finally:
        await earful.stop()
    output = earful.log_path.read_text(encoding="utf-8")
    assert earful.returncode == 0, output[-3000:]

    # Every line is one JSON record; no secret got through in any field.
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert_no_leaks(output, [BOT_TOKEN, "LogTestBotToken", "FeedPathSecret"])
    assert "xoxb-…redacted" in output

    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if str(record.get("correlation_id", "")).startswith("req-"):
            by_request[record["correlation_id"]].append(record)
    # Bolt logs only while it handles a request: each of its records carries a request id,
    # and there is exactly one id per request sent (not one per record, not one shared).
    bolt = [
        r for r in records if r["logger"].startswith("slack_bolt") and "Responding" in r["message"]
    ]
    assert len(bolt) == sent and all(r.get("correlation_id", "").startswith("req-") for r in bolt)
    assert len(by_request) == sent
    for request_records in by_request.values():
        assert len(request_records) >= 3
        assert len({r["request_type"] for r in request_records}) == 1
        assert {r.get("team") for r in request_records} == {"T0TEAM"}
    kinds = sorted(rs[0]["request_type"] for rs in by_request.values())
    assert kinds == ["block_actions", "command", "command"]

    # The listener's own warning, logged after the ack, has the click's id, shared with Bolt's
    # records of that request.
    [warning] = [r for r in records if r["message"].startswith("could not tell U0ALICE")]
    click_records = by_request[warning["correlation_id"]]
    assert warning["request_type"] == "block_actions"
    assert any(r["logger"].startswith("slack_bolt") for r in click_records)

    # Background work started while a request was handled (a watch added wakes the scheduler)
    # does not adopt the request's id.
    background = ("apscheduler", "bot.runtime", "bot.polling", "bot.delivery")
    assert not [r for r in records if r["logger"].startswith(background) and "request_type" in r]

    # The failing poll's warning carries its poll's id and the source type (not its URL).
    [failed] = [r for r in records if "failed" in r["message"] and r["logger"] == "bot.polling"]
    assert failed["correlation_id"].startswith("poll-") and failed["source"] == "rss"
