"""Three ``earful run`` replicas on one PostgreSQL database, one of them killed.

The replicas start together on an empty database (so their migrations race), serve signed Slack
requests on three ports, and elect one leader that alone runs the scheduled jobs and delivers
the outbox. The leader is then SIGKILLed with an alert half delivered (Slack answered 500) and
a watch due: a survivor takes over, delivers the alert exactly once and polls the watch.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.ids import ActionId
from bot.jobs import JobId
from storage import job_runs as job_run_store
from storage import outbox
from storage.db import Database
from storage.models import JobRun, Mention
from tests.e2e.test_cli import CLEAN_ENV, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import (
    FORM,
    SlackRequestSigner,
    block_action,
    post_signed,
    slash_command,
)
from tests.support.earful_process import EarfulProcess
from tests.support.feeds import FeedItem, FeedServer, rss

JOB_INTERVAL = 2.0  # seconds, for every job but the poll tick
TIMED_JOBS = [job for job in JobId if job is not JobId.POLL]  # the poll also runs on demand
TAKEOVER_LIMIT = 60.0


Replica = EarfulProcess


@dataclass
class Cluster:
    replicas: list[Replica]
    http: aiohttp.ClientSession
    signer: SlackRequestSigner

    async def health(self, replica: Replica) -> tuple[int, dict[str, Any]]:
        try:
            async with self.http.get(replica.base + "/healthz") as response:
                return response.status, await response.json()
        except (aiohttp.ClientError, json.JSONDecodeError):
            return 0, {}

    async def roles(self, replicas: Sequence[Replica]) -> dict[str, str]:
        found = {}
        for replica in replicas:
            status, report = await self.health(replica)
            if status == 200:
                found[replica.name] = report["role"]
        return found

    async def command(self, replica: Replica, command: str) -> dict[str, Any]:
        body = slash_command(command)
        response = await post_signed(self.http, replica.events_url, body, FORM, self.signer)
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def eventually(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, f"not reached in {within}s: {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def cluster(
    tmp_path: Path,
    empty_postgres: str,
    fake_slack: FakeSlackApi,
    slack_signer: SlackRequestSigner,
    signing_secret: str,
) -> AsyncIterator[Cluster]:
    intervals = ",".join(f"{job.value}={JOB_INTERVAL:g}" for job in TIMED_JOBS)
    replicas = []
    for number in (1, 2, 3):
        port = free_port()
        env = {
            **CLEAN_ENV,
            "SLACK_BOT_TOKEN": "xoxb-1-2-replicasecret",
            "SLACK_SIGNING_SECRET": signing_secret,
            "SLACK_API_URL": fake_slack.url,
            "DATABASE_URL": empty_postgres,
            "PORT": str(port),
            "EARFUL_HOST": "127.0.0.1",
            "EARFUL_REPLICA_ID": f"replica-{number}",
            "EARFUL_ADMINS": "U0ALICE",
            "EARFUL_FETCH_ALLOW_PRIVATE": "true",
            "EARFUL_FETCH_PER_HOST_RATE": "1000",
            "EARFUL_FETCH_TIMEOUT_SECONDS": "2",
            "EARFUL_SCORING_WORKERS": "0",
            "EARFUL_MIN_INTERVAL_SECONDS": "1",
            "EARFUL_POLL_TICK_SECONDS": "0.5",
            "EARFUL_LEADER_RETRY_SECONDS": "0.5",
            "EARFUL_LEADER_CHECK_SECONDS": "1",
            "EARFUL_JOB_INTERVALS": intervals,
        }
        replica = Replica(env, tmp_path, name=f"replica-{number}")
        await replica.start()
        replicas.append(replica)
    http = aiohttp.ClientSession()
    try:
        yield Cluster(replicas, http, slack_signer)
    finally:
        await http.close()
        await asyncio.gather(*(replica.stop() for replica in replicas))


async def job_runs(url: str) -> list[JobRun]:
    db = Database(url)
    try:
        async with db.session() as session:
            return await job_run_store.runs_since(session, since=datetime(2000, 1, 1, tzinfo=UTC))
    finally:
        await db.dispose()


async def pending_outbox(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            return await outbox.pending_count(session)
    finally:
        await db.dispose()


async def mentions(url: str) -> list[Mention]:
    db = Database(url)
    try:
        async with db.session() as session:
            return list((await session.execute(select(Mention))).scalars())
    finally:
        await db.dispose()


def assert_once_per_interval(runs: list[JobRun]) -> None:
    by_job: dict[str, list[JobRun]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    for job, rows in by_job.items():
        rows.sort(key=lambda run: run.started_at)
        for earlier, later in pairwise(rows):
            assert later.started_at >= earlier.finished_at, (
                f"{job} ran on {earlier.replica} and {later.replica} at once"
            )
        if job == JobId.POLL:
            continue
        gaps = [(b.started_at - a.started_at).total_seconds() for a, b in pairwise(rows)]
        span = (rows[-1].started_at - rows[0].started_at).total_seconds()
        # A second scheduler anywhere would start runs a fraction of an interval apart and
        # double the count; the slack allowed is for a busy event loop starting a run late.
        assert min(gaps) >= 0.4 * JOB_INTERVAL, (job, gaps)
        assert len(gaps) <= span / JOB_INTERVAL + 1, (job, gaps)


async def test_three_replicas_one_leader_and_a_takeover_that_loses_nothing(
    cluster: Cluster,
    empty_postgres: str,
    fake_slack: FakeSlackApi,
    feed_server: FeedServer,
) -> None:
    replicas = cluster.replicas

    async def all_healthy() -> bool:
        return len(await cluster.roles(replicas)) == 3

    await eventually(all_healthy, 90, "three healthy replicas")
    roles = await cluster.roles(replicas)
    assert sorted(roles.values()) == ["follower", "follower", "leader"], roles
    [leader] = [r for r in replicas if roles[r.name] == "leader"]
    first, second = [r for r in replicas if r is not leader]
    _, report = await cluster.health(first)
    assert report["replica"] == first.name and report["database"] is True

    # Every replica answers signed Slack requests; the work lands on the leader.
    for replica in replicas:
        reply = await cluster.command(replica, "help")
        assert "watch add" in json.dumps(reply)
    reply = await cluster.command(first, "route support <#C0SUPPORT|support>")
    assert "support" in reply["text"], reply
    feed = feed_server.serve(
        "/feed.xml",
        rss([FeedItem("post-1", "Acme Cloud crashes on login", "Down again", "https://e.x/1")]),
    )
    reply = await cluster.command(
        second, f'watch add acme "acme" sources=rss:{feed} kind=brand dept=support every=2s'
    )
    assert "saved" in reply["text"], reply
    [posted] = await fake_slack.wait_for("chat.postMessage", timeout=20)
    assert posted.args["channel"] == "C0SUPPORT"

    # A click on a follower: the card is updated (by the leader, woken through NOTIFY).
    [alert] = fake_slack.messages("C0SUPPORT")
    body = block_action(
        ActionId.CLAIM,
        user_id="U0BOB",
        channel_id="C0SUPPORT",
        message_ts=alert["ts"],
        message_text=alert.get("text", ""),
        message_blocks=alert.get("blocks"),
    )
    response = await post_signed(cluster.http, first.events_url, body, FORM, cluster.signer)
    assert response.status == 200
    await fake_slack.wait_for("chat.update", timeout=15)
    [claimed] = fake_slack.messages("C0SUPPORT", include_replies=False)
    assert "<@U0BOB>" in json.dumps(claimed["blocks"])

    status = await cluster.command(second, "status")
    assert f"run on `{leader.name}`" in json.dumps(status), status

    async def each_job_ran_twice(by: str) -> bool:
        runs = [run for run in await job_runs(empty_postgres) if run.replica == by]
        return all(sum(run.job == job for run in runs) >= 2 for job in JobId)

    await eventually(lambda: each_job_ran_twice(leader.name), 30, "every job run twice")

    async def outbox_drained() -> bool:
        return await pending_outbox(empty_postgres) == 0

    await eventually(outbox_drained, 20, "the outbox delivered")

    # An alert is found and its post fails (Slack answers 500): it is in the outbox, attempted.
    fake_slack.fail("chat.postMessage", status=500)
    feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem("post-1", "Acme Cloud crashes on login", "Down again", "https://e.x/1"),
                FeedItem("post-2", "Acme invoices", "Billed twice by acme", "https://e.x/2"),
            ]
        ),
    )

    async def post_failed() -> bool:
        return any(call.status == 500 for call in fake_slack.calls_to("chat.postMessage"))

    await eventually(post_failed, 20, "the second alert attempted")
    killed_at = time.monotonic()
    assert await leader.kill() == -signal.SIGKILL

    # While nobody leads (or just after), a watch is added: it is due, and must be polled.
    blog = feed_server.serve(
        "/blog.xml",
        rss([FeedItem("blog-1", "Acme opens Lisbon office", "Hiring", "https://e.x/blog/1")]),
    )
    reply = await cluster.command(
        first, f'watch add acmeblog "acme" sources=rss:{blog} kind=brand dept=support every=2s'
    )
    assert "saved" in reply["text"], reply

    survivors = [first, second]

    async def taken_over() -> bool:
        return "leader" in (await cluster.roles(survivors)).values()

    await eventually(taken_over, TAKEOVER_LIMIT, "a survivor takes the lead")
    takeover = time.monotonic() - killed_at
    print(f"\ntakeover after SIGKILL of the leader: {takeover:.2f}s")
    assert takeover < TAKEOVER_LIMIT
    roles = await cluster.roles(survivors)
    assert sorted(roles.values()) == ["follower", "leader"], roles
    [new_leader] = [r for r in survivors if roles[r.name] == "leader"]

    async def all_alerted() -> bool:
        found = await mentions(empty_postgres)
        return len(found) == 3 and all(m.ts for m in found)

    await eventually(all_alerted, 40, "every mention alerted")
    found = await mentions(empty_postgres)
    assert sorted(m.external_id for m in found) == ["blog-1", "post-1", "post-2"]
    top_level = fake_slack.messages("C0SUPPORT", include_replies=False)
    # Exactly once each: the retry after the takeover looked for the first attempt's message.
    assert sorted(m["ts"] for m in top_level) == sorted(m.ts or "" for m in found)

    await eventually(lambda: each_job_ran_twice(new_leader.name), 30, "jobs on the new leader")
    runs = await job_runs(empty_postgres)
    assert {run.replica for run in runs} == {leader.name, new_leader.name}
    assert_once_per_interval(runs)

    for replica in survivors:
        assert await replica.stop() == 0, replica.output()
        assert "xoxb-1-2-replicasecret" not in replica.output()
