"""When each subscriber's digest is due, which period it covers, and the job that sends it.

Times are local to each subscription (an IANA zone). The digest of local date *D* is due at
*D* at the subscription's time; it covers the time since the previous day's send time (a
daily digest) or, on Mondays, since the previous Monday's (the weekly report, which replaces
that day's daily digest and carries week-over-week changes). Because the day is computed in
local time and ``last_sent_on`` stores that local date, a daylight-saving change moves the
send with the wall clock and never sends a day twice or skips one; a process that was down
at send time sends the latest missed digest once when it comes back, never a backlog.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from storage import digest_subscriptions as store
from storage.db import Database
from storage.models import DigestSubscription
from storage.types import utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)  # longer than any send; a dead sender's day is retried after it
RETRY_AFTER = timedelta(minutes=5)
MAX_ATTEMPTS = 3
WEEKLY_WEEKDAY = 0  # Monday


class DigestKind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class DigestWindow:
    """The period a digest covers and the one it is compared with, in UTC."""

    kind: DigestKind
    day: date  # the subscriber's local date the digest is for
    start: datetime
    end: datetime
    previous_start: datetime
    previous_end: datetime


def occurrence(day: date, send_minute: int, tz: str) -> datetime:
    """The UTC moment of ``day`` at the local send time.

    A local time that does not exist (the hour skipped in spring) lands just after the gap; one
    that happens twice (the hour repeated in autumn) is the first of the two (fold=0).
    """
    hour, minute = divmod(send_minute, 60)
    local = datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def last_due_day(now: datetime, send_minute: int, tz: str) -> date:
    """The latest local date whose send time is at or before ``now``."""
    today = now.astimezone(ZoneInfo(tz)).date()
    if occurrence(today, send_minute, tz) <= now:
        return today
    return today - timedelta(days=1)


def is_due(subscription: DigestSubscription, now: datetime) -> date | None:
    """The local date to send for now, or None when nothing is owed."""
    day = last_due_day(now, subscription.send_minute, subscription.tz)
    if subscription.last_sent_on is not None and subscription.last_sent_on >= day:
        return None
    return day


def window_for(day: date, send_minute: int, tz: str, *, weekly: bool | None = None) -> DigestWindow:
    """The period of the digest of local ``day``; weekly on Mondays unless ``weekly`` says."""
    is_weekly = day.weekday() == WEEKLY_WEEKDAY if weekly is None else weekly
    span = 7 if is_weekly else 1
    end = occurrence(day, send_minute, tz)
    start = occurrence(day - timedelta(days=span), send_minute, tz)
    previous_start = occurrence(day - timedelta(days=2 * span), send_minute, tz)
    return DigestWindow(
        kind=DigestKind.WEEKLY if is_weekly else DigestKind.DAILY,
        day=day,
        start=start,
        end=end,
        previous_start=previous_start,
        previous_end=start,
    )


def window_now(now: datetime, send_minute: int, tz: str, *, weekly: bool = False) -> DigestWindow:
    """For ``digest now`` and ``preview``: the day (or week) up to this moment."""
    span = timedelta(days=7 if weekly else 1)
    local_day = now.astimezone(ZoneInfo(tz)).date()
    return DigestWindow(
        kind=DigestKind.WEEKLY if weekly else DigestKind.DAILY,
        day=local_day,
        start=now - span,
        end=now,
        previous_start=now - 2 * span,
        previous_end=now - span,
    )


Sender = Callable[[DigestSubscription, DigestWindow, int], Awaitable[None]]


class DigestScheduler:
    """The once-a-minute job: claim each due subscription and send its digest.

    ``send(subscription, window, attempt)`` raises on failure; the day is then retried after
    ``RETRY_AFTER`` (by whichever process claims it) up to ``MAX_ATTEMPTS`` times.
    """

    def __init__(
        self, db: Database, *, send: Sender, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._send = send
        self._clock = clock

    async def tick(self) -> int:
        """Send what is due now; returns how many digests went out."""
        now = self._clock()
        async with self._db.session() as session:
            subscriptions = await store.list_subscriptions(session)
        sent = 0
        for subscription in subscriptions:
            try:
                day = is_due(subscription, now)
            except (ValueError, KeyError):
                log.exception("digest subscription %s has a bad time zone", subscription.id)
                continue
            if day is None or subscription.id is None:
                continue
            if await self._send_one(subscription, day, now):
                sent += 1
        return sent

    async def _send_one(self, subscription: DigestSubscription, day: date, now: datetime) -> bool:
        assert subscription.id is not None
        async with self._db.session() as session:
            claimed = await store.claim(
                session, subscription_id=subscription.id, day=day, now=now, lease=LEASE
            )
        if not claimed:
            return False  # done already, or another process is sending it
        async with self._db.session() as session:
            current = await store.get_subscription(session, target=subscription.target)
        if current is None:
            return False  # unsubscribed in between
        window = window_for(day, current.send_minute, current.tz)
        try:
            await self._send(current, window, current.attempts)
        except Exception as exc:
            return await self._failed(current, day, exc)
        async with self._db.session() as session:
            await store.mark_sent(session, subscription_id=subscription.id, day=day, now=now)
        return True

    async def _failed(self, subscription: DigestSubscription, day: date, exc: Exception) -> bool:
        assert subscription.id is not None
        error = f"{type(exc).__name__}: {exc}"
        now = self._clock()
        async with self._db.session() as session:
            if subscription.attempts >= MAX_ATTEMPTS:
                log.error(
                    "digest %s for %s failed %d times; skipping that day",
                    subscription.id,
                    day,
                    subscription.attempts,
                    exc_info=exc,
                )
                await store.mark_sent(
                    session, subscription_id=subscription.id, day=day, now=now, error=error
                )
            else:
                log.warning(
                    "digest %s for %s failed (attempt %d); retrying",
                    subscription.id,
                    day,
                    subscription.attempts,
                    exc_info=exc,
                )
                await store.release(
                    session,
                    subscription_id=subscription.id,
                    retry_at=now + RETRY_AFTER,
                    error=error,
                )
        return False
