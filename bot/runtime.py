"""One Earful process: database, scheduler, delivery, and Slack over HTTP or Socket Mode.

Every process serves Slack; only the elected leader (bot/leader.py) runs the scheduled jobs
and the outbox delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import build_services, create_app
from bot.catalog import WatchCatalog
from bot.digest_schedule import DigestScheduler
from bot.jobs import JobId
from bot.leader import Elector, Wakeup, default_replica_id
from bot.logs import outside_correlation, start_correlation
from bot.polling import Poller
from bot.scoring import Scorer
from bot.server import build_web_app
from bot.settings import Settings
from bot.share_of_voice import refresh_share_of_voice
from bot.sla import TICK_SECONDS as SLA_TICK_SECONDS
from bot.sla import SlaEngine
from bot.spikes import SpikeDetector
from storage import job_runs as job_run_store
from storage import posts as post_store
from storage import watches as watch_store
from storage.db import Database, redact_url
from storage.migrate import upgrade
from watchers.http import FetchPolicy, HttpFetcher

log = logging.getLogger(__name__)

POLL_JOB_ID = JobId.POLL
POST_RETENTION = post_store.RETENTION
JOB_RUN_RETENTION = timedelta(days=2)
# Seconds between runs unless EARFUL_JOB_INTERVALS says otherwise (the poll tick has a setting
# of its own, EARFUL_POLL_TICK_SECONDS).
DEFAULT_INTERVALS: dict[JobId, float] = {
    JobId.PRUNE_POSTS: 3600,
    JobId.SPIKE_CHECK: 300,
    # Often enough that the current hour's row is never far behind for the digest.
    JobId.SHARE_OF_VOICE: 900,
    JobId.SLA_TIMERS: SLA_TICK_SECONDS,
    JobId.DIGESTS: 60,
    JobId.PRUNE_JOB_RUNS: 3600,
}


@dataclass(frozen=True)
class JobSpec:
    id: JobId
    name: str
    run: Callable[[], Awaitable[object]]
    # Run as soon as a leader starts, when no run is recorded yet; otherwise one interval on.
    at_start: bool


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allow_private=settings.fetch_allow_private,
        timeout_seconds=settings.fetch_timeout_seconds,
        max_bytes=settings.fetch_max_bytes,
        per_host_rate=settings.fetch_per_host_rate,
    )


class Runtime:
    """Everything a running Earful owns, started and stopped in order."""

    def __init__(self, settings: Settings, *, per_channel_interval: float | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.fetcher = HttpFetcher(fetch_policy(settings))
        self.scorer = Scorer(settings.scoring_workers)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.replica = settings.replica_id or default_replica_id()
        self.services = build_services(
            settings,
            self.db,
            on_outbox=self._outbox_changed,
            on_watches_changed=self._watches_changed,
            per_channel_interval=per_channel_interval,
        )
        self.elector = Elector(
            self.db,
            replica=self.replica,
            retry_seconds=settings.leader_retry_seconds,
            check_seconds=settings.leader_check_seconds,
            on_elected=self._lead,
            on_deposed=self._step_down,
            on_wakeup=self._woken,
        )
        self.catalog = WatchCatalog(self.db)
        # The pollers, spike check and SLA timers only run on the leader, where delivery runs.
        self.poller = Poller(
            self.db,
            fetcher=self.fetcher,
            scorer=self.scorer,
            catalog=self.catalog,
            source_settings=settings.source_settings(),
            on_outbox=self.services.delivery.kick,
        )
        self.app = create_app(self.services)
        self.spikes = SpikeDetector(
            self.db, on_outbox=self.services.delivery.kick, executor=self.scorer.executor
        )
        self.sla = SlaEngine(
            self.db, workflow=self.services.workflow, on_outbox=self.services.delivery.kick
        )
        self.digests = DigestScheduler(self.db, send=self.services.commands.digests.deliver)
        self._delivery_task: asyncio.Task[None] | None = None
        self._ticking = False
        self._tick_again = False
        self._tick_task: asyncio.Task[object] | None = None
        self._running_jobs: set[asyncio.Task[object]] = set()
        self._job_started: dict[JobId, float] = {}  # running jobs, by monotonic start
        self.jobs = [
            JobSpec(JobId.POLL, "poll due watches", self._tick, at_start=True),
            JobSpec(
                JobId.PRUNE_POSTS,
                "forget fetched posts older than the retention period",
                self._prune_posts,
                at_start=False,
            ),
            JobSpec(
                JobId.SPIKE_CHECK,
                "open and close spikes (crisis alerts)",
                self.spikes.check,
                at_start=False,
            ),
            JobSpec(
                JobId.SHARE_OF_VOICE,
                "recompute share of voice for the current and previous hour and day",
                functools.partial(refresh_share_of_voice, db=self.db),
                at_start=True,
            ),
            JobSpec(
                JobId.SLA_TIMERS,
                "sync SLA timers with mentions and fire the due ones (pings, escalations)",
                self.sla.tick,
                at_start=True,
            ),
            JobSpec(
                JobId.DIGESTS,
                "send the digests due now (each subscription's day claimed once)",
                self.digests.tick,
                # At start-up too: a digest missed while no process ran goes out once, now.
                at_start=True,
            ),
            JobSpec(
                JobId.PRUNE_JOB_RUNS,
                "forget job runs older than the retention period",
                self._prune_job_runs,
                at_start=False,
            ),
        ]

    def interval(self, job: JobId) -> float:
        override = self.settings.job_intervals.get(job.value)
        if override is not None:
            return override
        if job is JobId.POLL:
            return self.settings.poll_tick_seconds
        return DEFAULT_INTERVALS[job]

    def _job(self, job: JobSpec) -> Callable[[], Awaitable[None]]:
        """A scheduler job that ``stop`` lets finish before the database closes, and whose
        runs are recorded (``job_run``) for the status and for the next leader.

        APScheduler's shutdown cancels running jobs; one cancelled inside a database session
        leaves its connection to be closed after the engine is gone, which never completes
        on aiosqlite and hangs the process's exit.
        """

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running_jobs.add(task)
            self._job_started[job.id] = time.monotonic()
            start_correlation("job", job=job.id.value)  # APScheduler runs each in a task
            started = datetime.now(UTC)
            try:
                await job.run()
            except Exception as exc:
                await self._record_run(job.id, started, f"{type(exc).__name__}: {exc}")
                raise
            else:
                await self._record_run(job.id, started, None)
            finally:
                self._running_jobs.discard(task)
                self._job_started.pop(job.id, None)

        return run

    async def _record_run(self, job: JobId, started: datetime, error: str | None) -> None:
        try:
            async with self.db.session() as session:
                job_run_store.record_run(
                    session,
                    job=job.value,
                    replica=self.replica,
                    started_at=started,
                    finished_at=datetime.now(UTC),
                    error=error,
                )
        except Exception as exc:
            # The run itself happened; only its record is missing.
            log.warning("could not record a run of %s: %s", job.value, type(exc).__name__)

    async def start(self) -> None:
        """Serve as leader or follower: the jobs and the outbox start when this replica leads."""
        await self.elector.start()

    async def _lead(self) -> None:
        """Schedule every job where the previous leader left it: its last recorded start plus
        its interval (now if that has passed), so a takeover neither repeats nor skips a run."""
        async with self.db.session() as session:
            last = await job_run_store.latest_runs(session)
            # Only the leader polls, so a lease still held belongs to a process that is gone
            # (killed mid-poll, or the leader before us): its sources are due again now.
            released = await watch_store.release_leases(session)
        if released:
            log.info("released %d source lease(s) left by a stopped poller", released)
        now = datetime.now(UTC)
        for job in self.jobs:
            interval = timedelta(seconds=self.interval(job.id))
            previous = last.get(job.id.value)
            if previous is not None:
                first = max(now, previous.started_at + interval)
            else:
                first = now if job.at_start else now + interval
            self.scheduler.add_job(
                self._job(job),
                IntervalTrigger(seconds=interval.total_seconds()),
                id=job.id.value,
                name=job.name,
                max_instances=1,
                coalesce=True,
                next_run_time=first,
                replace_existing=True,
            )
        if self.scheduler.state == STATE_STOPPED:
            self.scheduler.start()
        else:
            self.scheduler.resume()
        self._delivery_task = asyncio.create_task(self.services.delivery.run(), name="outbox")

    async def _step_down(self) -> None:
        """Stop at once: no new runs, running jobs and delivery cancelled. Whatever they left
        half done is in the database for the next leader (leases expire, the outbox retries)."""
        if self.scheduler.state == STATE_RUNNING:
            self.scheduler.pause()
        self.scheduler.remove_all_jobs()
        delivery, self._delivery_task = self._delivery_task, None
        running = [task for task in self._running_jobs if not task.done()]
        for task in [*running, delivery]:
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*running, *([delivery] if delivery else []), return_exceptions=True)

    def _outbox_changed(self) -> None:
        self.elector.wake_leader(Wakeup.OUTBOX)

    def _woken(self, topic: Wakeup) -> None:
        if topic is Wakeup.OUTBOX:
            self.services.delivery.kick()
        elif topic is Wakeup.WATCHES:
            self.catalog.invalidate()
            self.poll_soon()

    async def _prune_posts(self) -> None:
        async with self.db.session() as session:
            removed = await post_store.prune_posts(
                session, older_than=datetime.now(UTC) - POST_RETENTION
            )
        if removed:
            log.info("forgot %d fetched post(s) older than %s", removed, POST_RETENTION)

    async def _prune_job_runs(self) -> None:
        async with self.db.session() as session:
            await job_run_store.prune_runs(
                session, older_than=datetime.now(UTC) - JOB_RUN_RETENTION
            )

    def _watches_changed(self) -> None:
        self.catalog.invalidate()
        self.elector.wake_leader(Wakeup.WATCHES)

    async def _tick(self) -> None:
        self._ticking = True
        self._tick_task = asyncio.current_task()
        try:
            await self.poller.tick()
            while self._tick_again:
                self._tick_again = False
                await self.poller.tick()
        finally:
            self._ticking = False
            self._tick_task = None

    def poll_soon(self) -> None:
        """Poll now instead of at the next tick (a watch was just added or resumed)."""
        if self._ticking:
            self._tick_again = True  # the running tick goes round once more
            return
        job = self.scheduler.get_job(POLL_JOB_ID)
        if job is not None:
            # Often called while handling a request: the scheduler must not adopt its log id.
            outside_correlation(job.modify, next_run_time=datetime.now(UTC))

    def scheduler_running(self) -> bool:
        return bool(self.scheduler.state == STATE_RUNNING)

    @property
    def delivering(self) -> bool:
        """This process is delivering the outbox (it leads)."""
        return self._delivery_task is not None and not self._delivery_task.done()

    def stuck_jobs(self) -> list[str]:
        """Jobs running for longer than EARFUL_JOB_STUCK_SECONDS."""
        now = time.monotonic()
        limit = self.settings.job_stuck_seconds
        return sorted(
            job.value for job, started in self._job_started.items() if now - started > limit
        )

    async def health(self) -> dict[str, Any]:
        """For /healthz. The leader: database, scheduler and delivery running, no job stuck. A
        follower: database answering and still trying for the lead."""
        database = await self.db.ping()
        report: dict[str, Any] = {
            "role": self.elector.role.value,
            "replica": self.replica,
            "database": database,
        }
        if self.elector.leading:
            delivering = self.delivering
            stuck = self.stuck_jobs()
            scheduler = self.scheduler_running()
            report.update(scheduler=scheduler, delivery=delivering, stuck_jobs=stuck)
            report["ok"] = database and scheduler and delivering and not stuck
        else:
            electing = self.elector.trying()
            report.update(scheduler=False, electing=electing)
            report["ok"] = database and electing
        return report

    async def stop(self) -> None:
        if self.scheduler.state == STATE_RUNNING:
            self.scheduler.pause()  # nothing new starts; what runs may finish below
        # A poll in flight finishes (its fetches are time-capped) before the database closes
        # under it; only one that overruns is cancelled.
        tick = self._tick_task
        if tick is not None and not tick.done():
            try:
                await asyncio.wait_for(
                    asyncio.shield(tick), timeout=self.settings.fetch_timeout_seconds + 5
                )
            except TimeoutError:
                tick.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tick
            except Exception:
                log.exception("the last poll failed while shutting down")
        await self._finish_jobs(grace=self.settings.fetch_timeout_seconds + 5)
        # Only now let go of the lead (stopping delivery): the next leader never overlaps
        # with a job this one is finishing.
        await self.elector.stop()
        if self.scheduler.state != STATE_STOPPED:
            self.scheduler.shutdown(wait=False)
        await self.fetcher.close()
        self.scorer.close()
        await self.db.dispose()

    async def _finish_jobs(self, *, grace: float) -> None:
        running = [task for task in self._running_jobs if not task.done()]
        if not running:
            return
        _, overran = await asyncio.wait(running, timeout=grace)
        for task in overran:
            log.warning("cancelling %s: still running %.0fs after stop", task.get_name(), grace)
            task.cancel()
        await asyncio.gather(*overran, return_exceptions=True)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``earful run``: migrate, start, serve until SIGINT/SIGTERM (or ``stop`` is set)."""
    log.info("migrating %s", redact_url(settings.database_url))
    await asyncio.to_thread(upgrade, settings.database_url)
    runtime = Runtime(settings)
    await runtime.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    socket_handler = None
    web_app = build_web_app(
        None if settings.socket_mode else runtime.app,
        db=runtime.db,
        scheduler_running=runtime.scheduler_running,
        metrics_token=settings.metrics_token,
        health=runtime.health,
    )
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    connecting: asyncio.Task[None] | None = None
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert settings.slack_app_token is not None
            socket_handler = AsyncSocketModeHandler(
                runtime.app, settings.slack_app_token.get_secret_value()
            )
            # slack_sdk retries a refused connection forever; racing it against `stop` keeps
            # SIGTERM working while Slack refuses the token or cannot be reached.
            connecting = asyncio.create_task(socket_handler.connect_async())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if connecting.done() and connecting.exception() is None:
                log.info("Earful is running in Socket Mode (health on :%d/healthz)", settings.port)
        else:
            log.info(
                "Earful is listening on http://%s:%d/slack/events", settings.host, settings.port
            )
        await stop.wait()
    finally:
        log.info("shutting down")
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if socket_handler is not None:
            await socket_handler.close_async()
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
        await runner.cleanup()
        await runtime.stop()
