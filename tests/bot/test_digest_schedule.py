"""When digests are due: local time, daylight saving, restarts, several processes, failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.digest_schedule import (
    LEASE,
    MAX_ATTEMPTS,
    RETRY_AFTER,
    DigestKind,
    DigestScheduler,
    DigestWindow,
    is_due,
    last_due_day,
    occurrence,
    window_for,
)
from storage import digest_subscriptions as store
from storage.db import Database
from storage.models import DigestSubscription

EIGHT = 8 * 60


class Clock:
    """A clock the test moves by hand; nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Outbox:
    """What the scheduler asked to send, in order; optionally failing the first n sends."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, DigestWindow, int]] = []
        self.failures_left = fail_first

    async def __call__(self, sub: DigestSubscription, window: DigestWindow, attempt: int) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("Slack said no")
        self.sent.append((sub.target, window, attempt))


async def subscribe(
    db: Database, *, target: str, tz: str, now: datetime, minute: int = EIGHT
) -> None:
    async with db.session() as session:
        await store.subscribe(
            session,
            target=target,
            is_channel=target.startswith("C"),
            send_minute=minute,
            tz=tz,
            departments=(),
            created_by="U0ADMIN",
            done_through=last_due_day(now, minute, tz),
            now=now,
        )


async def run_until(
    scheduler: DigestScheduler, clock: Clock, end: datetime, step: timedelta
) -> None:
    while clock.now < end:
        clock.now += step
        await scheduler.tick()


# ---------------------------------------------------------------- pure time arithmetic


def test_occurrence_follows_the_wall_clock_across_daylight_saving() -> None:
    # London: GMT until 29 March 2026, then BST (UTC+1) until 25 October 2026.
    assert occurrence(date(2026, 3, 28), EIGHT, "Europe/London") == datetime(
        2026, 3, 28, 8, tzinfo=UTC
    )
    assert occurrence(date(2026, 3, 29), EIGHT, "Europe/London") == datetime(
        2026, 3, 29, 7, tzinfo=UTC
    )
    assert occurrence(date(2026, 10, 25), EIGHT, "Europe/London") == datetime(
        2026, 10, 25, 8, tzinfo=UTC
    )
    # New York and Tokyo on the same UTC day.
    assert occurrence(date(2026, 11, 2), EIGHT, "America/New_York") == datetime(
        2026, 11, 2, 13, tzinfo=UTC
    )
    assert occurrence(date(2026, 11, 2), EIGHT, "Asia/Tokyo") == datetime(
        2026, 11, 1, 23, tzinfo=UTC
    )


def test_a_send_time_inside_the_spring_gap_goes_out_after_it() -> None:
    # 01:30 does not exist in London on 29 March 2026 (01:00 → 02:00).
    moment = occurrence(date(2026, 3, 29), 90, "Europe/London")
    assert moment == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 BST, just after the gap
    assert last_due_day(moment - timedelta(seconds=1), 90, "Europe/London") == date(2026, 3, 28)
    assert last_due_day(moment, 90, "Europe/London") == date(2026, 3, 29)


def test_the_digest_day_is_the_local_one() -> None:
    # 23:30 UTC on 1 November is 08:30 on 2 November in Tokyo: that day is due there.
    now = datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    assert last_due_day(now, EIGHT, "Asia/Tokyo") == date(2026, 11, 2)
    assert last_due_day(now, EIGHT, "America/Los_Angeles") == date(2026, 11, 1)


def test_daily_window_is_since_yesterdays_send_and_23_hours_on_the_spring_change() -> None:
    window = window_for(date(2026, 3, 29), EIGHT, "Europe/London")
    assert window.kind is DigestKind.DAILY
    assert window.end == datetime(2026, 3, 29, 7, tzinfo=UTC)
    assert window.start == datetime(2026, 3, 28, 8, tzinfo=UTC)
    assert window.end - window.start == timedelta(hours=23)
    assert window.previous_end == window.start
    assert window.previous_start == datetime(2026, 3, 27, 8, tzinfo=UTC)


def test_mondays_get_the_weekly_report_against_the_week_before() -> None:
    window = window_for(date(2026, 11, 23), EIGHT, "UTC")  # a Monday
    assert window.kind is DigestKind.WEEKLY
    assert window.start == datetime(2026, 11, 16, 8, tzinfo=UTC)
    assert window.previous_start == datetime(2026, 11, 9, 8, tzinfo=UTC)
    assert window.previous_end == window.start
    assert window_for(date(2026, 11, 24), EIGHT, "UTC").kind is DigestKind.DAILY


def test_is_due_once_the_local_time_has_passed_and_not_again_that_day() -> None:
    sub = DigestSubscription(target="U1", send_minute=EIGHT, tz="UTC", created_by="U1")
    sub.last_sent_on = date(2026, 11, 23)
    assert is_due(sub, datetime(2026, 11, 24, 7, 59, tzinfo=UTC)) is None
    assert is_due(sub, datetime(2026, 11, 24, 8, 0, tzinfo=UTC)) == date(2026, 11, 24)
    sub.last_sent_on = date(2026, 11, 24)
    assert is_due(sub, datetime(2026, 11, 24, 23, 59, tzinfo=UTC)) is None


# ---------------------------------------------------------------- the scheduler on a database


async def test_sends_at_local_eight_every_day_across_the_autumn_change(db: Database) -> None:
    clock = Clock(datetime(2026, 10, 23, 12, tzinfo=UTC))
    await subscribe(db, target="U0ALICE", tz="Europe/London", now=clock.now)
    await subscribe(db, target="U0BOB", tz="America/New_York", now=clock.now)
    outbox = Outbox()
    scheduler = DigestScheduler(db, send=outbox, clock=clock)
    sent_at: list[tuple[str, datetime]] = []

    async def record() -> None:
        before = len(outbox.sent)
        await scheduler.tick()
        sent_at.extend((t, clock.now) for t, _, _ in outbox.sent[before:])

    while clock.now < datetime(2026, 10, 27, 12, tzinfo=UTC):
        clock.now += timedelta(minutes=15)
        await record()

    alice = [at for target, at in sent_at if target == "U0ALICE"]
    # 08:00 BST is 07:00 UTC until 25 October, 08:00 GMT is 08:00 UTC from then on.
    assert alice == [
        datetime(2026, 10, 24, 7, tzinfo=UTC),
        datetime(2026, 10, 25, 8, tzinfo=UTC),
        datetime(2026, 10, 26, 8, tzinfo=UTC),
        datetime(2026, 10, 27, 8, tzinfo=UTC),
    ]
    bob = [at for target, at in sent_at if target == "U0BOB"]
    # Subscribed at 08:00 EDT on the 23rd, that day's time had come: the first is the 24th's.
    assert bob == [
        datetime(2026, 10, 24, 12, tzinfo=UTC),
        datetime(2026, 10, 25, 12, tzinfo=UTC),
        datetime(2026, 10, 26, 12, tzinfo=UTC),
        datetime(2026, 10, 27, 12, tzinfo=UTC),
    ]
    days = [w.day for t, w, _ in outbox.sent if t == "U0ALICE"]
    assert days == [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26), date(2026, 10, 27)]
    # The 25th is the long day: 25 hours since the 24th's digest.
    window = next(w for t, w, _ in outbox.sent if t == "U0ALICE" and w.day == date(2026, 10, 25))
    assert window.end - window.start == timedelta(hours=25)
    # The 26th is a Monday: the weekly report.
    kinds = {w.day: w.kind for t, w, _ in outbox.sent if t == "U0ALICE"}
    assert kinds[date(2026, 10, 26)] is DigestKind.WEEKLY
    assert kinds[date(2026, 10, 27)] is DigestKind.DAILY


async def test_subscribing_after_todays_time_waits_for_tomorrow(db: Database) -> None:
    clock = Clock(datetime(2026, 11, 24, 9, tzinfo=UTC))
    await subscribe(db, target="U0ALICE", tz="UTC", now=clock.now)
    outbox = Outbox()
    scheduler = DigestScheduler(db, send=outbox, clock=clock)
    assert await scheduler.tick() == 0
    clock.now = datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert await scheduler.tick() == 1
    assert outbox.sent[0][1].day == date(2026, 11, 25)


async def test_a_restart_does_not_send_again_and_downtime_sends_once(db: Database) -> None:
    clock = Clock(datetime(2026, 11, 23, 7, tzinfo=UTC))
    await subscribe(db, target="U0ALICE", tz="UTC", now=clock.now)
    outbox = Outbox()
    clock.now = datetime(2026, 11, 23, 8, 1, tzinfo=UTC)
    assert await DigestScheduler(db, send=outbox, clock=clock).tick() == 1
    # A new process (a restart) on the same database, the same day: nothing more.
    clock.now = datetime(2026, 11, 23, 8, 2, tzinfo=UTC)
    assert await DigestScheduler(db, send=outbox, clock=clock).tick() == 0
    # Down from Monday to Thursday 10:00: one digest (Thursday's) on start-up, not three.
    clock.now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    restarted = DigestScheduler(db, send=outbox, clock=clock)
    assert await restarted.tick() == 1
    assert await restarted.tick() == 0
    assert [w.day for _, w, _ in outbox.sent] == [date(2026, 11, 23), date(2026, 11, 26)]
    # Down over Friday's time and back at 07:00 on Saturday: Friday's goes out once, at once,
    # and Saturday's at 08:00.
    clock.now = datetime(2026, 11, 28, 7, tzinfo=UTC)
    assert await DigestScheduler(db, send=outbox, clock=clock).tick() == 1
    clock.now = datetime(2026, 11, 28, 8, tzinfo=UTC)
    assert await DigestScheduler(db, send=outbox, clock=clock).tick() == 1
    assert [w.day for _, w, _ in outbox.sent][2:] == [date(2026, 11, 27), date(2026, 11, 28)]


async def test_several_processes_ticking_at_once_send_once(db: Database) -> None:
    clock = Clock(datetime(2026, 11, 24, 7, tzinfo=UTC))
    for target in ("U0ALICE", "U0BOB", "C0EXECS"):
        await subscribe(db, target=target, tz="UTC", now=clock.now)
    clock.now = datetime(2026, 11, 24, 8, tzinfo=UTC)
    outbox = Outbox()
    others = [Database(db.url) for _ in range(3)]
    try:
        schedulers = [DigestScheduler(d, send=outbox, clock=clock) for d in [db, *others]]
        counts = await asyncio.gather(*(s.tick() for s in schedulers))
    finally:
        for other in others:
            await other.dispose()
    assert sum(counts) == 3
    assert sorted(t for t, _, _ in outbox.sent) == ["C0EXECS", "U0ALICE", "U0BOB"]


async def test_a_failed_send_is_retried_later_then_given_up(db: Database) -> None:
    clock = Clock(datetime(2026, 11, 24, 7, tzinfo=UTC))
    await subscribe(db, target="U0ALICE", tz="UTC", now=clock.now)
    outbox = Outbox(fail_first=1)
    scheduler = DigestScheduler(db, send=outbox, clock=clock)
    clock.now = datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert await scheduler.tick() == 0
    clock.now += RETRY_AFTER - timedelta(seconds=1)
    assert await scheduler.tick() == 0  # still backing off
    clock.now += timedelta(seconds=1)
    assert await scheduler.tick() == 1
    # The retry says it is one: the sender looks for an earlier attempt's message first.
    assert [(w.day, attempt) for _, w, attempt in outbox.sent] == [(date(2026, 11, 24), 2)]

    outbox.failures_left = MAX_ATTEMPTS
    clock.now = datetime(2026, 11, 25, 8, tzinfo=UTC)
    for _ in range(MAX_ATTEMPTS):
        await scheduler.tick()
        clock.now += RETRY_AFTER
    assert await scheduler.tick() == 0
    async with db.session() as session:
        sub = await store.get_subscription(session, target="U0ALICE")
    assert sub is not None
    assert sub.last_sent_on == date(2026, 11, 25)  # given up on: tomorrow is a new day
    assert sub.last_error is not None and "Slack said no" in sub.last_error
    assert len(outbox.sent) == 1


async def test_a_dead_senders_lease_lets_another_process_take_over(db: Database) -> None:
    clock = Clock(datetime(2026, 11, 24, 8, tzinfo=UTC))
    await subscribe(db, target="U0ALICE", tz="UTC", now=datetime(2026, 11, 24, 7, tzinfo=UTC))
    sub_id = await _id(db, "U0ALICE")
    async with db.session() as session:  # a process claimed the day, then died
        assert await store.claim(
            session, subscription_id=sub_id, day=date(2026, 11, 24), now=clock.now, lease=LEASE
        )
    outbox = Outbox()
    scheduler = DigestScheduler(db, send=outbox, clock=clock)
    assert await scheduler.tick() == 0
    clock.now += LEASE
    assert await scheduler.tick() == 1
    assert outbox.sent[0][2] == 2  # the second attempt at that day


async def _id(db: Database, target: str) -> int:
    async with db.session() as session:
        sub = await store.get_subscription(session, target=target)
    assert sub is not None and sub.id is not None
    return sub.id


async def test_resubscribing_with_a_later_time_does_not_resend_today(db: Database) -> None:
    clock = Clock(datetime(2026, 11, 24, 7, tzinfo=UTC))
    await subscribe(db, target="U0ALICE", tz="UTC", now=clock.now)
    outbox = Outbox()
    scheduler = DigestScheduler(db, send=outbox, clock=clock)
    clock.now = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert await scheduler.tick() == 1
    await subscribe(db, target="U0ALICE", tz="UTC", now=clock.now, minute=9 * 60)
    clock.now = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    assert await scheduler.tick() == 0
    clock.now = datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert await scheduler.tick() == 1


@pytest.mark.parametrize("tz", ["Europe/London", "America/New_York", "Australia/Sydney"])
def test_one_digest_per_local_day_over_a_year_of_clock_changes(tz: str) -> None:
    """The due rule alone (the database tests above cover the claim), over every day of 2026."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # 02:30 does not exist on the spring-forward day and happens twice in autumn.
    sub = DigestSubscription(target="U1", send_minute=150, tz=tz, created_by="U1")
    sub.last_sent_on = last_due_day(start, 150, tz)
    sent: list[date] = []
    every_day = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    for day in every_day:
        due = occurrence(day, 150, tz)
        # Just before, at, and an hour after (when a repeated autumn hour comes round again).
        for offset in (-1, 0, 60):
            owed = is_due(sub, due + timedelta(minutes=offset))
            if owed is not None:
                sent.append(owed)
                sub.last_sent_on = owed
    assert sent == [day for day in every_day if occurrence(day, 150, tz) > start]
