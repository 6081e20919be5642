"""The leader's lock: a PostgreSQL session-level advisory lock on a connection of its own.

The connection is kept outside SQLAlchemy's pool on purpose: a session-level lock belongs to
one database session, which must live exactly as long as the leadership and never be recycled,
reset or lent to other work. The same connection LISTENs for wake-ups from the other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
from psycopg.rows import TupleRow
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import async_url

# Distinct from the migration lock (storage/migrations/env.py). Advisory locks are scoped to
# one database, so deployments sharing a server do not contend.
LEADER_LOCK_KEY = 0x6561_7266_6C64  # "earfld"
WAKEUP_CHANNEL = "earful_wakeup"
APPLICATION_PREFIX = "earful leader "

# If the leader's host vanishes without closing its socket, the server must notice and free
# the lock: keepalives after 10 s idle, every 5 s, 3 misses (about 25 s), and unacknowledged
# data abandoned after 20 s. The leader itself steps down sooner (bot/leader.py), so the old
# leader stops before a new one can start.
_KEEPALIVES = {
    "tcp_keepalives_idle": 10,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}


def _conninfo(database_url: str) -> str:
    url = make_url(async_url(database_url))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class LeaderLock:
    """One dedicated connection: try the lock, listen for wake-ups, prove it is still alive."""

    def __init__(self, connection: psycopg.AsyncConnection[TupleRow]) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, database_url: str, *, replica: str, within: float) -> LeaderLock:
        async with asyncio.timeout(within):
            connection = await psycopg.AsyncConnection.connect(
                _conninfo(database_url),
                autocommit=True,
                connect_timeout=max(2, round(within)),
                # How /earful status names the leader: see current_leader below.
                application_name=(APPLICATION_PREFIX + replica)[:63],
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                tcp_user_timeout=20_000,
            )
            try:
                for name, value in _KEEPALIVES.items():
                    # A server without one of these (tcp_user_timeout came in 12) goes on.
                    with contextlib.suppress(psycopg.errors.UndefinedObject):
                        await connection.execute(
                            "SELECT set_config(%s, %s, false)", (name, str(value))
                        )
            except BaseException:
                await connection.close()
                raise
        return cls(connection)

    @property
    def closed(self) -> bool:
        return bool(self._connection.closed)

    async def try_acquire(self) -> bool:
        cursor = await self._connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)
        )
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def listen(self) -> None:
        await self._connection.execute(f"LISTEN {WAKEUP_CHANNEL}")

    async def wakeups(self, *, within: float) -> AsyncIterator[str]:
        """Wake-up topics received within ``within`` seconds; raises if the connection dies."""
        async for notification in self._connection.notifies(timeout=within):
            yield notification.payload

    async def alive(self, *, within: float) -> bool:
        """The session (and with it the lock) still exists: the server answers in time."""
        probe = asyncio.ensure_future(self._connection.execute("SELECT 1"))
        done, _ = await asyncio.wait({probe}, timeout=within)
        if not done:
            # Not awaited: psycopg tries to cancel the query on the server for seconds more,
            # and a leader that cannot reach its database must stop leading now.
            probe.cancel()
            return False
        return probe.exception() is None

    async def close(self) -> None:
        """Closing the session releases the lock: the next replica to try takes it."""
        await self._connection.close()


async def notify(session: AsyncSession, *, topic: str) -> None:
    """Wake the leader up (it LISTENs); delivered when this session's transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :topic)"), {"channel": WAKEUP_CHANNEL, "topic": topic}
    )


async def current_leader(session: AsyncSession) -> str | None:
    """The replica holding the leader lock on this database now, if any (PostgreSQL only)."""
    key = LEADER_LOCK_KEY
    row = (
        await session.execute(
            text(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND CAST(l.classid AS bigint) = :high AND CAST(l.objid AS bigint) = :low "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF},
        )
    ).first()
    if row is None or not row[0]:
        return None
    return str(row[0]).removeprefix(APPLICATION_PREFIX)
