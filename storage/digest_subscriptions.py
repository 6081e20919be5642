"""Digest subscriptions: who gets the digest, and the claim that sends each day's once.

A subscription is claimed for a local date with one conditional UPDATE, so of several
processes ticking at the same minute exactly one wins; a lease lets another process take over
a send whose process died, after the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import DigestSubscription

MAX_ERROR = 500


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def subscribe(
    session: AsyncSession,
    *,
    target: str,
    is_channel: bool,
    send_minute: int,
    tz: str,
    departments: Sequence[str],
    created_by: str,
    done_through: date,
    now: datetime,
) -> DigestSubscription:
    """Create or change the subscription of ``target`` (one per DM or channel).

    ``done_through`` is the last local date whose send time has already passed: the first
    digest is the next one, not one sent at once. A changed subscription keeps a later
    ``last_sent_on``, so moving the time never sends a day twice.
    """
    table = DigestSubscription.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "target": target,
        "is_channel": is_channel,
        "send_minute": send_minute,
        "tz": tz,
        "departments": list(departments),
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "last_sent_on": done_through,
        "attempts": 0,
    }
    stmt = _insert(session)(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["target"],
        set_={
            "is_channel": stmt.excluded.is_channel,
            "send_minute": stmt.excluded.send_minute,
            "tz": stmt.excluded.tz,
            "departments": stmt.excluded.departments,
            "created_by": stmt.excluded.created_by,
            "updated_at": stmt.excluded.updated_at,
            "last_sent_on": case(
                (
                    table.c.last_sent_on > stmt.excluded.last_sent_on,
                    table.c.last_sent_on,
                ),
                else_=stmt.excluded.last_sent_on,
            ),
        },
    )
    await session.execute(stmt)
    found = await get_subscription(session, target=target)
    assert found is not None  # just written in this transaction
    return found


async def get_subscription(session: AsyncSession, *, target: str) -> DigestSubscription | None:
    result = await session.execute(
        select(DigestSubscription).where(col(DigestSubscription.target) == target)
    )
    subscription = result.scalar_one_or_none()
    if subscription is not None:
        await session.refresh(subscription)
    return subscription


async def unsubscribe(session: AsyncSession, *, target: str) -> bool:
    result = await session.execute(
        delete(DigestSubscription).where(col(DigestSubscription.target) == target)
    )
    return bool(getattr(result, "rowcount", 0))


async def list_subscriptions(session: AsyncSession) -> list[DigestSubscription]:
    """Every subscription; few enough (people and channels) to judge in Python by time zone."""
    result = await session.execute(select(DigestSubscription).order_by(col(DigestSubscription.id)))
    return list(result.scalars())


async def claim(
    session: AsyncSession,
    *,
    subscription_id: int,
    day: date,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Take the send of ``day`` for this subscription; False if it is done or held elsewhere."""
    stmt = (
        update(DigestSubscription)
        .where(
            col(DigestSubscription.id) == subscription_id,
            or_(
                col(DigestSubscription.last_sent_on).is_(None),
                col(DigestSubscription.last_sent_on) < day,
            ),
            or_(
                col(DigestSubscription.lease_until).is_(None),
                col(DigestSubscription.lease_until) <= now,
            ),
        )
        .values(
            claimed_on=day,
            lease_until=now + lease,
            attempts=case(
                (col(DigestSubscription.claimed_on) == day, col(DigestSubscription.attempts) + 1),
                else_=1,
            ),
        )
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def mark_sent(
    session: AsyncSession,
    *,
    subscription_id: int,
    day: date,
    now: datetime,
    error: str | None = None,
) -> None:
    """``day`` is done (sent; or given up on, with ``error``)."""
    await session.execute(
        update(DigestSubscription)
        .where(col(DigestSubscription.id) == subscription_id)
        .values(
            last_sent_on=day,
            last_sent_at=now if error is None else DigestSubscription.last_sent_at,
            claimed_on=None,
            lease_until=None,
            attempts=0,
            last_error=error[:MAX_ERROR] if error else None,
        )
    )


async def release(
    session: AsyncSession, *, subscription_id: int, retry_at: datetime, error: str
) -> None:
    """A failed send: keep the claim's day and attempt count, try again from ``retry_at``."""
    await session.execute(
        update(DigestSubscription)
        .where(col(DigestSubscription.id) == subscription_id)
        .values(lease_until=retry_at, last_error=error[:MAX_ERROR])
    )
