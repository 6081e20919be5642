"""Which replica leads and when each scheduled job last ran, for ``/earful status``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.jobs import JobId
from bot.mrkdwn import escape
from storage import job_runs as job_run_store
from storage import leader_lock
from storage.models import JobRun


@dataclass(frozen=True)
class SchedulerStatus:
    leader: str | None
    runs: Mapping[str, JobRun]


async def load(session: AsyncSession) -> SchedulerStatus:
    runs = await job_run_store.latest_runs(session)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        leader = await leader_lock.current_leader(session)
    else:
        # SQLite has one process, always the leader: the one that ran the latest job.
        latest = max(runs.values(), key=lambda run: run.started_at, default=None)
        leader = latest.replica if latest is not None else None
    return SchedulerStatus(leader=leader, runs=runs)


def summary(status: SchedulerStatus) -> str:
    """One mrkdwn paragraph: the leader, then each job's last run (failures flagged)."""
    if status.leader is not None:
        head = f"Scheduled jobs and delivery run on `{escape(status.leader)}`"
    else:
        head = ":warning: No replica leads right now: scheduled jobs and delivery are waiting"
    parts = []
    for job in JobId:
        run = status.runs.get(job.value)
        if run is None:
            parts.append(f"{job.label}: not yet")
            continue
        failed = " :warning: failed" if run.error else ""
        parts.append(f"{job.label} {_ago(run.started_at)}{failed}")
    return head + "\n" + " · ".join(parts)


def _ago(moment: datetime) -> str:
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{ago}}|{fallback}>"
