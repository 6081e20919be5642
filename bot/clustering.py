"""One story, one alert: new mentions join the story they retell, and spreading stories speak up.

A new mention is the same story as a recent one (within :data:`WINDOW`) of an overlapping set
of watches when both point at the same page once tracking parameters are stripped, or when
their texts are near-duplicates (MinHash over word 3-grams, see :mod:`watchers.dedup`). Such a
mention is stored, never lost, in the ``merged`` state, which keeps it out of every queue; it
joins the story's cluster, and the story's lead card is updated in place ("Also seen on …").
A mention that matches nothing is a story of one and gets its alert; its cluster row is only
created when a second mention joins, so the common case costs no extra row. Sources are polled
in parallel, so a link-only Hacker News story and a retold Reddit post may both be stored as
stories before the blog post that carries the link and the text arrives: that post joins the
story whose card is already out (else the oldest), and folds in the others whose alert nobody
has seen yet. A story whose card is already posted is never folded into another.

When a story that already has an alert keeps spreading, the lead's priority is raised with the
reason and one thread reply says why, once per threshold: more copies (:data:`SIZE_THRESHOLDS`),
a joining post with a much larger audience (:data:`REACH_LEVELS`), or a known post whose own
numbers (points, score, followers) grew by an order of magnitude (:data:`GROWTH_LEVELS`). What
was already said is stored (cluster size noted, peak reach, the post's last reach), so neither a
later poll nor a restart repeats a note. Copies stored in the same batch as their lead earn no
note: its alert is not out yet, and its priority already counts them as velocity.

Decisions run under :func:`storage.clusters.lock_clustering` in the transaction that stores the
mentions, so two pollers storing copies of one story at once still make one story. The
near-duplicate index lives in memory, one per process, bounded to :data:`MAX_INDEXED` entries
of the window; under the lock it first catches up with every mention stored since it last looked
(by this or any other process), so it never decides on a stale view.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import clusters as cluster_store
from storage import mentions as mention_store
from storage import outbox
from storage.models import Cluster, Mention, MentionState, OutboxKind
from watchers.base import Post
from watchers.dedup import NearDuplicates, Signed, from_bytes, story_url, to_bytes
from watchers.departments import Priority
from watchers.priority import with_traction

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=72)
MAX_INDEXED = 50_000  # near-duplicate signatures kept in memory per process
SIZE_THRESHOLDS = (3, 10, 25, 100)  # posts in a story
REACH_LEVELS = (10_000, 100_000, 1_000_000)  # a joining post's author reach
GROWTH_LEVELS = (100, 1_000, 10_000, 100_000)  # a known post's own reach (points, score, …)
# Sources whose posts share links: there the story is the link, not the discussion page.
SHARING_ORIGINS = frozenset({"hn", "reddit", "mastodon", "bluesky"})
_CATCH_UP_PAGE = 1_000  # rows per query; each page is turned into signatures between awaits
_YIELD_EVERY = 100
_SAME_LINK_LIMIT = 20  # mentions of one link a story decision looks at (the oldest)


def level(value: int, levels: Sequence[int]) -> int:
    """How many of ``levels`` (ascending) ``value`` has reached."""
    return bisect.bisect_right(levels, value)


def crossed(old: int, new: int, levels: Sequence[int]) -> int | None:
    """The highest of ``levels`` that ``new`` reaches and ``old`` did not, if any."""
    reached = level(new, levels)
    return levels[reached - 1] if reached > level(old, levels) else None


def overlaps(a: Iterable[str], b: Iterable[str]) -> bool:
    return not set(a).isdisjoint(b)


def site_count(sources: Iterable[str]) -> int:
    """Distinct sites among source specs: "reddit" and "reddit:r/acme" are one."""
    return len({source.partition(":")[0].strip().lower() for source in sources})


def spreading_note(*, posts: int, sources: Sequence[str]) -> str:
    sites = site_count(sources)
    return f"now on {sites} source{'s' if sites != 1 else ''}, {posts} posts"


@dataclass(frozen=True, slots=True)
class StoryKeys:
    """What recognises a post's story: its canonical link, its text's signature, its watches."""

    canonical_url: str | None
    minhash: Signed | None
    watches: frozenset[str]

    @property
    def minhash_bytes(self) -> bytes | None:
        return to_bytes(self.minhash) if self.minhash is not None else None


def post_text(post: Post) -> str:
    """What a post says, title included: the text its signature is made of."""
    return f"{post.title}\n{post.text}" if post.title else post.text


def story_keys(
    post: Post, *, origin: str, watches: Iterable[str], signed: bytes | None
) -> StoryKeys:
    """``signed``: the stored form of the MinHash of :func:`post_text`, made off the event loop
    (:meth:`bot.scoring.Scorer.sign`)."""
    return StoryKeys(
        canonical_url=story_url(post.url, post.text, shares_links=origin in SHARING_ORIGINS),
        minhash=from_bytes(signed) if signed else None,
        watches=frozenset(watches),
    )


@dataclass(frozen=True, slots=True)
class Match:
    mention_id: int
    how: str  # "same link" | "near-duplicate text"


@dataclass(frozen=True, slots=True)
class KnownPost:
    """A fetched post already stored as a mention, with the reach stored for it."""

    mention_id: int
    reach: int | None
    post: Post


@dataclass(frozen=True, slots=True)
class Filed:
    mention: Mention
    joined: Match | None  # None: a new story, alerted


def _unseen_alert(lead: Mention) -> bool:
    """Whether nobody can have seen or acted on this lead's alert yet."""
    return lead.ts is None and lead.state == MentionState.NEW and lead.owner is None


@dataclass(frozen=True, slots=True)
class _Indexed:
    watches: frozenset[str]
    found_at: datetime


class _Batch:
    """The posts of a batch filed so far, keyed like the index until they have ids."""

    def __init__(self) -> None:
        self.meta: dict[int, _Indexed] = {}
        self._index = NearDuplicates()
        self._links: dict[str, list[tuple[int, frozenset[str]]]] = {}

    def add(self, key: int, mention: Mention, keys: StoryKeys) -> None:
        self.meta[key] = _Indexed(keys.watches, mention.found_at)
        if keys.minhash is not None:
            self._index.add(key, keys.minhash)
        if keys.canonical_url is not None:
            self._links.setdefault(keys.canonical_url, []).append((key, keys.watches))

    def same_link(self, keys: StoryKeys) -> list[tuple[int, frozenset[str]]]:
        return self._links.get(keys.canonical_url, []) if keys.canonical_url else []

    def similar(self, minhash: Signed) -> list[tuple[float, Hashable]]:
        return self._index.matches(minhash) if self.meta else []


async def _pause(position: int) -> None:
    """Let the event loop answer Slack every so many posts of a long in-memory loop."""
    if position % _YIELD_EVERY == _YIELD_EVERY - 1:
        await asyncio.sleep(0)


class Clusterer:
    """Files new mentions into stories. One per process; see the module docstring."""

    def __init__(self, *, window: timedelta = WINDOW, max_indexed: int = MAX_INDEXED) -> None:
        self._window = window
        self._max_indexed = max_indexed
        self._index = NearDuplicates()
        self._meta: dict[int, _Indexed] = {}  # insertion order = id order = age
        self._high_water: int | None = None  # newest mention id looked at; None: not loaded

    def __len__(self) -> int:
        return len(self._meta)

    def reset(self) -> None:
        """Forget everything; the next catch-up rebuilds from the database."""
        self._index.clear()
        self._meta.clear()
        self._high_water = None

    async def catch_up(self, session: AsyncSession, *, now: datetime) -> None:
        """Index every mention stored since the last look. Call under the clustering lock."""
        since = now - self._window
        if self._high_water is None:
            self.reset()
        after = self._high_water or 0
        while True:
            page = await cluster_store.recent_mentions(
                session, since=since, after_id=after, limit=_CATCH_UP_PAGE
            )
            for row in page:
                minhash = from_bytes(row.minhash) if row.minhash else None
                if minhash is not None:
                    self._add(row.mention_id, minhash, frozenset(row.watches), row.found_at)
            if len(page) < _CATCH_UP_PAGE:
                break
            after = page[-1].mention_id
        self._high_water = max(after, await cluster_store.newest_mention_id(session))
        self._forget_before(since)

    def _add(self, mention_id: int, minhash: Signed, watches: frozenset[str], at: datetime) -> None:
        if mention_id in self._meta:
            return
        self._index.add(mention_id, minhash)
        self._meta[mention_id] = _Indexed(watches, at)
        while len(self._meta) > self._max_indexed:
            oldest = next(iter(self._meta))
            del self._meta[oldest]
            self._index.remove(oldest)

    def _forget_before(self, since: datetime) -> None:
        stale = [key for key, meta in self._meta.items() if meta.found_at < since]
        for key in stale:
            del self._meta[key]
            self._index.remove(key)

    def _remember(self, mention: Mention, keys: StoryKeys) -> None:
        assert mention.id is not None
        if keys.minhash is not None:
            self._add(mention.id, keys.minhash, keys.watches, mention.found_at)
        self._high_water = max(self._high_water or 0, mention.id)

    async def match(self, session: AsyncSession, keys: StoryKeys, *, now: datetime) -> Match | None:
        """The recent mention whose story this is, if any: same link first, then text."""
        found = await self.matches(session, keys, now=now)
        return found[0] if found else None

    async def matches(
        self, session: AsyncSession, keys: StoryKeys, *, now: datetime
    ) -> list[Match]:
        """Every recent mention this post retells: same link first, then the most similar text.

        Only mentions of an overlapping set of watches count: the same article about Acme and
        about Globex is one story for each, not one story for both.
        """
        links = await self._same_links(session, [keys], now=now)
        return self._found(keys, links.get(keys.canonical_url or "", []), _Batch())

    async def _same_links(
        self, session: AsyncSession, batch: Sequence[StoryKeys], *, now: datetime
    ) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
        urls = [keys.canonical_url for keys in batch if keys.canonical_url is not None]
        if not urls:
            return {}
        return await cluster_store.with_canonical_urls(
            session, canonical_urls=urls, since=now - self._window, limit=_SAME_LINK_LIMIT
        )

    def _found(
        self, keys: StoryKeys, same_link: Sequence[tuple[int, Iterable[str]]], batch: _Batch
    ) -> list[Match]:
        """What :meth:`matches` answers, from the stored mentions with the same link (oldest
        first), the index, and the earlier posts of ``batch`` (stored in this transaction)."""
        found: dict[int, Match] = {}
        for mention_id, watches in [*same_link, *batch.same_link(keys)][:_SAME_LINK_LIMIT]:
            if overlaps(watches, keys.watches):
                found.setdefault(mention_id, Match(mention_id, "same link"))
        if keys.minhash is not None:
            similar = [*self._index.matches(keys.minhash), *batch.similar(keys.minhash)]
            similar.sort(key=lambda pair: pair[0], reverse=True)
            for _, key in similar:
                indexed = self._meta.get(key) or batch.meta.get(key)  # type: ignore[call-overload]
                if isinstance(key, int) and indexed and overlaps(indexed.watches, keys.watches):
                    found.setdefault(key, Match(key, "near-duplicate text"))
        return list(found.values())

    async def velocities(
        self, session: AsyncSession, batch: Sequence[StoryKeys], *, now: datetime
    ) -> list[int]:
        """For each post of a batch: its story's posts in the window, itself included.

        That is the story's recent mentions plus the other posts of the same story in this
        batch. Call under the clustering lock, after :meth:`catch_up`.
        """
        links = await self._same_links(session, batch, now=now)
        matches: list[Match | None] = []
        nothing_filed = _Batch()  # one for the whole loop: _found only reads it
        for position, keys in enumerate(batch):
            found = self._found(keys, links.get(keys.canonical_url or "", []), nothing_filed)
            matches.append(found[0] if found else None)
            await _pause(position)
        sizes = await cluster_store.story_sizes(
            session, mention_ids=[m.mention_id for m in matches if m is not None]
        )
        siblings = NearDuplicates()
        by_link: dict[str, list[int]] = {}
        for position, keys in enumerate(batch):
            if keys.minhash is not None:
                siblings.add(position, keys.minhash)
            if keys.canonical_url is not None:
                by_link.setdefault(keys.canonical_url, []).append(position)
            await _pause(position)
        result = []
        for position, keys in enumerate(batch):
            similar = {
                key
                for _, key in (siblings.matches(keys.minhash) if keys.minhash else [])
                if isinstance(key, int)
            }
            if keys.canonical_url is not None:
                similar.update(by_link[keys.canonical_url])
            similar.discard(position)
            same_story = sum(1 for i in similar if overlaps(batch[i].watches, keys.watches))
            match = matches[position]
            earlier = sizes.get(match.mention_id, 1) if match is not None else 0
            result.append(1 + same_story + earlier)
            await _pause(position)
        return result

    async def file(
        self,
        session: AsyncSession,
        *,
        mentions: Sequence[tuple[Mention, StoryKeys]],
        now: datetime,
        new_leads: set[int] | None = None,
    ) -> list[Filed]:
        """Store new mentions, each as a new story (alerted) or joined to its story.

        Takes the clustering lock for the rest of the transaction. If the transaction fails
        after this, call :meth:`reset`: the index may hold mentions that were never stored.

        ``new_leads``: the stories started by earlier parts of the same poll, when a poll files
        its mentions in several transactions; this call adds the ones it starts.

        Every story decision is made in memory first (links and signatures of the stored
        mentions and of the batch's earlier posts), then the batch is stored with one INSERT
        per few hundred rows, so a burst costs a handful of statements, not several per post.
        """
        await cluster_store.lock_clustering(session)
        await self.catch_up(session, now=now)
        # Stories this batch starts: their alert is not out yet, and the velocity in their
        # priority already counts the copies in the batch, so those copies earn no note.
        quiet = new_leads if new_leads is not None else set()
        fresh = await self._unstored(session, mentions)
        links = await self._same_links(session, [keys for _, keys in fresh], now=now)
        batch = _Batch()
        decided: list[list[Match]] = []
        for position, (mention, keys) in enumerate(fresh):
            found = self._found(keys, links.get(keys.canonical_url or "", []), batch)
            if found:
                mention.state = MentionState.MERGED
            batch.add(-position - 1, mention, keys)  # its id is not known until it is stored
            decided.append(found)
            await _pause(position)
        stored = await mention_store.insert_new_mentions(
            session, mentions=[mention for mention, _ in fresh]
        )
        if len(stored) != len(fresh):
            # Every mention is inserted under the clustering lock (bot/mutes.py takes it too),
            # after the check above: nothing else can have stored one of these since.
            raise RuntimeError("mentions were stored by someone else under the clustering lock")
        ids = {-position - 1: mention.id for position, (mention, _) in enumerate(fresh)}
        filed = []
        # New stories' "found" events and alerts, written in bulk; always before anything a
        # join writes, so every row's id keeps the order of the decisions.
        alerts: list[Mention] = []
        for (mention, keys), found in zip(fresh, decided, strict=True):
            found = [Match(ids.get(m.mention_id) or m.mention_id, m.how) for m in found]
            self._remember(mention, keys)
            if not found:
                alerts.append(mention)
                assert mention.id is not None
                quiet.add(mention.id)
            else:
                await self._alert(session, alerts)
                await self._join(session, mention, found, now=now, quiet=quiet)
            filed.append(Filed(mention, found[0] if found else None))
        await self._alert(session, alerts)
        return filed

    async def _unstored(
        self, session: AsyncSession, mentions: Sequence[tuple[Mention, StoryKeys]]
    ) -> list[tuple[Mention, StoryKeys]]:
        """The mentions not stored yet: another poller may have stored the same post first."""
        by_origin: dict[str, list[str]] = {}
        for mention, _ in mentions:
            by_origin.setdefault(mention.origin, []).append(mention.external_id)
        stored = {
            (origin, external_id)
            for origin, external_ids in by_origin.items()
            for external_id in await mention_store.stored_external_ids(
                session, origin=origin, external_ids=external_ids
            )
        }
        fresh: list[tuple[Mention, StoryKeys]] = []
        seen: set[tuple[str, str]] = set()
        for mention, keys in mentions:
            key = (mention.origin, mention.external_id)
            if key not in stored and key not in seen:
                seen.add(key)
                fresh.append((mention, keys))
        return fresh

    async def refresh(
        self, session: AsyncSession, *, known: Sequence[KnownPost], now: datetime
    ) -> int:
        """Store the new numbers of posts seen again; a big jump is traction. Returns the
        number of traction notes written."""
        notes = 0
        for item in known:
            reach = item.post.author_reach
            if reach is None or (item.reach is not None and reach <= item.reach):
                continue
            await session.execute(
                update(Mention)
                .where(col(Mention.id) == item.mention_id)
                .values(author_reach=reach, updated_at=now)
            )
            if item.reach is None or crossed(item.reach, reach, GROWTH_LEVELS) is None:
                continue
            try:
                lead, cluster = await cluster_store.story_of(session, mention_id=item.mention_id)
            except LookupError:
                continue
            if cluster is not None:
                cluster.peak_reach = max(cluster.peak_reach or 0, reach)
                session.add(cluster)
            whose = "the post" if lead.id == item.mention_id else "a post of this story"
            outbox.enqueue(session, kind=OutboxKind.CARD_UPDATE, mention_id=lead.id)
            await self._traction(
                session,
                lead,
                f"{whose} now has a reach of {reach:,} (was {item.reach:,})",
                now=now,
            )
            notes += 1
        return notes

    @staticmethod
    async def _alert(session: AsyncSession, mentions: list[Mention]) -> None:
        """Write the "found" event and the alert of each new story in ``mentions``, then
        empty it."""
        if not mentions:
            return
        ids = [mention.id for mention in mentions if mention.id is not None]
        assert len(ids) == len(mentions)
        # What a join left pending is flushed by the session before these INSERTs run
        # (autoflush), so ids keep the order things happened in.
        await mention_store.insert_events(
            session,
            events=[
                mention_store.NewEvent(
                    mention_id=mention_id,
                    actor=None,
                    action="found",
                    from_state=None,
                    to_state=mention.state,
                    note=f"matched {', '.join(mention.matched_terms)} on "
                    + ", ".join(mention.watches),
                )
                for mention_id, mention in zip(ids, mentions, strict=True)
            ],
        )
        await outbox.enqueue_many(session, kind=OutboxKind.ALERT, mention_ids=ids)
        mentions.clear()

    async def _join(
        self,
        session: AsyncSession,
        mention: Mention,
        found: Sequence[Match],
        *,
        now: datetime,
        quiet: set[int],
    ) -> None:
        """Add ``mention`` to its story; if it also retells other stories whose alert is not
        out yet (copies stored in parallel before anything linked them), they become one."""
        assert mention.id is not None
        stories: dict[int, tuple[Mention, Cluster | None, Match]] = {}
        for match in found:
            lead, cluster = await cluster_store.story_of(session, mention_id=match.mention_id)
            assert lead.id is not None
            stories.setdefault(lead.id, (lead, cluster, match))
        # The story everyone already sees (its card is posted) wins, else the oldest.
        target_id = min(stories, key=lambda lead_id: (stories[lead_id][0].ts is None, lead_id))
        lead, cluster, match = stories.pop(target_id)
        if cluster is None:
            cluster = await cluster_store.start_cluster(session, lead=lead, now=now)
        assert cluster.id is not None
        for other_lead, other_cluster, _ in stories.values():
            if _unseen_alert(other_lead):
                await self._absorb(session, cluster, other_lead, other_cluster, lead, now=now)
        mention.cluster_id = cluster.id
        await session.execute(
            update(Mention).where(col(Mention.id) == mention.id).values(cluster_id=cluster.id)
        )
        await mention_store.add_event(
            session,
            mention_id=mention.id,
            actor=None,
            action="merge",
            from_state=None,
            to_state=mention.state,
            note=f"same story as mention {lead.id} ({match.how})",
        )
        notes = self._grow(cluster, mention, now=now)
        session.add(cluster)
        outbox.enqueue(session, kind=OutboxKind.CARD_UPDATE, mention_id=lead.id)
        if notes and lead.id not in quiet:
            await self._traction(session, lead, "; ".join(notes), now=now)

    async def _absorb(
        self,
        session: AsyncSession,
        cluster: Cluster,
        other_lead: Mention,
        other_cluster: Cluster | None,
        lead: Mention,
        *,
        now: datetime,
    ) -> None:
        """Fold a story whose alert nobody has seen yet into ``cluster``, led by ``lead``."""
        assert other_lead.id is not None and cluster.id is not None
        from_state = other_lead.state
        other_lead.state = MentionState.MERGED
        other_lead.cluster_id = cluster.id
        other_lead.updated_at = now
        session.add(other_lead)
        sources = [other_lead.source]
        if other_cluster is not None:
            await session.execute(
                update(Mention)
                .where(col(Mention.cluster_id) == other_cluster.id)
                .values(cluster_id=cluster.id)
            )
            cluster.size += other_cluster.size
            sources = other_cluster.sources
            cluster.peak_reach = max(cluster.peak_reach or 0, other_cluster.peak_reach or 0)
            await session.flush()
            await session.delete(other_cluster)
        else:
            cluster.size += 1
            cluster.peak_reach = max(cluster.peak_reach or 0, other_lead.author_reach or 0)
        cluster.sources = list(dict.fromkeys([*cluster.sources, *sources]))
        await cluster_store.cancel_pending(session, mention_id=other_lead.id)
        await mention_store.add_event(
            session,
            mention_id=other_lead.id,
            actor=None,
            action="merge",
            from_state=from_state,
            to_state=other_lead.state,
            note=f"same story as mention {lead.id} (a later post retells both)",
        )

    @staticmethod
    def _grow(cluster: Cluster, mention: Mention, *, now: datetime) -> list[str]:
        """Count ``mention`` into ``cluster``; the traction notes that earns, if any."""
        cluster.size += 1
        if mention.source not in cluster.sources:
            # A new list, so the JSON column is seen as changed.
            cluster.sources = [*cluster.sources, mention.source]
        cluster.last_seen_at = now
        notes = []
        if crossed(cluster.traction_notified_size, cluster.size, SIZE_THRESHOLDS) is not None:
            notes.append(spreading_note(posts=cluster.size, sources=cluster.sources))
            cluster.traction_notified_size = cluster.size
        reach = mention.author_reach
        if reach is not None:
            if crossed(cluster.peak_reach or 0, reach, REACH_LEVELS) is not None:
                notes.append(f"a post with a reach of {reach:,} joined")
            cluster.peak_reach = max(cluster.peak_reach or 0, reach)
        return notes

    async def _traction(
        self, session: AsyncSession, lead: Mention, note: str, *, now: datetime
    ) -> None:
        """Raise the lead's priority with the reason and say why once in its thread.

        The caller queues the card update that shows the new priority.
        """
        assert lead.id is not None
        lead.priority, lead.priority_reason = with_traction(
            Priority(lead.priority), lead.priority_reason, note=note
        )
        lead.updated_at = now
        session.add(lead)
        event = await mention_store.add_event(
            session,
            mention_id=lead.id,
            actor=None,
            action=mention_store.TRACTION_ACTION,
            from_state=lead.state,
            to_state=lead.state,
            note=f"Spreading: {note}",
        )
        outbox.enqueue(
            session,
            kind=OutboxKind.THREAD_REPLY,
            mention_id=lead.id,
            payload={"event_id": event.id},
        )
        log.info("story of mention %s is spreading: %s", lead.id, note)
