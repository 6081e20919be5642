"""``earful export``: a period's mentions as CSV or JSON Lines, for analysts and CRM imports.

Mentions are read in keyset-paginated chunks ordered by (found_at, id), each chunk in its own
short transaction, so an export of millions of rows holds neither them all in memory nor a
transaction open for the whole run, and behaves the same on SQLite and PostgreSQL. CSV cells
that a spreadsheet would run as a formula are defused as OWASP recommends (a leading quote).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TextIO

from sqlalchemy import and_, or_, select
from sqlmodel import col

from storage.db import Database
from storage.models import Mention, MentionState

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
COLUMNS: tuple[str, ...] = (
    "id",
    "found_at",
    "watch",
    "source",
    "url",
    "author",
    "reach",
    "title",
    "text",
    "sentiment",
    "sentiment_label",
    "intents",
    "department",
    "priority",
    "state",
    "owner",
    "claimed_at",
    "resolved_at",
    "cluster",
)
CHUNK_SIZE = 1000
# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_SELECTED = (
    col(Mention.id),
    col(Mention.found_at),
    col(Mention.watch_name),
    col(Mention.source),
    col(Mention.url),
    col(Mention.author),
    col(Mention.author_reach),
    col(Mention.title),
    col(Mention.text),
    col(Mention.sentiment_compound),
    col(Mention.sentiment_label),
    col(Mention.intents),
    col(Mention.department),
    col(Mention.priority),
    col(Mention.state),
    col(Mention.owner),
    col(Mention.claimed_at),
    col(Mention.resolved_at),
    col(Mention.cluster_id),
)


class ExportError(ValueError):
    """Arguments an export cannot run with; the message says why, for the command line."""


@dataclass(frozen=True, slots=True)
class ExportRange:
    since: datetime  # inclusive, UTC
    until: datetime  # exclusive, UTC
    departments: tuple[str, ...] = ()  # empty: every department
    include_muted: bool = False


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """A date (``2026-03-10``) or an ISO 8601 datetime, with ``Z`` or an offset, as UTC.

    A datetime without an offset is taken as UTC. A bare date means its midnight (UTC), or
    with ``end_of_day`` the next midnight, so ``--until 2026-03-31`` includes the 31st.
    """
    raw = text.strip()
    if _DATE_ONLY.match(raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError as error:
            raise ExportError(f"{text!r} is not a date: {error}") from None
        moment = datetime.combine(day, time(), tzinfo=UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise ExportError(
            f"{text!r} is neither a date (2026-03-10) nor a datetime "
            "(2026-03-10T08:00:00Z, 2026-03-10T09:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def export_range(
    *, since: str, until: str, departments: Sequence[str] = (), include_muted: bool = False
) -> ExportRange:
    """The range the command line describes; ``ExportError`` when it is empty or malformed."""
    start = parse_moment(since)
    end = parse_moment(until, end_of_day=True)
    if end <= start:
        raise ExportError(
            f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})"
        )
    cleaned = tuple(dict.fromkeys(d.strip().lower() for d in departments if d.strip()))
    return ExportRange(start, end, cleaned, include_muted)


async def iter_rows(
    db: Database, wanted: ExportRange, *, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[dict[str, Any]]:
    """The range's mentions, oldest first, as plain values (datetimes, lists, numbers)."""
    conditions = [col(Mention.found_at) >= wanted.since, col(Mention.found_at) < wanted.until]
    if wanted.departments:
        conditions.append(col(Mention.department).in_(wanted.departments))
    if not wanted.include_muted:
        conditions.append(col(Mention.state) != MentionState.MUTED.value)
    after: tuple[datetime, int] | None = None
    while True:
        stmt = select(*_SELECTED).where(*conditions)
        if after is not None:
            found_at, last_id = after
            stmt = stmt.where(
                or_(
                    col(Mention.found_at) > found_at,
                    and_(col(Mention.found_at) == found_at, col(Mention.id) > last_id),
                )
            )
        stmt = stmt.order_by(col(Mention.found_at), col(Mention.id)).limit(chunk_size)
        async with db.session() as session:
            rows = (await session.execute(stmt)).all()
        for row in rows:
            yield _as_record(row)
        if len(rows) < chunk_size:
            return
        after = (rows[-1].found_at, rows[-1].id)


def _as_record(row: Any) -> dict[str, Any]:
    values = dict(zip(COLUMNS, row, strict=True))
    values["intents"] = [str(hit.get("intent")) for hit in (values["intents"] or [])]
    return values


async def export(db: Database, out: TextIO, wanted: ExportRange, *, fmt: Format) -> int:
    """Write the range's mentions to ``out`` in ``fmt``; returns how many were written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    written = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        async for record in iter_rows(db, wanted):
            writer.writerow([csv_cell(record[name]) for name in COLUMNS])
            written += 1
    else:
        async for record in iter_rows(db, wanted):
            out.write(json.dumps(_json_ready(record), ensure_ascii=False) + "\n")
            written += 1
    out.flush()
    return written


def csv_cell(value: Any) -> str:
    """One CSV cell: lists joined with "; ", times in ISO 8601, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    if isinstance(value, str):
        # Only text can carry a formula; our own numbers (a negative sentiment) stay numbers.
        return "'" + value if value.startswith(_FORMULA_START) else value
    return str(value)


def _json_ready(record: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in record.items()
    }
