"""One Earful process: database, scheduler, delivery, and Slack over HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import build_services, create_app
from bot.catalog import WatchCatalog
from bot.digest_schedule import DigestScheduler
from bot.polling import Poller
from bot.scoring import Scorer
from bot.server import build_web_app
from bot.settings import Settings
from bot.share_of_voice import refresh_share_of_voice
from bot.sla import TICK_SECONDS as SLA_TICK_SECONDS
from bot.sla import SlaEngine
from bot.spikes import SpikeDetector
from storage import posts as post_store
from storage.db import Database, redact_url
from storage.migrate import upgrade
from watchers.http import FetchPolicy, HttpFetcher

log = logging.getLogger(__name__)

POLL_JOB_ID = "poll_due_watches"
POST_RETENTION = post_store.RETENTION


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
        self.services = build_services(
            settings,
            self.db,
            on_watches_changed=self._watches_changed,
            per_channel_interval=per_channel_interval,
        )
        self.catalog = WatchCatalog(self.db)
        self.poller = Poller(
            self.db,
            fetcher=self.fetcher,
            scorer=self.scorer,
            catalog=self.catalog,
            source_settings=settings.source_settings(),
            on_outbox=self.services.delivery.kick,
        )
        self.app = create_app(self.services)
        self.spikes = SpikeDetector(self.db, on_outbox=self.services.delivery.kick)
        self.sla = SlaEngine(
            self.db, workflow=self.services.workflow, on_outbox=self.services.delivery.kick
        )
        self.digests = DigestScheduler(self.db, send=self.services.commands.digests.deliver)
        self._delivery_task: asyncio.Task[None] | None = None
        self._ticking = False
        self._tick_again = False
        self._tick_task: asyncio.Task[object] | None = None
        self._running_jobs: set[asyncio.Task[object]] = set()

    def _job(self, func: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[None]]:
        """A scheduler job that ``stop`` lets finish before the database closes.

        APScheduler's shutdown cancels running jobs; one cancelled inside a database session
        leaves its connection to be closed after the engine is gone, which never completes
        on aiosqlite and hangs the process's exit.
        """

        @functools.wraps(func)
        async def run(*args: object, **kwargs: object) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running_jobs.add(task)
            try:
                await func(*args, **kwargs)
            finally:
                self._running_jobs.discard(task)

        return run

    async def start(self) -> None:
        self.scheduler.add_job(
            self._job(self._tick),
            IntervalTrigger(seconds=self.settings.poll_tick_seconds),
            id=POLL_JOB_ID,
            name="poll due watches",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self._job(self._prune_posts),
            IntervalTrigger(hours=1),
            id="prune_posts",
            name="forget fetched posts older than the retention period",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._job(self.spikes.check),
            IntervalTrigger(minutes=5),
            id="spike_check",
            name="open and close spikes (crisis alerts)",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._job(refresh_share_of_voice),
            # Often enough that the current hour's row is never far behind for the digest.
            IntervalTrigger(minutes=15),
            kwargs={"db": self.db},
            id="share_of_voice",
            name="recompute share of voice for the current and previous hour and day",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self._job(self.sla.tick),
            IntervalTrigger(seconds=SLA_TICK_SECONDS),
            id="sla_timers",
            name="sync SLA timers with mentions and fire the due ones (pings, escalations)",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self._job(self.digests.tick),
            IntervalTrigger(minutes=1),
            id="digests",
            name="send the digests due now (each subscription's day claimed once)",
            max_instances=1,
            coalesce=True,
            # At start-up too: a digest missed while no process ran goes out once, now.
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()
        self._delivery_task = asyncio.create_task(self.services.delivery.run(), name="outbox")

    async def _prune_posts(self) -> None:
        async with self.db.session() as session:
            removed = await post_store.prune_posts(
                session, older_than=datetime.now(UTC) - POST_RETENTION
            )
        if removed:
            log.info("forgot %d fetched post(s) older than %s", removed, POST_RETENTION)

    def _watches_changed(self) -> None:
        self.catalog.invalidate()
        self.poll_soon()

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
            job.modify(next_run_time=datetime.now(UTC))

    def scheduler_running(self) -> bool:
        return bool(self.scheduler.running)

    async def stop(self) -> None:
        if self.scheduler.running:
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
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._delivery_task is not None:
            self._delivery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery_task
        await self.fetcher.close()
        self.scorer.close()
        self.services.commands.digests.close()
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
