"""``earful export``: round trips through CSV and JSON Lines on both engines."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.export import (
    COLUMNS,
    ExportError,
    ExportRange,
    csv_cell,
    export,
    export_range,
    iter_rows,
    parse_moment,
)
from storage import mentions as mention_store
from storage.db import Database
from storage.models import Mention

DAY = datetime(2026, 3, 10, tzinfo=UTC)


def make(key: str, found_at: datetime, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "hn",
        "origin": "hn",
        "external_id": key,
        "text": f"post {key}",
        "department": "support",
        "priority": "P3",
        "found_at": found_at,
        "updated_at": found_at,
    }
    values.update(fields)
    return Mention(**values)


def seed() -> list[Mention]:
    return [
        make(
            "a",
            DAY + timedelta(hours=1),
            url="https://news.ycombinator.com/item?id=1",
            author='=HYPERLINK("http://evil")',
            author_reach=120,
            title='Acme, "the" app\nis down',
            text="-2+3 it's broken, again; ünïcode ✓",
            sentiment_compound=-0.61,
            sentiment_label="negative",
            intents=[
                {"intent": "complaint", "triggers": ["broken"]},
                {"intent": "bug_report", "triggers": ["down"]},
            ],
            primary_intent="complaint",
            priority="P1",
            state="resolved",
            owner="U1",
            claimed_at=DAY + timedelta(hours=1, minutes=5),
            resolved_at=DAY + timedelta(hours=2),
        ),
        make("b", DAY + timedelta(hours=2), department="sales", text="@acme how much?"),
        make("c", DAY + timedelta(hours=2), text="+1 same here", state="merged"),
        make("d", DAY + timedelta(hours=3), state="muted", text="spam"),
        make("e", DAY + timedelta(days=1), text="next day"),  # at --until: left out
        make("f", DAY - timedelta(microseconds=1), text="day before"),  # before --since
    ]


async def seeded(db: Database) -> dict[str, int]:
    async with db.session() as session:
        stored = await mention_store.add_mentions(session, mentions=seed())
    return {m.external_id: m.id for m in stored if m.id is not None}


async def test_csv_round_trip_with_formulas_defused(db: Database) -> None:
    ids = await seeded(db)
    out = io.StringIO(newline="")
    written = await export(db, out, export_range(since="2026-03-10", until="2026-03-10"), fmt="csv")

    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert written == 3 and [r["id"] for r in rows] == [str(ids[k]) for k in ("a", "b", "c")]
    assert tuple(rows[0]) == COLUMNS
    a = rows[0]
    assert a["author"] == '\'=HYPERLINK("http://evil")'
    assert a["text"] == "'-2+3 it's broken, again; ünïcode ✓"
    assert a["title"] == 'Acme, "the" app\nis down'  # quoting keeps commas, quotes, newlines
    assert a["sentiment"] == "-0.61"  # a number, not a formula
    assert a["intents"] == "complaint; bug_report"
    assert a["found_at"] == "2026-03-10T01:00:00+00:00"
    assert a["claimed_at"] == "2026-03-10T01:05:00+00:00"
    assert a["resolved_at"] == "2026-03-10T02:00:00+00:00"
    assert (a["reach"], a["priority"], a["state"], a["owner"]) == ("120", "P1", "resolved", "U1")
    assert (a["url"], a["cluster"]) == ("https://news.ycombinator.com/item?id=1", "")
    assert rows[1]["text"] == "'@acme how much?" and rows[1]["department"] == "sales"
    assert rows[2]["text"] == "'+1 same here" and rows[2]["claimed_at"] == ""


async def test_jsonl_round_trip_keeps_types(db: Database) -> None:
    ids = await seeded(db)
    out = io.StringIO()
    wanted = export_range(
        since="2026-03-10T00:00:00Z", until="2026-03-11T01:00:00+01:00", include_muted=True
    )
    assert await export(db, out, wanted, fmt="jsonl") == 4

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in records] == [ids[k] for k in ("a", "b", "c", "d")]
    a = records[0]
    assert set(a) == set(COLUMNS)
    assert a["author"] == '=HYPERLINK("http://evil")'  # JSON is data, not a spreadsheet
    assert a["text"] == "-2+3 it's broken, again; ünïcode ✓"
    assert a["sentiment"] == -0.61 and a["reach"] == 120
    assert a["intents"] == ["complaint", "bug_report"]
    assert datetime.fromisoformat(a["resolved_at"]) == DAY + timedelta(hours=2)
    assert records[1]["reach"] is None and records[1]["intents"] == []
    assert records[3]["state"] == "muted"


async def test_departments_narrow_and_chunks_lose_nothing(db: Database) -> None:
    async with db.session() as session:
        # Several mentions share a found_at, so a chunk boundary falls inside a tie.
        await mention_store.add_mentions(
            session,
            mentions=[
                make(str(i), DAY + timedelta(minutes=i // 3), department=("pr", "support")[i % 2])
                for i in range(11)
            ],
        )
    wanted = ExportRange(since=DAY, until=DAY + timedelta(days=1))
    everything = [r["id"] async for r in iter_rows(db, wanted, chunk_size=1000)]
    chunked = [r["id"] async for r in iter_rows(db, wanted, chunk_size=2)]
    assert len(everything) == 11 and chunked == everything
    pr = ExportRange(since=DAY, until=DAY + timedelta(days=1), departments=("pr",))
    assert len([r async for r in iter_rows(db, pr, chunk_size=4)]) == 6


def test_dates_and_datetimes_are_read_as_utc() -> None:
    assert parse_moment("2026-03-10") == DAY
    assert parse_moment("2026-03-10", end_of_day=True) == DAY + timedelta(days=1)
    assert parse_moment("2026-03-10T08:30") == DAY + timedelta(hours=8, minutes=30)
    assert parse_moment("2026-03-10T08:30:00Z") == DAY + timedelta(hours=8, minutes=30)
    assert parse_moment("2026-03-10T09:30:00+01:00") == DAY + timedelta(hours=8, minutes=30)
    assert parse_moment("2026-03-10 03:30-05:00") == DAY + timedelta(hours=8, minutes=30)
    for bad in ("yesterday", "2026-13-01", "10/03/2026", ""):
        with pytest.raises(ExportError):
            parse_moment(bad)
    with pytest.raises(ExportError, match="must be after"):
        export_range(since="2026-03-11", until="2026-03-10T12:00Z")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        (-0.5, "-0.5"),
        (["=x", "y"], "'=x; y"),
        (None, ""),
    ],
)
def test_csv_cells_defuse_formulas(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


async def test_the_command_writes_a_file(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    try:
        ids = await seeded(db)
    finally:
        await db.dispose()
    target = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "EARFUL_"))}
    env["DATABASE_URL"] = database_url
    args = ["--since", "2026-03-10", "--until", "2026-03-10", "--format", "jsonl"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "export", *args, "--department", "sales",
        "--output", str(target), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert "exported 1 mention(s)" in err.decode()
    [record] = [json.loads(line) for line in target.read_text().splitlines()]
    assert record["id"] == ids["b"]

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "export", "--since", "soon", "--until", "2026-03-10",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2 and "'soon' is neither a date" in err.decode()
