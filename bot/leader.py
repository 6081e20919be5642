"""Leader election: one replica runs the scheduled jobs and the outbox, the others stand by.

On PostgreSQL the leader is whichever replica holds a session-level advisory lock on a
connection of its own (storage/leader_lock.py). Followers try for it every
``EARFUL_LEADER_RETRY_SECONDS``. The leader proves its connection every
``EARFUL_LEADER_CHECK_SECONDS`` and steps down at once (jobs and delivery stopped) when it
cannot: PostgreSQL frees a dead session's lock, and a follower takes over. Nothing a job needs
lives in memory (due polls are leased rows, SLA timers fire through conditional updates,
digest days are claimed, the outbox is a table), so a new leader resumes where the old one
stopped.

On SQLite there is one process, and it always leads.

Every replica serves Slack. Work one of them creates for the leader (an outbox item, a changed
watch) reaches it through NOTIFY; the leader LISTENs on its lock connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from storage import leader_lock
from storage.db import Database
from storage.leader_lock import LeaderLock

log = logging.getLogger(__name__)


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"


class Wakeup(StrEnum):
    """What a replica can tell the leader; anything else arriving on the channel is ignored."""

    OUTBOX = "outbox"  # new outbox items: deliver now rather than at the next idle check
    WATCHES = "watches"  # watches or routing changed: reload them and poll soon


def default_replica_id() -> str:
    """Unique per process and readable: the host (a container id under Docker) and the pid."""
    return f"{socket.gethostname()[:36]}-{os.getpid()}"


class Elector:
    def __init__(
        self,
        db: Database,
        *,
        replica: str,
        retry_seconds: float,
        check_seconds: float,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        on_wakeup: Callable[[Wakeup], None],
    ) -> None:
        self._db = db
        self.replica = replica
        self._retry = retry_seconds
        self._check = check_seconds
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._on_wakeup = on_wakeup
        self._shared = db.dialect == "postgresql"
        self._role = Role.FOLLOWER
        self._lock: LeaderLock | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_attempt: float | None = None
        self._unsent: set[Wakeup] = set()
        self._sending: asyncio.Task[None] | None = None

    @property
    def role(self) -> Role:
        return self._role

    @property
    def leading(self) -> bool:
        return self._role is Role.LEADER

    def trying(self) -> bool:
        """A follower is healthy while its election loop runs and has tried recently."""
        if self.leading:
            return True
        if self._task is None or self._task.done() or self._last_attempt is None:
            return False
        # An attempt may take up to a connect timeout (check) after the retry wait.
        return time.monotonic() - self._last_attempt <= 2 * (self._retry + self._check)

    async def start(self) -> None:
        """Try once now (a lone replica leads before it serves), then keep trying."""
        if not self._shared:
            self._role = Role.LEADER
            metrics.set_leader(True)
            await self._on_elected()  # nobody else could lead: a failure here is fatal
            return
        await self._attempt()
        self._task = asyncio.create_task(self._run(), name="leader election")

    async def stop(self) -> None:
        for task in (self._task, self._sending):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._sending = None
        await self._step_down()
        await self._drop_lock()

    def wake_leader(self, topic: Wakeup) -> None:
        """Tell the leader there is work, wherever it runs. Call after the work is committed."""
        if self.leading or not self._shared:
            self._on_wakeup(topic)
            return
        self._unsent.add(topic)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_wakeups(), name="wake the leader")

    async def _send_wakeups(self) -> None:
        # One NOTIFY per topic per round, however many clicks asked for one meanwhile.
        while self._unsent:
            topics = sorted(self._unsent)
            self._unsent.clear()
            try:
                async with self._db.session() as session:
                    for topic in topics:
                        await leader_lock.notify(session, topic=topic)
            except (SQLAlchemyError, OSError) as exc:
                # The leader still finds the work on its own next round (outbox idle check,
                # poll tick, watch catalog refresh); only the promptness is lost.
                log.warning("could not wake the leader (%s)", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            try:
                if self.leading:
                    await self._hold()
                else:
                    await asyncio.sleep(self._retry)
                    await self._attempt()
            except Exception:
                # A bug must not end the election: this replica would lead unchecked, or
                # never again. Let go of the lead and go round.
                log.exception("replica %s: leader election failed; starting over", self.replica)
                await self._step_down()
                await self._drop_lock()

    async def _attempt(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            if self._lock is None or self._lock.closed:
                self._lock = await LeaderLock.connect(
                    self._db.url, replica=self.replica, within=self._check
                )
            if not await self._lock.try_acquire():
                return
            await self._lock.listen()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning(
                "replica %s could not try for the lead (%s); trying again in %gs",
                self.replica,
                type(exc).__name__,
                self._retry,
            )
            await self._drop_lock()
            return
        await self._lead()

    async def _hold(self) -> None:
        """Serve wake-ups and prove the lock connection until it fails; then step down."""
        lock = self._lock
        assert lock is not None
        try:
            while True:
                async for topic in lock.wakeups(within=self._check):
                    self._dispatch(topic)
                if not await lock.alive(within=self._check):
                    reason = "its lock connection stopped answering"
                    break
        except (psycopg.Error, OSError) as exc:
            reason = f"its lock connection failed ({type(exc).__name__})"
        log.warning("replica %s steps down: %s", self.replica, reason)
        await self._step_down()
        await self._drop_lock()

    def _dispatch(self, payload: str) -> None:
        try:
            topic = Wakeup(payload)
        except ValueError:
            log.warning("ignoring an unknown wake-up %r", payload[:40])
            return
        try:
            self._on_wakeup(topic)
        except Exception:
            log.exception("handling the wake-up %s failed", topic)

    async def _lead(self) -> None:
        self._role = Role.LEADER
        metrics.set_leader(True)
        log.info("replica %s leads: running the scheduled jobs and the outbox", self.replica)
        try:
            await self._on_elected()
        except Exception:
            # Hold no lock we cannot use: another replica may manage better.
            log.exception("replica %s could not start leading; stepping down", self.replica)
            await self._step_down()
            await self._drop_lock()

    async def _step_down(self) -> None:
        if not self.leading:
            return
        self._role = Role.FOLLOWER
        metrics.set_leader(False)
        try:
            await self._on_deposed()
        except Exception:
            log.exception("replica %s failed to stop its jobs cleanly", self.replica)

    async def _drop_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await lock.close()
