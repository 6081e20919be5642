from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.command_parser import parse_command
from bot.errors import CommandError
from bot.ids import ActionId
from bot.queue_commands import Mine, QueueShow, Search
from bot.queues import ListKind, PageRef, QueueItem, QueuePage, age, page_blocks
from storage import mentions as mention_store
from storage import queries
from storage.db import Database
from storage.models import Mention
from tests.fakes.slack_api import block_kit_problems
from watchers.departments import Department

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def make(external_id: str, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "hn",
        "origin": "hn",
        "external_id": external_id,
        "url": f"https://example.com/{external_id}",
        "title": f"Title {external_id}",
        "text": "text",
        "department": "support",
        "priority": "P3",
        "found_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Mention(**values)


# ----------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queue", QueueShow()),
        ("queue all", QueueShow(everything=True)),
        ("queue Support", QueueShow(department=Department.SUPPORT)),
        ("queue dept=pr", QueueShow(department=Department.PR)),
        ("mine", Mine()),
        ('search "refund  policy"', Search(text="refund policy")),
        ("search 50% off_peak", Search(text="50% off_peak")),
    ],
)
def test_parses_queue_commands(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("queue marketing", "not a department"),
        ("queue support pr", "at most one"),
        ("mine please", "Unexpected"),
        ("search x", "at least"),
        ("search " + "x" * 101, "at most 100"),
    ],
)
def test_rejects_bad_queue_commands(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(text)


# ----------------------------------------------------------------- builders


def test_like_pattern_escapes_wildcards_and_the_escape_character() -> None:
    assert queries.like_pattern("50%_Off!") == "%50!%!_off!!%"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(-5, "0s"), (42, "42s"), (600, "10m"), (7200, "2h"), (90_000, "1d")]
)
def test_age(seconds: int, shown: str) -> None:
    assert age(timedelta(seconds=seconds)) == shown


def _page(mentions: list[Mention], *, ref: PageRef, has_next: bool) -> list[dict[str, Any]]:
    items = [QueueItem(m, m.url) for m in mentions]
    return page_blocks(QueuePage(ref=ref, items=items, has_next=has_next, now=NOW))


def test_page_escapes_source_text_and_stays_within_block_kit_limits() -> None:
    hostile = "<!channel> <@U0ADMIN> <https://evil.example|bank.com> " + "x" * 5000
    mentions = [
        make(
            str(n),
            id=n + 1,
            title=hostile,
            author="<!here>" * 40,
            url="https://example.com/" + "p" * 3100 if n == 0 else f"https://example.com/{n}",
            found_at=NOW - timedelta(hours=n),
        )
        for n in range(5)
    ]
    ref = PageRef(kind=ListKind.SEARCH, text="<!channel>" + "y" * 90, page=3)
    blocks = _page(mentions, ref=ref, has_next=True)
    assert block_kit_problems(blocks) == []
    # What people see; a button's value (which carries the search text back) is not shown.
    dumped = json.dumps(
        [{k: v for k, v in e.items() if k != "value"} for b in blocks for e in _parts(b)]
    )
    assert "<!channel>" not in dumped and "<@U0ADMIN>" not in dumped and "<!here>" not in dumped
    assert "<https://evil.example" not in dumped
    # A URL too long for a button gets no Open button rather than a rejected message.
    opens = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    open_urls = [e["url"] for e in opens if e["action_id"] == ActionId.QUEUE_OPEN]
    assert len(open_urls) == 4
    turns = [e for e in opens if e["action_id"] in (ActionId.QUEUE_PREVIOUS, ActionId.QUEUE_NEXT)]
    assert [PageRef.model_validate_json(t["value"]).page for t in turns] == [2, 4]


def _parts(block: dict[str, Any]) -> list[dict[str, Any]]:
    return [block.get("text") or {}, *block.get("elements", [])]


def test_claim_only_for_unclaimed_open_mentions() -> None:
    mentions = [
        make("new", id=1),
        make("held", id=2, state="claimed", owner="U0BOB"),
        make("closed", id=3, state="resolved", url=None),
    ]
    blocks = _page(mentions, ref=PageRef(kind=ListKind.QUEUE), has_next=False)
    claims = [
        json.loads(e["value"])["mention_id"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ActionId.QUEUE_CLAIM
    ]
    assert claims == [1]
    text = json.dumps(blocks)
    assert "claimed by <@U0BOB>" in text and "new, unclaimed" in text
    # One page only: no Previous, no Next.
    assert ActionId.QUEUE_PREVIOUS.value not in text and ActionId.QUEUE_NEXT.value not in text


def test_empty_pages_say_so() -> None:
    mine = _page([], ref=PageRef(kind=ListKind.MINE), has_next=False)
    assert "You hold no open mentions" in json.dumps(mine)


# ----------------------------------------------------------------- storage


async def _store(db: Database, mentions: list[Mention]) -> list[int]:
    async with db.session() as session:
        stored = await mention_store.add_mentions(session, mentions=mentions)
    return [m.id for m in stored if m.id is not None]


async def test_open_queue_orders_by_priority_then_age_and_pages_cleanly(db: Database) -> None:
    ids = await _store(
        db,
        [
            make("old-p3", priority="P3", found_at=NOW - timedelta(hours=5)),
            make("p1", priority="P1", found_at=NOW),
            make("new-p3", priority="P3", found_at=NOW - timedelta(hours=1)),
            make("p2", priority="P2", found_at=NOW),
            make("other", department="pr", priority="P1"),
            make("merged", priority="P1", state="merged"),
            make("muted", priority="P1", state="muted"),
            make("done", priority="P1", state="dismissed"),
        ],
    )
    async with db.session() as session:
        first = await queries.open_queue(session, departments=["support"], limit=2)
        second = await queries.open_queue(session, departments=["support"], limit=2, offset=2)
        third = await queries.open_queue(session, departments=["support"], limit=2, offset=4)
        everyone = await queries.open_queue(session, departments=None, limit=50)
    assert [m.external_id for m in first + second] == ["p1", "p2", "old-p3", "new-p3"]
    assert third == []
    assert {m.external_id for m in everyone} == {"p1", "p2", "old-p3", "new-p3", "other"}
    assert len(ids) == 8


async def test_search_is_literal_case_insensitive_and_newest_first(db: Database) -> None:
    await _store(
        db,
        [
            make("pct", text="Save 50% now", found_at=NOW - timedelta(minutes=3)),
            make("digits", text="Save 5000 now", found_at=NOW - timedelta(minutes=2)),
            make("bang", title="wow!% really", text="t", found_at=NOW - timedelta(minutes=1)),
            make("author", text="t", author="The_Reviewer"),
            make("under", text="thexreviewer"),
            make("muted", text="Save 50% muted", state="muted"),
        ],
    )
    async with db.session() as session:
        pct = await queries.search_mentions(session, text="50%", limit=10)
        bang = await queries.search_mentions(session, text="!%", limit=10)
        author = await queries.search_mentions(session, text="THE_REVIEWER", limit=10)
        save = await queries.search_mentions(session, text="save", limit=10)
        paged = await queries.search_mentions(session, text="save", limit=1, offset=1)
    assert [m.external_id for m in pct] == ["pct"]
    assert [m.external_id for m in bang] == ["bang"]
    assert [m.external_id for m in author] == ["author"]
    assert [m.external_id for m in save] == ["digits", "pct"]
    assert [m.external_id for m in paged] == ["pct"]


async def test_department_of_channel(db: Database) -> None:
    from storage import routes as route_store

    async with db.session() as session:
        await route_store.set_route(session, department="support", channel_id="C1", updated_by=None)
    async with db.session() as session:
        assert await queries.department_of_channel(session, channel_id="C1") == "support"
        assert await queries.department_of_channel(session, channel_id="C2") is None
