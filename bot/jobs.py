"""The names of the scheduled jobs the elected leader runs (bot/runtime.py schedules them)."""

from __future__ import annotations

from enum import StrEnum


class JobId(StrEnum):
    """Stable names: they key ``EARFUL_JOB_INTERVALS``, the ``job_run`` table and the status."""

    POLL = "poll_due_watches"
    PRUNE_POSTS = "prune_posts"
    SPIKE_CHECK = "spike_check"
    SHARE_OF_VOICE = "share_of_voice"
    SLA_TIMERS = "sla_timers"
    DIGESTS = "digests"
    PRUNE_JOB_RUNS = "prune_job_runs"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    JobId.POLL: "poll due watches",
    JobId.PRUNE_POSTS: "forget old fetched posts",
    JobId.SPIKE_CHECK: "spike check",
    JobId.SHARE_OF_VOICE: "share of voice",
    JobId.SLA_TIMERS: "SLA timers",
    JobId.DIGESTS: "digests",
    JobId.PRUNE_JOB_RUNS: "forget old job runs",
}
