"""Spike (crisis) detection: each watch's last hour against its own previous week.

Run by the scheduler every few minutes. When a test in :mod:`watchers.spikes` fires and the
watch has no open spike, a :class:`Spike` row is opened and one crisis alert per target
department is put in the outbox, in the same transaction. The open row is the memory: while it
is open the watch never alerts again, across restarts and replicas, and it is closed once every
test says the window has subsided, so that a later burst is a new spike.

One open spike per watch, whichever test fired: a burst of angry mentions is both a volume and
a negative-share spike, and PR should hear about it once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from storage import outbox, stats
from storage.db import Database
from storage.models import Cluster, Mention, OutboxKind, Spike
from storage.types import utcnow
from watchers.departments import Department
from watchers.spikes import (
    SPIKE_P_VALUE,
    SpikeKind,
    SpikeTest,
    negative_test,
    spike_threshold,
    volume_test,
)

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
BASELINE = timedelta(days=7)  # the hours before the window; the window itself is left out
CRISIS_DEPARTMENTS = (Department.PR, Department.EXEC)
EXAMPLE_COUNT = 5

_HOUR = timedelta(hours=1)
_BASELINE_HOURS = int(BASELINE / _HOUR)


@dataclass
class WatchHours:
    """One watch's counts per hour: the baseline's hours, then the window as the last one."""

    total: list[int]
    negative: list[int]


@dataclass(frozen=True)
class CrisisData:
    """What a crisis alert shows, loaded for delivery."""

    spike: Spike
    examples: list[Mention]
    cluster: Cluster | None
    lead: Mention | None


def tests_for(
    hours: WatchHours, *, first_hour: int = 0, threshold: float = SPIKE_P_VALUE
) -> list[SpikeTest]:
    """Both tests for one watch, the one to report first; ``first_hour`` skips baseline hours
    before the watch existed.

    The negative-share test comes first: when both fire, "mostly negative" is what makes a
    burst a crisis rather than, say, a launch going well, so it is the one the alert reports.
    """
    baseline = hours.total[first_hour:_BASELINE_HOURS]
    negatives = hours.negative[first_hour:_BASELINE_HOURS]
    current, current_negative = hours.total[_BASELINE_HOURS], hours.negative[_BASELINE_HOURS]
    return [
        negative_test(
            baseline_total=sum(baseline),
            baseline_negative=sum(negatives),
            current_total=current,
            current_negative=current_negative,
            threshold=threshold,
        ),
        volume_test(baseline, current, threshold=threshold),
    ]


def tests_for_all(
    watches: Sequence[tuple[WatchHours, int]], *, threshold: float
) -> list[list[SpikeTest]]:
    """``tests_for`` of each (hours, first hour) pair: one call, so one trip to a worker."""
    return [tests_for(hours, first_hour=first, threshold=threshold) for hours, first in watches]


class SpikeDetector:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_outbox: Callable[[], None] = lambda: None,
        executor: Executor | None = None,
    ) -> None:
        """``executor``: where the statistics run. The runtime passes its scoring pool, so
        scipy is loaded there and never in the process that answers Slack (bench/memory.py);
        None runs them in a thread of this process."""
        self._db = db
        self._clock = clock
        self._on_outbox = on_outbox
        self._executor = executor

    async def check(self) -> list[Spike]:
        """Open spikes that started, close those that subsided; returns the opened ones."""
        # Whole seconds, because SQLite's hour bucketing drops fractions of a second; rounded
        # up, so mentions stored earlier in this same second are inside the window.
        clock = self._clock()
        now = clock.replace(microsecond=0)
        if now < clock:
            now += timedelta(seconds=1)
        window_start = now - WINDOW
        baseline_start = window_start - BASELINE
        opened: list[Spike] = []
        async with self._db.session() as session:
            await stats.lock_spike_check(session)
            hours = await self._hours(session, start=baseline_start, end=now)
            open_now: dict[str, list[Spike]] = defaultdict(list)
            for spike in await stats.open_spikes(session):
                open_now[spike.watch_name].append(spike)
            # Only a watch with mentions in the window can spike; one with an open spike needs
            # checking too, to close it once its mentions have stopped.
            names = {n for n, h in hours.items() if h.total[_BASELINE_HOURS]}
            names |= set(open_now)
            created = await stats.watch_created_at(session, names=names)
            threshold = spike_threshold(len(names) * len(SpikeKind))
            ordered = sorted(names)
            inputs = [
                (
                    hours.get(name)
                    or WatchHours([0] * (_BASELINE_HOURS + 1), [0] * (_BASELINE_HOURS + 1)),
                    _first_full_hour(created.get(name), baseline_start),
                )
                for name in ordered
            ]
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._executor, partial(tests_for_all, threshold=threshold), inputs
            )
            for name, tests in zip(ordered, results, strict=True):
                current = open_now.get(name, [])
                if current and all(test.subsided for test in tests):
                    for spike in current:
                        assert spike.id is not None
                        await stats.close_spike(session, spike_id=spike.id, ended_at=now)
                        log.info("spike %s (%s, %s) is over", spike.id, name, spike.kind)
                elif not current:
                    firing = next((test for test in tests if test.is_spike), None)
                    if firing is not None:
                        opened.append(
                            await self._open(session, name, firing, start=window_start, end=now)
                        )
        if opened:
            self._on_outbox()
        return opened

    async def _hours(
        self, session: AsyncSession, *, start: datetime, end: datetime
    ) -> dict[str, WatchHours]:
        size = _BASELINE_HOURS + 1  # the baseline's hours, then the window
        hours: dict[str, WatchHours] = {}
        for row in await stats.hourly_counts(session, start=start, end=end):
            if not 0 <= row.hour < size:
                continue  # a found_at on the very edge, rounded out of the range
            watch = hours.setdefault(row.watch_name, WatchHours([0] * size, [0] * size))
            watch.total[row.hour] += row.total
            watch.negative[row.hour] += row.negative
        return hours

    async def _open(
        self, session: AsyncSession, name: str, test: SpikeTest, *, start: datetime, end: datetime
    ) -> Spike:
        examples = await stats.top_examples(
            session,
            watch_name=name,
            start=start,
            end=end,
            negative_only=test.kind == SpikeKind.NEGATIVE,
            limit=EXAMPLE_COUNT,
        )
        cluster_id = await stats.biggest_cluster(session, watch_name=name, start=start, end=end)
        spike = await stats.add_spike(
            session,
            spike=Spike(
                watch_name=name,
                kind=test.kind,
                started_at=end,
                observed=test.observed,
                expected=test.expected,
                p_value=test.p_value,
                example_mention_ids=[m.id for m in examples if m.id is not None],
                cluster_id=cluster_id,
            ),
        )
        for department in CRISIS_DEPARTMENTS:
            outbox.enqueue(
                session,
                kind=OutboxKind.CRISIS,
                mention_id=None,
                payload={"spike_id": spike.id, "department": department.value},
                # Due now by this detector's clock, not the wall clock's, so that a delivery on
                # the same clock finds it due (``end`` is rounded up to a whole second).
                not_before=self._clock(),
            )
        log.warning("spike %s opened for %s (%s): %s", spike.id, name, test.kind, test.reason)
        return spike


def _first_full_hour(created_at: datetime | None, baseline_start: datetime) -> int:
    """The first baseline hour the watch existed for in full (0 for an older or unknown one)."""
    if created_at is None or created_at <= baseline_start:
        return 0
    return min(math.ceil((created_at - baseline_start) / _HOUR), _BASELINE_HOURS)


async def load_crisis(db: Database, *, spike_id: int) -> CrisisData | None:
    """The spike with its example mentions and its biggest story; None if it is gone."""
    async with db.session() as session:
        spike = await stats.get_spike(session, spike_id=spike_id)
        if spike is None:
            return None
        examples = await stats.mentions_by_ids(session, ids=spike.example_mention_ids)
        cluster = (
            await session.get(Cluster, spike.cluster_id) if spike.cluster_id is not None else None
        )
        leads = []
        if cluster is not None and cluster.lead_mention_id is not None:
            leads = await stats.mentions_by_ids(session, ids=[cluster.lead_mention_id])
        lead = leads[0] if leads else None
        return CrisisData(spike=spike, examples=examples, cluster=cluster, lead=lead)
