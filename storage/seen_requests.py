"""Signatures of Slack requests already handled, shared by every replica."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.models import SeenSlackRequest


async def record_first_sighting(*, db: Database, signature: str, expires_at: datetime) -> bool:
    """Remember ``signature`` until ``expires_at``; False when some replica already had it.

    One INSERT … ON CONFLICT DO NOTHING: the database decides which of two replicas racing on
    the same replayed request saw it first, with no check-then-insert window.
    """
    table = SeenSlackRequest.__table__  # type: ignore[attr-defined]
    insert_fn = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_fn(table)
        .values(signature=signature, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["signature"])
        .returning(table.c.signature)
    )
    async with db.session() as session:
        inserted = (await session.execute(stmt)).scalar_one_or_none()
    return inserted is not None


async def forget_expired(*, db: Database, now: datetime) -> int:
    """Drop signatures that Slack's timestamp check refuses by now anyway; how many went."""
    async with db.session() as session:
        result = await session.execute(
            delete(SeenSlackRequest).where(SeenSlackRequest.expires_at < now)  # type: ignore[arg-type]
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
