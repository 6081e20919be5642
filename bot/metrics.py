"""Prometheus metrics for one Earful process, served at ``/metrics`` (see bot/server.py).

Each replica exposes its own numbers; Prometheus adds them up. Labels are kept to small, fixed
vocabularies (source types, departments, priorities, Slack method names and error codes):
never watch names, user ids, URLs or text, which would grow the series without bound.

Recording never raises: a metrics bug must not break the poll, post or request it measures.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

from watchers.departments import Department, Priority
from watchers.registry import SOURCE_TYPES, source_type

log = logging.getLogger(__name__)

OTHER = "other"  # the label for anything outside a known vocabulary
# Prometheus scrapes every 15-60 s; several scrapers within this share one outbox count.
OUTBOX_DEPTH_MAX_AGE = 5.0

POLLS = Counter(
    "earful_polls",
    "Polls of a watch's source, by source type and outcome (ok or error).",
    ["source", "outcome"],
)
SOURCE_ERRORS = Counter(
    "earful_source_errors",
    "Polls that failed, by source type (timeouts, HTTP errors, malformed answers, bugs).",
    ["source"],
)
MENTIONS_STORED = Counter(
    "earful_mentions_stored",
    "New mentions stored, by the department they were routed to and their priority.",
    ["department", "priority"],
)
OUTBOX_PENDING = Gauge(
    "earful_outbox_pending",
    "Slack posts and updates waiting in the outbox (read from the database at scrape time).",
)
SLACK_RETRIES = Counter(
    "earful_slack_retries",
    "Slack Web API calls retried by the client, by method and reason "
    "(rate_limited, server_error, connection).",
    ["method", "reason"],
)
SLACK_API_ERRORS = Counter(
    "earful_slack_api_errors",
    "Slack Web API calls that failed after any retries, by method and Slack's error code.",
    ["method", "error"],
)
ACK_SECONDS = Histogram(
    "earful_slack_ack_seconds",
    "Time from receiving a Slack request at /slack/events to answering it, by request type.",
    ["request_type"],
    # Slack gives up after 3 s; the interesting detail is well below that.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
LEADER = Gauge(
    "earful_leader",
    "1 while this replica is the elected leader running the scheduled jobs, else 0.",
)

REQUEST_TYPES = frozenset(
    {
        "command",
        "block_actions",
        "view_submission",
        "view_closed",
        "block_suggestion",
        "shortcut",
        "message_action",
        "event",
        "url_verification",
        "ssl_check",
    }
)
_DEPARTMENTS = frozenset(d.value for d in Department)
_PRIORITIES = frozenset(p.value for p in Priority)
_SLACK_METHOD = re.compile(r"^[a-z]+(?:\.[A-Za-z]+){1,3}$")
_SLACK_ERROR = re.compile(r"^[a-z0-9_]{1,60}$")


@contextmanager
def _never_raise(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("recording metric %s failed", what)


def _known(value: object, vocabulary: Iterable[str]) -> str:
    return value if isinstance(value, str) and value in vocabulary else OTHER


def source_label(spec: str) -> str:
    """``rss:https://…`` → ``rss``: the type only, never the user-supplied argument."""
    return _known(source_type(spec), SOURCE_TYPES)


def slack_method_label(url_or_method: str) -> str:
    """``https://slack.com/api/chat.postMessage?x=1`` → ``chat.postMessage``."""
    method = url_or_method.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return method if _SLACK_METHOD.match(method) else OTHER


class PollResult(Protocol):
    @property
    def source(self) -> str: ...
    @property
    def error(self) -> str | None: ...


class StoredMention(Protocol):
    @property
    def department(self) -> str: ...
    @property
    def priority(self) -> str: ...


def polls_finished(outcomes: Iterable[PollResult]) -> None:
    with _never_raise("polls"):
        for outcome in outcomes:
            source = source_label(outcome.source)
            POLLS.labels(source=source, outcome="ok" if outcome.error is None else "error").inc()
            if outcome.error is not None:
                SOURCE_ERRORS.labels(source=source).inc()


def mentions_stored(mentions: Iterable[StoredMention]) -> None:
    with _never_raise("mentions stored"):
        for mention in mentions:
            MENTIONS_STORED.labels(
                department=_known(mention.department, _DEPARTMENTS),
                priority=_known(mention.priority, _PRIORITIES),
            ).inc()


def slack_retry(*, url: str, reason: str) -> None:
    with _never_raise("slack retry"):
        SLACK_RETRIES.labels(method=slack_method_label(url), reason=reason).inc()


def slack_error_retried(response: Any) -> None:
    """The outbox will try a call again after Slack answered it with ``response`` (it retries
    429s and 5xx itself rather than in the client): counted like the client's retries."""
    with _never_raise("outbox slack retry"):
        if response.status_code == 429 or response.get("error") == "ratelimited":
            reason = "rate_limited"
        elif response.status_code >= 500:
            reason = "server_error"
        else:
            return  # an API error such as channel_not_found: counted in SLACK_API_ERRORS
        SLACK_RETRIES.labels(method=slack_method_label(response.api_url), reason=reason).inc()


def slack_api_error(*, method: str, error: object) -> None:
    with _never_raise("slack api error"):
        code = error if isinstance(error, str) and _SLACK_ERROR.match(error) else OTHER
        SLACK_API_ERRORS.labels(method=slack_method_label(method), error=code).inc()


def slack_request_type(body: Mapping[str, Any]) -> str:
    """What kind of Slack request a parsed /slack/events body is, for the ack histogram."""
    if "command" in body:
        return "command"
    kind = body.get("type")
    if kind == "event_callback":
        return "event"
    return _known(kind, REQUEST_TYPES)


def observe_ack(request_type: str, seconds: float) -> None:
    with _never_raise("ack latency"):
        ACK_SECONDS.labels(request_type=_known(request_type, REQUEST_TYPES)).observe(seconds)


def set_leader(leading: bool) -> None:
    with _never_raise("leader"):
        LEADER.set(1 if leading else 0)


class OutboxDepth:
    """Keeps ``earful_outbox_pending`` fresh at scrape time, at most one query per ``max_age``.

    Several Prometheus servers (or an impatient one) scraping at once share one query, and a
    database that fails leaves the last known value in place rather than failing the scrape.
    """

    def __init__(
        self,
        count_pending: Callable[[], Awaitable[int]],
        *,
        max_age: float = OUTBOX_DEPTH_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count_pending = count_pending
        self._max_age = max_age
        self._clock = clock
        self._checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._checked_at is not None and now - self._checked_at < self._max_age:
                return
            # Set before the query: a failing database is asked again only after max_age too.
            self._checked_at = now
            try:
                pending = await self._count_pending()
            except Exception as exc:
                log.warning("could not count the outbox for /metrics: %s", type(exc).__name__)
                return
            OUTBOX_PENDING.set(pending)
