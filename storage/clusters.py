"""Stories (clusters of mentions): the queries clustering and the alert card need.

A cluster exists only once a second mention joins a story; until then the first mention is a
story of one without a row. Deciding which story a new mention belongs to must not race with
another poller storing a copy of the same story, so it happens under :func:`lock_clustering`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Cluster, Mention, OutboxItem, OutboxStatus
from storage.types import utcnow
from storage.upsert import insert_ignoring_conflicts

_Row = TypeVar("_Row", Mention, Cluster)

# Any constant works as long as every process uses the same one; this one spells "earful".
_CLUSTERING_LOCK_KEY = 0x6561_7266_756C


async def lock_clustering(session: AsyncSession) -> None:
    """Serialise story decisions across pollers and processes until the transaction ends.

    Two copies of one story stored at the same moment by two pollers must not both start a
    story. PostgreSQL takes a transaction-level advisory lock; SQLite needs nothing more,
    because every Earful transaction there starts with BEGIN IMMEDIATE and so already holds
    the database's write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLUSTERING_LOCK_KEY}
        )


@dataclass(frozen=True, slots=True)
class Recent:
    """What the in-memory near-duplicate index keeps of a stored mention."""

    mention_id: int
    watches: tuple[str, ...]
    found_at: datetime
    minhash: bytes | None


async def recent_mentions(
    session: AsyncSession, *, since: datetime, after_id: int, limit: int
) -> list[Recent]:
    """Mentions found since ``since`` with an id above ``after_id``, oldest first."""
    stmt = (
        select(col(Mention.id), col(Mention.watches), col(Mention.found_at), col(Mention.minhash))
        .where(col(Mention.id) > after_id, col(Mention.found_at) >= since)
        .order_by(col(Mention.id))
        .limit(limit)
    )
    return [
        Recent(cast(int, row[0]), tuple(row[1] or ()), row[2], row[3])
        for row in (await session.execute(stmt)).all()
    ]


async def newest_mention_id(session: AsyncSession) -> int:
    result = await session.execute(select(func.max(col(Mention.id))))
    return int(result.scalar_one_or_none() or 0)


async def with_canonical_url(
    session: AsyncSession, *, canonical_url: str, since: datetime, limit: int = 20
) -> list[tuple[int, tuple[str, ...]]]:
    """(id, watches) of recent mentions of the same link, oldest first."""
    stmt = (
        select(col(Mention.id), col(Mention.watches))
        .where(col(Mention.canonical_url) == canonical_url, col(Mention.found_at) >= since)
        .order_by(col(Mention.id))
        .limit(limit)
    )
    return [(cast(int, row[0]), tuple(row[1] or ())) for row in (await session.execute(stmt)).all()]


async def with_canonical_urls(
    session: AsyncSession, *, canonical_urls: Sequence[str], since: datetime, limit: int = 20
) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
    """:func:`with_canonical_url` for many links at once: link → its (id, watches)."""
    found: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    urls = list(dict.fromkeys(canonical_urls))
    for start in range(0, len(urls), 500):
        # The oldest ``limit`` per link, numbered in the database, so a link shared thousands
        # of times costs ``limit`` rows, not thousands.
        ranked = (
            select(
                col(Mention.id).label("id"),
                col(Mention.watches).label("watches"),
                col(Mention.canonical_url).label("url"),
                func.row_number()
                .over(partition_by=col(Mention.canonical_url), order_by=col(Mention.id))
                .label("rank"),
            )
            .where(
                col(Mention.canonical_url).in_(urls[start : start + 500]),
                col(Mention.found_at) >= since,
            )
            .subquery()
        )
        stmt = (
            select(ranked.c.id, ranked.c.watches, ranked.c.url)
            .where(ranked.c.rank <= limit)
            .order_by(ranked.c.id)
        )
        for mention_id, watches, url in (await session.execute(stmt)).all():
            found.setdefault(str(url), []).append((int(mention_id), tuple(watches or ())))
    return found


async def story_sizes(session: AsyncSession, *, mention_ids: Sequence[int]) -> dict[int, int]:
    """For each mention, how many mentions its story has (1 for a story of one)."""
    if not mention_ids:
        return {}
    stmt = (
        select(col(Mention.id), col(Cluster.size))
        .join(Cluster, col(Cluster.id) == col(Mention.cluster_id), isouter=True)
        .where(col(Mention.id).in_(list(set(mention_ids))))
    )
    return {cast(int, row[0]): int(row[1] or 1) for row in (await session.execute(stmt)).all()}


async def story_of(session: AsyncSession, *, mention_id: int) -> tuple[Mention, Cluster | None]:
    """The lead of the story ``mention_id`` is in (locked) and its cluster (locked), if any.

    Raises LookupError when the mention is gone.
    """
    mention = await _locked(session, Mention, mention_id)
    if mention is None:
        raise LookupError(f"mention {mention_id} is gone")
    if mention.cluster_id is None:
        return mention, None
    cluster = await _locked(session, Cluster, mention.cluster_id)
    if cluster is None or cluster.lead_mention_id is None:
        return mention, None
    if cluster.lead_mention_id == mention.id:
        return mention, cluster
    lead = await _locked(session, Mention, cluster.lead_mention_id)
    if lead is None:
        raise LookupError(f"lead mention {cluster.lead_mention_id} is gone")
    return lead, cluster


async def start_cluster(session: AsyncSession, *, lead: Mention, now: datetime) -> Cluster:
    """The cluster led by ``lead``, created if it has none yet; locked either way."""
    assert lead.id is not None
    await insert_ignoring_conflicts(
        session,
        Cluster,
        {
            "lead_mention_id": lead.id,
            "size": 1,
            "sources": [lead.source],
            "first_seen_at": lead.found_at,
            "last_seen_at": now,
            "peak_reach": lead.author_reach,
            "traction_notified_size": 1,
        },
        conflict_columns=("lead_mention_id",),
    )
    result = await session.execute(
        select(Cluster).where(col(Cluster.lead_mention_id) == lead.id).with_for_update()
    )
    cluster = result.scalars().one()
    lead.cluster_id = cluster.id
    session.add(lead)
    return cluster


async def cluster_for_lead(session: AsyncSession, *, mention_id: int) -> Cluster | None:
    result = await session.execute(
        select(Cluster).where(col(Cluster.lead_mention_id) == mention_id)
    )
    return result.scalars().first()


@dataclass(frozen=True, slots=True)
class StorySummary:
    """What a lead's card says about the rest of its story."""

    sources: tuple[str, ...]  # distinct sources of the other mentions, first sighting first
    others: int  # how many other mentions the story has
    links: tuple[tuple[str, str | None], ...]  # (source, url) of the newest few of them


async def story_summary(
    session: AsyncSession, *, mention_id: int, links: int
) -> StorySummary | None:
    """The rest of the story ``mention_id`` leads, or None if it leads no story of two or more."""
    cluster = await cluster_for_lead(session, mention_id=mention_id)
    if cluster is None or cluster.id is None or cluster.size <= 1:
        return None
    sources = await member_sources(session, cluster_id=cluster.id, lead_id=mention_id)
    newest = await other_members(session, cluster_id=cluster.id, lead_id=mention_id, limit=links)
    return StorySummary(
        sources=tuple(dict.fromkeys(sources)),
        others=cluster.size - 1,
        links=tuple((member.source, member.url) for member in newest),
    )


async def other_members(
    session: AsyncSession, *, cluster_id: int, lead_id: int, limit: int
) -> list[Mention]:
    """The newest mentions of a story other than its lead."""
    stmt = (
        select(Mention)
        .where(col(Mention.cluster_id) == cluster_id, col(Mention.id) != lead_id)
        .order_by(col(Mention.id).desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def member_sources(session: AsyncSession, *, cluster_id: int, lead_id: int) -> list[str]:
    """The distinct sources of a story's mentions other than its lead, first sighting first."""
    first = func.min(col(Mention.id))
    stmt = (
        select(col(Mention.source), first)
        .where(col(Mention.cluster_id) == cluster_id, col(Mention.id) != lead_id)
        .group_by(col(Mention.source))
        .order_by(first)
    )
    return [str(row[0]) for row in (await session.execute(stmt)).all()]


async def cancel_pending(session: AsyncSession, *, mention_id: int) -> None:
    """Drop a mention's undelivered Slack posts: it joined another story before they went out."""
    await session.execute(
        update(OutboxItem)
        .where(
            col(OutboxItem.mention_id) == mention_id,
            col(OutboxItem.status) == OutboxStatus.PENDING,
        )
        .values(status=OutboxStatus.DONE, done_at=utcnow(), last_error="joined another story")
    )


async def _locked(session: AsyncSession, model: type[_Row], row_id: int) -> _Row | None:
    # PostgreSQL serialises on the row; SQLite already holds the write lock (BEGIN IMMEDIATE).
    stmt = select(model).where(col(model.id) == row_id).with_for_update()
    return (await session.execute(stmt)).scalars().first()
