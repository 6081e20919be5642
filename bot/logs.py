"""Logging, configured once by the entry point. Tokens are scrubbed from every record.

Two formats: ``text`` for people reading a terminal, ``json`` (one object a line) for log
shippers. Either way each record carries the correlation id of the work it belongs to: one
Slack request, one poll of a source, one background job run. The id lives in a context
variable, so the tasks a request starts (Bolt runs listeners in their own tasks) inherit it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, ParamSpec, TypeVar

MIN_SECRET_LENGTH = 6
_SECRET = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")

LogFormat = Literal["text", "json"]
P = ParamSpec("P")
R = TypeVar("R")

# Immutable mappings only: a task that inherits the context must not see later changes.
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "earful_log_context", default=MappingProxyType({})
)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def correlation_id() -> str | None:
    return _context.get().get("correlation_id")


@contextmanager
def correlated(prefix: str, /, **fields: str) -> Iterator[str]:
    """Give the work inside the block (and every task it starts) a fresh correlation id."""
    correlation = _new_id(prefix)
    token = _context.set({"correlation_id": correlation, **fields})
    try:
        yield correlation
    finally:
        _context.reset(token)


def start_correlation(prefix: str, /, **fields: str) -> str:
    """A fresh correlation id for the rest of the current task (a poll, a job run).

    Only for code that runs in a task of its own: the id is not undone on return, and the task's
    context dies with it.
    """
    correlation = _new_id(prefix)
    _context.set({"correlation_id": correlation, **fields})
    return correlation


def outside_correlation(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``func`` as if no request or job were being handled.

    For calls that start long-lived work from inside a request: asyncio callbacks copy the
    context they are scheduled from, so a scheduler woken by a request would otherwise log
    that request's id on all its later records.
    """

    def cleared() -> R:
        _context.set(MappingProxyType({}))
        return func(*args, **kwargs)

    return contextvars.copy_context().run(cleared)


def bind(**fields: str) -> None:
    """Add fields (a request's type, its team) to the current correlation context."""
    _context.set({**_context.get(), **fields})


class AddContext(logging.Filter):
    """Copies the correlation context onto each record (``record.correlation_id``, …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        record.log_context = dict(context)
        record.correlation_id = context.get("correlation_id", "")
        return True


class RedactSecrets(logging.Filter):
    """Belt and braces: settings keep secrets in SecretStr, but a library may echo a token.

    The message, the traceback and the stack are redacted here, before any formatter sees the
    record, so every format (text or JSON) prints the redacted text.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # The configured values themselves (signing secret, source keys, database password):
        # unlike Slack tokens they have no shape a pattern could recognise. Short values are
        # skipped, since blotting out every "a" would make the log unreadable, not safer.
        known = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, known))) if known else None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True

    def _redact(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub("…redacted", text)
        return _SECRET.sub(lambda m: m.group(1)[:5] + "…redacted", text)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the correlation id in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(correlation)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        correlation = getattr(record, "correlation_id", "")
        record.correlation = f" [{correlation}]" if correlation else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the correlation context, and the
    traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "log_context", None)
        if context:
            entry.update(context)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class SkippedOverlappingRun(logging.Filter):
    """Demotes APScheduler's warning that a run was skipped because the previous one is still
    going to DEBUG: a poll of a big burst outlasts the one-second tick, and a warning every
    tick would bury the real ones. A job that never ends is reported by ``/healthz`` and
    ``/earful status`` (stuck jobs) instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "skipped: maximum number of running instances reached" in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "text", *, secrets: Iterable[str] = ()
) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(AddContext())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python's warnings become records too, so a JSON log stays one object a line.
    logging.captureWarnings(True)
    # APScheduler logs every job run at INFO; our own logs say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # A logger's filters see only its own records: the warning comes from this one.
    logging.getLogger("apscheduler.scheduler").filters[:] = [SkippedOverlappingRun()]
