"""Engine, sessions and transactions on SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_url(url: str) -> str:
    """Map the URLs people write (``sqlite:///x.db``, ``postgresql://…``) to our async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def sync_url(url: str) -> str:
    """The same database through a synchronous driver, for Alembic."""
    parsed = make_url(async_url(url))
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _prepare_sqlite_path(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine, *, read_only: bool = False) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin, so that "begin"
        # below can take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        if read_only:
            # SQLite itself refuses every write on this connection, whatever the code above it.
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if read_only:
            # A deferred transaction only takes a WAL read snapshot: it never waits for the
            # writer, and the writer never waits for it.
            connection.exec_driver_sql("BEGIN")
            return
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY
        # when another writer got in between (busy_timeout does not apply to lock upgrades).
        # Taking the write lock at BEGIN makes concurrent transitions queue up instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# Longer than SQLite's busy_timeout (15 s): the line is fair, so a long wait means a busy
# process (a burst being stored, an SLA sweep of a backlog), not a writer being passed over,
# and failing a poll for it only makes the poll come back later with the same work.
# Still bounded, so a write session that never ends cannot wedge every other writer.
WRITER_WAIT_SECONDS = 120.0


def _in_memory(url: str) -> bool:
    database = make_url(url).database or ""
    return database in ("", ":memory:") or "mode=memory" in database


class Database:
    """One engine per process; a session per unit of work.

    :meth:`session` is for work that may write. :meth:`read` is for work that only reads (the
    replies to commands, App Home): on SQLite it runs on its own small pool of ``query_only``
    connections with deferred transactions, so it neither queues behind an ingest's write
    transactions nor waits for a free writer connection; on PostgreSQL it is a ``READ ONLY``
    transaction on the shared pool (MVCC readers never wait for writers there anyway).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            _prepare_sqlite_path(self.url)
            kwargs["connect_args"] = {"timeout": 15}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine = create_async_engine(self.url, **kwargs)
        read_engine: AsyncEngine
        self._own_read_engine: AsyncEngine | None = None
        if self.dialect != "sqlite":
            read_engine = self.engine.execution_options(postgresql_readonly=True)
        elif _in_memory(self.url):
            # Another engine would open another, empty in-memory database.
            read_engine = self.engine
        else:
            read_engine = self._own_read_engine = create_async_engine(self.url, **kwargs)
            _configure_sqlite(read_engine, read_only=True)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        # One lock per event loop (tests and the CLI may run several loops in one process).
        self._writer_locks: (
            weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] | None
        ) = weakref.WeakKeyDictionary() if self.dialect == "sqlite" else None
        self._writer: asyncio.Task[Any] | None = None
        self._read_sessions = async_sessionmaker(
            read_engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on any exception."""
        async with self._writer_turn(), self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """On SQLite, wait in line for this process's other writers.

        SQLite lets one connection write at a time. Left to its busy handler, waiting writers
        each sleep and poll (up to 100 ms a turn) holding a pooled connection, so under a
        burst of writes the lock sits free between sleeps, the pool runs dry and a long queue
        of clicks can starve an ingest for minutes. A FIFO lock hands the turn over at once,
        in arrival order, and a waiting writer holds no connection. Other processes on the
        same file still meet the busy handler. A task already holding the turn passes
        through (a nested write session then waits on SQLite, as it always did).
        """
        if self._writer_locks is None:
            yield
            return
        task = asyncio.current_task()
        if task is not None and task is self._writer:
            yield
            return
        lock = self._writer_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        try:
            async with asyncio.timeout(WRITER_WAIT_SECONDS):
                await lock.acquire()
        except TimeoutError:
            raise OperationalError(
                "BEGIN IMMEDIATE",
                None,
                sqlite3.OperationalError(
                    f"database is locked: no turn to write within {WRITER_WAIT_SECONDS:g} s"
                ),
            ) from None
        self._writer = task
        try:
            yield
        finally:
            self._writer = None
            lock.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only: one consistent snapshot, and any write is refused by
        the database (SQLite: ``attempt to write a readonly database``; PostgreSQL: ``cannot
        execute … in a read-only transaction``). Never commits; rolls back at the end.

        An in-memory SQLite database (which only one engine can see) reads through the
        writers' engine: nothing is refused there."""
        # No session.begin(): closing the session rolls its transaction back, so there is
        # nothing to commit and a stray pending object is dropped, never flushed.
        async with self._read_sessions() as session:
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        if self._own_read_engine is not None:
            await self._own_read_engine.dispose()
        await self.engine.dispose()
