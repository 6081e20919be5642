"""Summary alerts: a burst of low-priority alerts for one department, grouped into one message.

Grouping is one transaction: the waiting alerts' outbox items are taken (only those never
tried, so none can already be in Slack), the mentions become members of a group (unique per
mention), and the summary and its thread replies are queued. A crash before the commit leaves
every alert waiting as it was; after it, every mention is in exactly one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import outbox
from storage.models import (
    AlertGroup,
    AlertGroupMember,
    Mention,
    MentionState,
    OutboxItem,
    OutboxKind,
    OutboxStatus,
)

LOW_PRIORITIES = ("P3", "P4")
# Merged mentions are counted on their story's card and muted ones are never alerted.
_NOT_ALERTED = (MentionState.MERGED.value, MentionState.MUTED.value)


def _waiting_low_priority() -> Any:
    """Alerts of low-priority mentions that were never tried (so are surely not in Slack),
    have no card, and are not in a summary already (a rerouted mention gets a card)."""
    return (
        select(col(OutboxItem.id), col(Mention.department))
        .join(Mention, col(Mention.id) == col(OutboxItem.mention_id))
        .where(
            col(OutboxItem.kind) == OutboxKind.ALERT,
            col(OutboxItem.status) == OutboxStatus.PENDING,
            col(OutboxItem.attempts) == 0,
            col(Mention.priority).in_(LOW_PRIORITIES),
            col(Mention.state).not_in(_NOT_ALERTED),
            col(Mention.ts).is_(None),
            ~exists().where(col(AlertGroupMember.mention_id) == col(Mention.id)),
        )
    )


async def waiting_by_department(session: AsyncSession) -> dict[str, int]:
    """How many low-priority alerts wait for each department's channel."""
    waiting = _waiting_low_priority().subquery()
    stmt = select(waiting.c.department, func.count()).group_by(waiting.c.department)
    return {str(department): int(n) for department, n in (await session.execute(stmt)).all()}


async def open_group(
    session: AsyncSession, *, department: str, since: datetime, max_size: int
) -> AlertGroup | None:
    """The department's summary still taking members: joined since ``since`` and not full."""
    stmt = (
        select(AlertGroup)
        .where(
            col(AlertGroup.department) == department,
            col(AlertGroup.updated_at) >= since,
            col(AlertGroup.size) < max_size,
        )
        .order_by(col(AlertGroup.id).desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalars().first()


@dataclass(frozen=True)
class Grouped:
    group_id: int
    created: bool  # a new summary (else more mentions joined an open one)
    mention_ids: list[int]


async def group_waiting(
    session: AsyncSession,
    *,
    department: str,
    now: datetime,
    threshold: int,
    open_since: datetime,
    max_size: int,
    lines_per_reply: int,
) -> Grouped | None:
    """Group the department's waiting low-priority alerts, if they are a burst.

    A burst is more than ``threshold`` waiting at once; while the department's latest summary
    took members since ``open_since`` the burst goes on, and any waiting ones join it.
    """
    group = await open_group(session, department=department, since=open_since, max_size=max_size)
    room = max_size - (group.size if group is not None else 0)
    candidates = _waiting_low_priority().where(col(Mention.department) == department)
    item_ids = list(
        (
            await session.execute(select(candidates.subquery().c.id).order_by("id").limit(room))
        ).scalars()
    )
    if not item_ids or (group is None and len(item_ids) <= threshold):
        return None
    # Only items still pending and never tried: the poster's own conditional update
    # (outbox.mark_attempt) and this one cannot both succeed for one item.
    taken = (
        await session.execute(
            update(OutboxItem)
            .where(
                col(OutboxItem.id).in_(item_ids),
                col(OutboxItem.status) == OutboxStatus.PENDING,
                col(OutboxItem.attempts) == 0,
            )
            .values(status=OutboxStatus.DONE, done_at=now, last_error=None)
            .returning(col(OutboxItem.mention_id))
            .execution_options(synchronize_session=False)
        )
    ).scalars()
    mention_ids = sorted(int(m) for m in taken if m is not None)
    if not mention_ids:
        return None
    created = group is None
    if group is None:
        group = AlertGroup(department=department, size=0, created_at=now, updated_at=now)
        session.add(group)
        await session.flush()
    assert group.id is not None
    group.size += len(mention_ids)
    group.updated_at = now
    session.add(group)
    session.add_all(
        AlertGroupMember(group_id=group.id, mention_id=mention_id, added_at=now)
        for mention_id in mention_ids
    )
    payload = {"group_id": group.id, "department": department}
    kind = OutboxKind.GROUP_SUMMARY if created else OutboxKind.GROUP_UPDATE
    outbox.enqueue(session, kind=kind, mention_id=None, payload=payload, not_before=now)
    for start in range(0, len(mention_ids), lines_per_reply):
        outbox.enqueue(
            session,
            kind=OutboxKind.GROUP_LINES,
            mention_id=None,
            payload={**payload, "mention_ids": mention_ids[start : start + lines_per_reply]},
            not_before=now,
        )
    return Grouped(group_id=group.id, created=created, mention_ids=mention_ids)


async def group_of(session: AsyncSession, *, mention_id: int) -> AlertGroup | None:
    """The summary a mention was alerted in, if it was grouped."""
    stmt = (
        select(AlertGroup)
        .join(AlertGroupMember, col(AlertGroupMember.group_id) == col(AlertGroup.id))
        .where(col(AlertGroupMember.mention_id) == mention_id)
    )
    return (await session.execute(stmt)).scalars().first()


async def summary_messages(
    session: AsyncSession, *, mention_ids: Sequence[int]
) -> dict[int, tuple[str, str]]:
    """Mention id → (channel, ts) of the posted summary each of these mentions was alerted in
    (mentions not grouped, or whose summary is not posted yet, are left out)."""
    if not mention_ids:
        return {}
    stmt = (
        select(col(AlertGroupMember.mention_id), col(AlertGroup.channel), col(AlertGroup.ts))
        .join(AlertGroup, col(AlertGroupMember.group_id) == col(AlertGroup.id))
        .where(
            col(AlertGroupMember.mention_id).in_(list(mention_ids)),
            col(AlertGroup.ts).is_not(None),
        )
    )
    return {
        int(mention_id): (str(channel), str(ts))
        for mention_id, channel, ts in (await session.execute(stmt)).all()
    }


async def set_message(session: AsyncSession, *, group_id: int, channel: str, ts: str) -> None:
    await session.execute(
        update(AlertGroup).where(col(AlertGroup.id) == group_id).values(channel=channel, ts=ts)
    )


async def mentions(session: AsyncSession, *, mention_ids: Sequence[int]) -> list[Mention]:
    """These mentions, in the order given (those deleted since are left out)."""
    stmt = select(Mention).where(col(Mention.id).in_(list(mention_ids)))
    found = {m.id: m for m in (await session.execute(stmt)).scalars()}
    return [found[i] for i in mention_ids if i in found]


@dataclass(frozen=True)
class GroupCounts:
    group: AlertGroup
    by_priority: list[tuple[str, int]]
    by_watch: list[tuple[str, int]]
    by_intent: list[tuple[str | None, int]]
    by_source: list[tuple[str, int]]  # source specs; several may share a label
    by_sentiment: list[tuple[str, int]]
    examples: list[Mention]  # the ones to read first: highest priority, reach, negativity


async def counts(session: AsyncSession, *, group_id: int, examples: int = 3) -> GroupCounts | None:
    group = await session.get(AlertGroup, group_id)
    if group is None:
        return None
    members = select(col(AlertGroupMember.mention_id)).where(
        col(AlertGroupMember.group_id) == group_id
    )

    async def by(column: Any) -> list[tuple[Any, int]]:
        stmt = (
            select(column, func.count())
            .where(col(Mention.id).in_(members))
            .group_by(column)
            .order_by(func.count().desc(), column)
        )
        return [(value, int(n)) for value, n in (await session.execute(stmt)).all()]

    top = (
        await session.execute(
            select(Mention)
            .where(col(Mention.id).in_(members))
            .order_by(
                col(Mention.priority),
                col(Mention.author_reach).desc().nulls_last(),
                col(Mention.sentiment_compound),
                col(Mention.id),
            )
            .limit(examples)
        )
    ).scalars()
    return GroupCounts(
        group=group,
        by_priority=cast(list[tuple[str, int]], await by(col(Mention.priority))),
        by_watch=cast(list[tuple[str, int]], await by(col(Mention.watch_name))),
        by_intent=await by(col(Mention.primary_intent)),
        by_source=cast(list[tuple[str, int]], await by(col(Mention.source))),
        by_sentiment=cast(list[tuple[str, int]], await by(col(Mention.sentiment_label))),
        examples=list(top),
    )


async def members_before(session: AsyncSession, *, group_id: int, mention_id: int) -> int:
    """How many of the group's mentions come before this one (lines are numbered by id)."""
    stmt = (
        select(func.count())
        .select_from(AlertGroupMember)
        .where(
            col(AlertGroupMember.group_id) == group_id,
            col(AlertGroupMember.mention_id) < mention_id,
        )
    )
    return int((await session.execute(stmt)).scalar_one())
