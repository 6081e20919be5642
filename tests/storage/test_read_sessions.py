"""``Database.read()``: reads that never wait for a writer, and can never write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from storage import leads as lead_store
from storage.db import Database
from storage.models import DepartmentLead

# Far more than a read of one row takes; far less than SQLite's busy timeout (15 s), which a
# read queued behind the writer would sit out before failing.
READ_DEADLINE = 8.0


async def test_a_read_completes_while_another_connection_holds_a_write_transaction(
    db: Database,
) -> None:
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id="U1", updated_by="UA")

    writing = asyncio.Event()
    read_done = asyncio.Event()

    async def writer() -> None:
        async with db.session() as session:
            # Written, not committed: on SQLite this connection now holds the write lock.
            await lead_store.set_lead(session, department="support", user_id="U2", updated_by="UA")
            await lead_store.set_lead(session, department="pr", user_id="U3", updated_by="UA")
            writing.set()
            # Keep the transaction open until the read is through (or the test has failed).
            await asyncio.wait_for(read_done.wait(), timeout=READ_DEADLINE + 5)

    async def reader() -> dict[str, str]:
        await writing.wait()
        try:
            async with db.read() as session:
                return await lead_store.list_leads(session)
        finally:
            read_done.set()

    holding = asyncio.create_task(writer())
    try:
        seen = await asyncio.wait_for(reader(), timeout=READ_DEADLINE)
    finally:
        read_done.set()
        await holding
    # The last committed state: the writer's transaction is not visible yet.
    assert seen == {"support": "U1"}
    async with db.read() as session:
        assert await lead_store.list_leads(session) == {"support": "U2", "pr": "U3"}


async def test_a_read_is_one_snapshot_of_committed_data(db: Database) -> None:
    async with db.read() as session:
        assert await lead_store.list_leads(session) == {}
        async with db.session() as other:
            await lead_store.set_lead(other, department="legal", user_id="U1", updated_by="UA")
        if db.dialect == "sqlite":
            # WAL: the snapshot taken at the first read holds for the whole read.
            assert await lead_store.list_leads(session) == {}
    async with db.read() as session:
        assert await lead_store.list_leads(session) == {"legal": "U1"}


async def test_statements_that_write_are_refused_by_the_database(db: Database) -> None:
    with pytest.raises(DBAPIError):
        async with db.read() as session:
            await lead_store.set_lead(session, department="hr", user_id="U1", updated_by="UA")
    with pytest.raises(DBAPIError):
        async with db.read() as session:
            session.add(DepartmentLead(department="sales", user_id="U2"))
            await session.flush()
    async with db.read() as session:
        assert await lead_store.list_leads(session) == {}


async def test_an_object_added_in_a_read_is_never_stored(db: Database) -> None:
    async with db.read() as session:
        session.add(DepartmentLead(department="sales", user_id="U2"))
    async with db.read() as session:
        assert await lead_store.list_leads(session) == {}


async def test_connections_leave_a_read_able_to_write_again(db: Database) -> None:
    """On PostgreSQL reads borrow the writers' pool: READ ONLY must not stick to a connection."""
    for number in range(3):
        async with db.read() as session:
            await lead_store.list_leads(session)
        async with db.session() as session:
            await lead_store.set_lead(
                session, department="pr", user_id=f"U{number}", updated_by="UA"
            )
    async with db.read() as session:
        assert await lead_store.list_leads(session) == {"pr": "U2"}


async def test_sqlite_writers_take_turns_in_order_without_holding_connections(
    sqlite_url: str,
) -> None:
    """Writers queue in this process (first come, first served) rather than each holding a
    pooled connection while SQLite's busy handler sleeps and polls."""
    db = Database(sqlite_url)
    checked_out = 0
    most = 0

    @event.listens_for(db.engine.sync_engine, "checkout")
    def _out(*_: Any) -> None:
        nonlocal checked_out, most
        checked_out += 1
        most = max(most, checked_out)

    @event.listens_for(db.engine.sync_engine, "checkin")
    def _in(*_: Any) -> None:
        nonlocal checked_out
        checked_out -= 1

    order: list[int] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.session() as session:
            await lead_store.set_lead(session, department="pr", user_id="U0", updated_by="UA")
            holding.set()
            await release.wait()

    async def then(number: int) -> None:
        async with db.session() as session:
            await lead_store.set_lead(
                session, department="pr", user_id=f"U{number}", updated_by="UA"
            )
            order.append(number)

    try:
        holder = asyncio.create_task(first())
        await holding.wait()
        waiting = []
        for number in range(1, 21):
            waiting.append(asyncio.create_task(then(number)))
            await asyncio.sleep(0)  # start each in turn, so arrival order is known
        # Room for writers without a line to grab connections (the assertion below does
        # not depend on it when they wait in line).
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *waiting), timeout=60)
    finally:
        await db.dispose()
    assert order == list(range(1, 21))
    assert most == 1
