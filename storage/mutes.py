"""Mute rules and the muted mentions they keep out of the queues."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import mentions as mention_store
from storage.models import Mention, MentionState, MuteRule

MUTE_ACTION = "mute"


async def add_rule(
    session: AsyncSession,
    *,
    kind: str,
    value: str,
    source: str | None,
    department: str | None,
    created_by: str,
    now: datetime,
    expires_at: datetime | None,
) -> MuteRule:
    rule = MuteRule(
        kind=kind,
        value=value,
        source=source,
        department=department,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(rule)
    await session.flush()
    return rule


async def get_rule(session: AsyncSession, *, rule_id: int) -> MuteRule | None:
    return await session.get(MuteRule, rule_id)


async def remove_rule(
    session: AsyncSession, *, rule_id: int, removed_by: str, now: datetime
) -> bool:
    """Retire a rule; False when there is no such rule or it was already removed."""
    result = await session.execute(
        update(MuteRule)
        .where(col(MuteRule.id) == rule_id, col(MuteRule.removed_at).is_(None))
        .values(removed_at=now, removed_by=removed_by)
    )
    return bool(getattr(result, "rowcount", 0))


async def active_rules(
    session: AsyncSession, *, now: datetime, limit: int = 1_000
) -> list[MuteRule]:
    """Rules in force at ``now``, oldest first (the oldest matching rule gets the credit)."""
    stmt = (
        select(MuteRule)
        .where(
            col(MuteRule.removed_at).is_(None),
            or_(col(MuteRule.expires_at).is_(None), col(MuteRule.expires_at) > now),
        )
        .order_by(col(MuteRule.id))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def store_muted(
    session: AsyncSession, *, muted: Sequence[tuple[Mention, int]], now: datetime
) -> list[Mention]:
    """Store mentions in the muted state, each with its "muted by rule #n" event.

    Returns those that were new (a post another poller already stored is skipped, as in
    :func:`storage.mentions.add_mentions`), and counts them on their rules.
    """
    hits: dict[int, int] = {}
    stored: list[Mention] = []
    for mention, rule_id in muted:
        mention.state = MentionState.MUTED
        [*new] = await mention_store.add_mentions(session, mentions=[mention])
        if not new or mention.id is None:
            continue
        await mention_store.add_event(
            session,
            mention_id=mention.id,
            actor=None,
            action=MUTE_ACTION,
            from_state=None,
            to_state=MentionState.MUTED.value,
            note=f"muted by rule #{rule_id}",
        )
        hits[rule_id] = hits.get(rule_id, 0) + 1
        stored.append(mention)
    await _count_hits(session, hits=hits, now=now)
    return stored


async def _count_hits(session: AsyncSession, *, hits: Mapping[int, int], now: datetime) -> None:
    for rule_id, count in hits.items():
        # One relative update per rule, so concurrent pollers add up instead of overwriting.
        await session.execute(
            update(MuteRule)
            .where(col(MuteRule.id) == rule_id)
            .values(hits=col(MuteRule.hits) + count, last_hit_at=now)
        )
