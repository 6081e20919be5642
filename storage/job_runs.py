"""Runs of the scheduled jobs: recorded by the leader, read by the next one and by the status."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import JobRun

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

ERROR_CHARS = 500


def record_run(
    session: AsyncSession,
    *,
    job: str,
    replica: str,
    started_at: datetime,
    finished_at: datetime,
    error: str | None = None,
) -> None:
    session.add(
        JobRun(
            job=job,
            replica=replica,
            started_at=started_at,
            finished_at=finished_at,
            error=error[:ERROR_CHARS] if error is not None else None,
        )
    )


async def latest_runs(session: AsyncSession) -> dict[str, JobRun]:
    """Each job's most recent run (by start), keyed by job name."""
    latest = (
        select(col(JobRun.job), func.max(col(JobRun.started_at)).label("started_at"))
        .group_by(col(JobRun.job))
        .subquery()
    )
    stmt = (
        select(JobRun)
        .join(
            latest,
            (col(JobRun.job) == latest.c.job) & (col(JobRun.started_at) == latest.c.started_at),
        )
        .order_by(col(JobRun.job), col(JobRun.id).desc())
    )
    runs: dict[str, JobRun] = {}
    for run in (await session.execute(stmt)).scalars():
        runs.setdefault(run.job, run)
    return runs


async def runs_since(session: AsyncSession, *, since: datetime) -> list[JobRun]:
    stmt = (
        select(JobRun)
        .where(col(JobRun.started_at) >= since)
        .order_by(col(JobRun.job), col(JobRun.started_at))
    )
    return list((await session.execute(stmt)).scalars())


async def prune_runs(session: AsyncSession, *, older_than: datetime) -> int:
    result = cast(
        "CursorResult[Any]",
        await session.execute(delete(JobRun).where(col(JobRun.started_at) < older_than)),
    )
    return int(result.rowcount or 0)
