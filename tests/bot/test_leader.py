"""Leader election against the real PostgreSQL: one leader, step-down when its session dies,
takeover by the other replica, wake-ups through NOTIFY. And on SQLite: always the leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import text

from bot import job_status
from bot.jobs import JobId
from bot.leader import Elector, Role, Wakeup
from bot.runtime import Runtime
from bot.server import build_web_app
from storage import job_runs as job_run_store
from storage import leader_lock
from storage import watches as watch_store
from storage.db import Database
from tests.fakes.slack_api import FakeSlackApi
from tests.support.earful import earful_settings
from tests.support.feeds import FeedItem, FeedServer, rss

postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def eventually(predicate: Callable[[], Awaitable[bool] | bool], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while True:
        outcome = predicate()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@dataclass
class Replica:
    """An elector with callbacks that only record what happened to it."""

    elector: Elector
    elected: int = 0
    deposed: int = 0
    wakeups: list[Wakeup] = field(default_factory=list)


def replica(db: Database, name: str) -> Replica:
    record = Replica(elector=None)  # type: ignore[arg-type]

    async def on_elected() -> None:
        record.elected += 1

    async def on_deposed() -> None:
        record.deposed += 1

    record.elector = Elector(
        db,
        replica=name,
        retry_seconds=0.2,
        check_seconds=1.0,
        on_elected=on_elected,
        on_deposed=on_deposed,
        on_wakeup=record.wakeups.append,
    )
    return record


@pytest.fixture
async def electors(db: Database) -> AsyncIterator[tuple[Replica, Replica]]:
    first, second = replica(db, "replica-a"), replica(db, "replica-b")
    try:
        yield first, second
    finally:
        await second.elector.stop()
        await first.elector.stop()


async def current_leader(db: Database) -> str | None:
    async with db.session() as session:
        return await leader_lock.current_leader(session)


@postgres_only
async def test_one_leads_and_the_other_takes_over_when_its_session_is_killed(
    db: Database, electors: tuple[Replica, Replica]
) -> None:
    first, second = electors
    await first.elector.start()
    await second.elector.start()
    assert (first.elector.role, second.elector.role) == (Role.LEADER, Role.FOLLOWER)
    assert (first.elected, second.elected) == (1, 0)
    assert await current_leader(db) == "replica-a"
    assert second.elector.trying()

    # What an operator (or a failover) does to a session: the leader's connection is gone.
    async with db.session() as session:
        killed = (
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": leader_lock.APPLICATION_PREFIX + "replica-a"},
            )
        ).scalars()
        assert list(killed) == [True]

    await eventually(lambda: first.deposed == 1 and not first.elector.leading)
    await eventually(lambda: second.elector.leading)
    assert await current_leader(db) == "replica-b"
    # The old leader keeps trying (it is healthy as a follower) but cannot lead again.
    await eventually(lambda: first.elector.trying())
    assert first.elected == 1 and not first.elector.leading


@postgres_only
async def test_stopping_the_leader_hands_over(electors: tuple[Replica, Replica]) -> None:
    first, second = electors
    await first.elector.start()
    await second.elector.start()
    await first.elector.stop()
    assert first.deposed == 1
    await eventually(lambda: second.elector.leading)


@postgres_only
async def test_a_follower_wakes_the_leader_through_notify(
    db: Database, electors: tuple[Replica, Replica]
) -> None:
    leader, follower = electors
    await leader.elector.start()
    await follower.elector.start()
    assert follower.elector.role is Role.FOLLOWER

    # Anyone able to NOTIFY on the channel cannot make the leader do anything else.
    async with db.session() as session:
        await session.execute(
            text("SELECT pg_notify(:channel, 'drop table')"),
            {"channel": leader_lock.WAKEUP_CHANNEL},
        )
    follower.elector.wake_leader(Wakeup.WATCHES)
    follower.elector.wake_leader(Wakeup.OUTBOX)
    await eventually(lambda: set(leader.wakeups) == {Wakeup.OUTBOX, Wakeup.WATCHES})
    assert follower.wakeups == []  # a follower hands the work on; it does not do it itself

    leader.elector.wake_leader(Wakeup.OUTBOX)  # on the leader itself: at once, no round trip
    assert leader.wakeups.count(Wakeup.OUTBOX) == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_is_one_process_and_it_always_leads(db: Database) -> None:
    only = replica(db, "solo")
    await only.elector.start()
    try:
        assert only.elector.leading and only.elected == 1
        only.elector.wake_leader(Wakeup.OUTBOX)
        assert only.wakeups == [Wakeup.OUTBOX]
    finally:
        await only.elector.stop()
    assert only.deposed == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_new_leader_resumes_each_job_where_the_last_one_left_it(
    database_url: str, fake_slack: FakeSlackApi, signing_secret: str
) -> None:
    ran_at = datetime.now(UTC) - timedelta(seconds=100)
    db = Database(database_url)
    async with db.session() as session:
        for job in (JobId.SPIKE_CHECK, JobId.SLA_TIMERS):
            job_run_store.record_run(
                session, job=job, replica="gone-1", started_at=ran_at, finished_at=ran_at
            )
    await db.dispose()
    settings = earful_settings(
        database_url,
        fake_slack.url,
        signing_secret,
        EARFUL_JOB_INTERVALS="spike_check=300,sla_timers=20",
        EARFUL_REPLICA_ID="next-1",
    )
    runtime = Runtime(settings)
    started = datetime.now(UTC)
    await runtime.start()
    try:
        spike = runtime.scheduler.get_job(JobId.SPIKE_CHECK)
        prune = runtime.scheduler.get_job(JobId.PRUNE_POSTS)
        assert spike is not None and prune is not None
        # Not due yet: 300 s after the last run, whoever ran it; not 300 s after this start.
        assert spike.next_run_time == ran_at + timedelta(seconds=300)
        # Never run: as before, one interval after the start.
        assert prune.next_run_time >= started + timedelta(hours=1)
        # Overdue: runs now, and is recorded as this replica's run.
        await eventually(lambda: _ran(runtime, JobId.SLA_TIMERS, by="next-1"))
        async with runtime.db.session() as session:
            status = job_status.summary(await job_status.load(session))
        assert "run on `next-1`" in status
        assert f"spike check <!date^{int(ran_at.timestamp())}^{{ago}}|" in status
        assert "forget old fetched posts: not yet" in status
    finally:
        await runtime.stop()


async def _ran(runtime: Runtime, job: JobId, *, by: str) -> bool:
    async with runtime.db.session() as session:
        runs = await job_run_store.latest_runs(session)
    return job.value in runs and runs[job.value].replica == by


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_healthz_reports_a_stuck_job(
    database_url: str, fake_slack: FakeSlackApi, signing_secret: str, feed_server: FeedServer
) -> None:
    feed = feed_server.serve(
        "/slow.xml", rss([FeedItem("1", "acme", "acme", "https://example.com/1")]), delay=1.5
    )
    settings = earful_settings(
        database_url,
        fake_slack.url,
        signing_secret,
        EARFUL_JOB_STUCK_SECONDS=0.5,
        EARFUL_FETCH_TIMEOUT_SECONDS=5.0,
        EARFUL_REPLICA_ID="slow-1",
    )
    runtime = Runtime(settings)
    await runtime.start()
    server = TestServer(
        build_web_app(
            None, db=runtime.db, scheduler_running=runtime.scheduler_running, health=runtime.health
        )
    )
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:

            async def health() -> tuple[int, dict[str, object]]:
                async with http.get(server.make_url("/healthz")) as response:
                    return response.status, await response.json()

            status, report = await health()
            assert status == 200, report
            assert report["role"] == "leader" and report["replica"] == "slow-1"

            async with runtime.db.session() as session:
                await watch_store.create_watch(
                    session,
                    name="acme",
                    query="acme",
                    kind="brand",
                    department=None,
                    sources=[f"rss:{feed}"],
                    interval_seconds=60,
                    created_by=None,
                )
            runtime.poll_soon()

            async def stuck() -> bool:
                status, report = await health()
                return status == 503 and report["stuck_jobs"] == ["poll_due_watches"]

            await eventually(stuck)

            async def recovered() -> bool:
                status, _ = await health()
                return status == 200

            await eventually(recovered)  # the slow poll ends; the job is not stuck any more
    finally:
        await server.close()
        await runtime.stop()


@postgres_only
async def test_a_runtime_that_loses_the_lead_stops_its_jobs_and_delivery_at_once(
    db: Database, database_url: str, fake_slack: FakeSlackApi, signing_secret: str
) -> None:
    def runtime(name: str) -> Runtime:
        settings = earful_settings(
            database_url,
            fake_slack.url,
            signing_secret,
            EARFUL_REPLICA_ID=name,
            EARFUL_LEADER_RETRY_SECONDS=0.2,
            EARFUL_LEADER_CHECK_SECONDS=1,
        )
        return Runtime(settings)

    first, second = runtime("first-1"), runtime("second-1")
    running = [first, second]
    await first.start()
    await second.start()
    try:
        assert first.scheduler_running() and first.delivering
        assert second.scheduler.get_jobs() == [] and not second.delivering
        assert (await second.health())["role"] == "follower"

        async with db.session() as session:
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": leader_lock.APPLICATION_PREFIX + "first-1"},
            )
        await eventually(lambda: not first.elector.leading)
        assert first.scheduler.get_jobs() == [] and not first.scheduler_running()
        assert not first.delivering
        report = await first.health()
        assert report["role"] == "follower" and report["ok"] is True
        await eventually(lambda: second.scheduler_running() and second.delivering)
        assert second.scheduler.get_job(JobId.POLL) is not None

        # The lead comes back when the other replica stops: jobs and delivery resume.
        running.remove(second)
        await second.stop()
        await eventually(lambda: first.scheduler_running() and first.delivering)
        assert {job.id for job in first.scheduler.get_jobs()} == {job.value for job in JobId}
    finally:
        for each in running:
            await each.stop()


async def test_a_new_leader_polls_at_once_what_a_dead_poller_had_leased(
    database_url: str, fake_slack: FakeSlackApi, signing_secret: str, feed_server: FeedServer
) -> None:
    """A process killed mid-poll leaves its sources leased for minutes; the next leader is the
    only poller, so it releases them and the interrupted poll is done again at once."""
    url = feed_server.serve(
        "/feed.xml", rss([FeedItem("1", "Acme", "Acme is down again", "https://e.com/1")])
    )
    db = Database(database_url)
    async with db.session() as session:
        await watch_store.create_watch(
            session,
            name="acme",
            query="acme",
            kind="brand",
            department=None,
            sources=[f"rss:{url}"],
            interval_seconds=300,
            created_by="U0ALICE",
        )
    async with db.session() as session:
        # The dead process's claim: leased, and then it never came back to record the poll.
        leased = await watch_store.claim_due_sources(
            session, now=datetime.now(UTC), lease=timedelta(minutes=5)
        )
    assert len(leased) == 1
    await db.dispose()
    runtime = Runtime(earful_settings(database_url, fake_slack.url, signing_secret))
    await runtime.start()
    try:

        async def polled() -> bool:
            async with runtime.db.session() as session:
                state = (await watch_store.source_states(session))[0]
            return state.last_success_at is not None and state.leased_until is None

        await eventually(polled, within=20)
    finally:
        await runtime.stop()
