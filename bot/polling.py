"""Polls due sources: fetch → match → skip known → score → store → cluster → enqueue alerts.

Posts already stored are not scored again; their new numbers (points, score) are stored, and
a big jump is traction for their story. New mentions go through :mod:`bot.clustering`: a copy
of a recent story joins it (card update) instead of becoming a second alert.

A failing source only marks its own watch unhealthy (with the reason, for ``/earful status``)
and backs off; every other source goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.catalog import SourceWatches, WatchCatalog, compiled_query
from bot.clustering import Clusterer, Filed, KnownPost, StoryKeys, post_text, story_keys
from bot.logs import start_correlation
from bot.mutes import set_aside_muted
from bot.scoring import Hits, ScoreInput, Scorer
from storage import clusters as cluster_store
from storage import mentions as mention_store
from storage import posts as post_store
from storage import watches as watch_store
from storage.db import Database
from storage.models import Mention, Watch
from storage.models import SourceState as SourceStateRow
from storage.types import utcnow
from watchers.base import FetchResult, Post, SearchSpec, SourceError, SourceState
from watchers.departments import Department, WatchKind
from watchers.enrich import Enrichment
from watchers.http import HttpFetcher
from watchers.query import PostFields
from watchers.registry import build_source, origin
from watchers.source_settings import SourceSettings

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# Mentions filed per transaction. A burst of thousands is stored in many short transactions
# rather than one long one, during which a SQLite database would answer nothing else.
MENTIONS_PER_TRANSACTION = 100
KEPT_POSTS_PER_TRANSACTION = 500
YIELD_EVERY = 100  # posts handled between two chances for the event loop to answer Slack
MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    watch: str
    source: str
    posts: int
    new_mentions: int
    error: str | None
    refreshed: int = 0  # traction notes from posts seen again with bigger numbers


@dataclass(frozen=True, slots=True)
class Found:
    """A fetched post that matched at least one watch."""

    post: Post
    primary: Watch
    watches: tuple[Watch, ...]
    terms: tuple[str, ...]


def match_posts(catalog: SourceWatches, posts: Sequence[Post]) -> list[Found]:
    """The posts that match a watch of ``catalog``, matched here (the poller matches in its
    scoring pool, see :meth:`Poller._match`)."""
    found = []
    for post in posts:
        fields = PostFields(
            source=post.source, author=post.author, language=post.language, url=post.url
        )
        hits = [
            (int(key), match.terms)  # type: ignore[call-overload]
            for key, match in catalog.matcher.match(post_text(post), fields)
        ]
        if hits:
            found.append(_found(catalog, post, hits))
    return found


def _found(catalog: SourceWatches, post: Post, hits: Hits) -> Found:
    ids = [watch_id for watch_id, _ in hits]
    terms: dict[str, None] = {}
    for _, matched in hits:
        terms.update(dict.fromkeys(matched))
    primary = catalog.primary(ids)
    others = tuple(catalog.watches[i] for i in ids if i != primary.id)
    return Found(post, primary, (primary, *others), tuple(terms))


async def _pause(position: int) -> None:
    """Let the event loop answer Slack every so many posts of a long loop over a burst."""
    if position % YIELD_EVERY == YIELD_EVERY - 1:
        await asyncio.sleep(0)


def next_poll_after_failure(
    *, now: datetime, interval_seconds: int, failures: int, retry_after: float | None
) -> datetime:
    """Exponential backoff with jitter, honouring a source's own Retry-After."""
    delay = timedelta(seconds=interval_seconds) * (2 ** min(failures, 10))
    delay = min(delay, MAX_BACKOFF) * (0.8 + random.random() * 0.4)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return now + delay


class Poller:
    def __init__(
        self,
        db: Database,
        *,
        fetcher: HttpFetcher,
        scorer: Scorer,
        catalog: WatchCatalog | None = None,
        source_settings: SourceSettings | None = None,
        on_outbox: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
        concurrency: int = 8,
        clusterer: Clusterer | None = None,
    ) -> None:
        self._db = db
        self._catalog = catalog or WatchCatalog(db)
        self._source_settings = source_settings or SourceSettings()
        self._fetcher = fetcher
        self._scorer = scorer
        self._on_outbox = on_outbox
        self._clock = clock
        self._semaphore = asyncio.Semaphore(concurrency)
        self._clusterer = clusterer or Clusterer()

    async def tick(self, *, everything: bool = False) -> list[PollOutcome]:
        """Poll every source that is due now (or every active one, for ``earful scan``)."""
        now = self._clock()
        due_before = now + timedelta(days=36_500) if everything else now
        async with self._db.session() as session:
            due = await watch_store.claim_due_sources(
                session, now=due_before, lease=LEASE, limit=10_000 if everything else 50
            )
        if not due:
            return []
        outcomes = await asyncio.gather(*(self._guarded(watch, state) for watch, state in due))
        metrics.polls_finished(outcomes)
        if any(outcome.new_mentions or outcome.refreshed for outcome in outcomes):
            self._on_outbox()
        return list(outcomes)

    async def _guarded(self, watch: Watch, state: SourceStateRow) -> PollOutcome:
        start_correlation("poll", source=metrics.source_label(state.source))  # a task per poll
        async with self._semaphore:
            try:
                return await self.poll(watch, state)
            except Exception as exc:
                # A bug in one source must not stop the others; the traceback goes to the log.
                log.exception("polling %s for watch %s failed", state.source, watch.name)
                return await self._record_failure(watch, state, f"internal error: {exc}", None)

    async def poll(self, watch: Watch, state: SourceStateRow) -> PollOutcome:
        assert state.id is not None and watch.id is not None
        source = build_source(state.source, fetcher=self._fetcher, settings=self._source_settings)
        search = SearchSpec(terms=compiled_query(watch.query).terms())
        try:
            result = await source.fetch(
                SourceState(
                    etag=state.etag, last_modified=state.last_modified, cursor=state.cursor
                ),
                search,
            )
        except SourceError as exc:
            return await self._record_failure(
                watch, state, str(exc) or type(exc).__name__, getattr(exc, "retry_after", None)
            )
        return await self.ingest(watch, state, result)

    async def ingest(self, watch: Watch, state: SourceStateRow, result: FetchResult) -> PollOutcome:
        """Everything after the fetch: match, skip known, score, store, queue the alerts, and
        record the poll (bench/ingest.py measures this on its own)."""
        assert state.id is not None and watch.id is not None
        watches = await self._catalog.for_source(state.source, must_include=watch.id)
        namespace = origin(state.source)
        fresh, known = await self._unseen(namespace, await self._match(watches, result.posts))
        signed = await self._scorer.sign([post_text(item.post) for item in fresh])
        keys = []
        for position, (item, signature) in enumerate(zip(fresh, signed, strict=True)):
            keys.append(
                story_keys(
                    item.post,
                    origin=namespace,
                    watches=[watch.name for watch in item.watches],
                    signed=signature,
                )
            )
            await _pause(position)
        velocities = await self._velocities(keys)
        now = self._clock()
        filed: list[Filed] = []
        new_leads: set[int] = set()  # the poll's new stories: their copies earn no note
        done = 0
        # Each part is stored as it comes back scored, while the pool scores the next one:
        # with a scoring process, storing and scoring use both cores at once.
        inputs = [
            ScoreInput(
                title=item.post.title,
                text=item.post.text,
                kind=WatchKind(item.primary.kind),
                department_override=(
                    Department(item.primary.department) if item.primary.department else None
                ),
                author_reach=item.post.author_reach,
                velocity=velocity,
            )
            for item, velocity in zip(fresh, velocities, strict=True)
        ]
        # aclosing: if storing fails, the part being scored ahead is cancelled, not left over.
        scored = self._scorer.score_ahead(inputs, routing=self._catalog.routing)
        async with aclosing(scored):
            async for enrichments in scored:
                part = slice(done, done + len(enrichments))
                done = part.stop
                mentions = []
                for position, (item, scores, story) in enumerate(
                    zip(fresh[part], enrichments, keys[part], strict=True)
                ):
                    mentions.append(
                        (_mention(item, scores, story, source=state.source, now=now), story)
                    )
                    await _pause(position)
                # Muted posts are stored here, out of every story and queue; the rest go on.
                mentions = await set_aside_muted(self._db, mentions, now=now)
                filed += await self._file(mentions, now=now, new_leads=new_leads)
        for start in range(0, len(result.posts), KEPT_POSTS_PER_TRANSACTION):
            async with self._db.session() as session:
                await post_store.add_posts(
                    session,
                    posts=[
                        _kept_post(post, state.source, now)
                        for post in result.posts[start : start + KEPT_POSTS_PER_TRANSACTION]
                    ],
                )
        try:
            async with self._db.session() as session:
                # Like filing, traction notes decide under the clustering lock, taken first.
                await cluster_store.lock_clustering(session)
                refreshed = await self._clusterer.refresh(session, known=known, now=now)
                # Last: a crash before this re-reads the same posts, and those already stored
                # are known then (skipped, never alerted twice).
                await self._record_success(session, watch, state, result, now, len(filed))
        except BaseException:
            self._clusterer.reset()
            raise
        stored = [item.mention for item in filed]
        metrics.mentions_stored(stored)
        if stored:
            joined = sum(1 for item in filed if item.joined is not None)
            log.info(
                "watch %s: %d new mention(s) from %s, %d joining a known story",
                watch.name,
                len(stored),
                state.source,
                joined,
            )
        return PollOutcome(
            watch.name, state.source, len(result.posts), len(stored), None, refreshed
        )

    async def _match(self, catalog: SourceWatches, posts: Sequence[Post]) -> list[Found]:
        """:func:`match_posts`, with the matching itself in the scoring pool."""
        hits = await self._scorer.match(
            catalog.rules,
            [
                (
                    post_text(post),
                    PostFields(
                        source=post.source, author=post.author, language=post.language, url=post.url
                    ),
                )
                for post in posts
            ],
        )
        found = []
        for position, (post, post_hits) in enumerate(zip(posts, hits, strict=True)):
            if post_hits:
                found.append(_found(catalog, post, post_hits))
            await _pause(position)
        return found

    async def _file(
        self,
        mentions: Sequence[tuple[Mention, StoryKeys]],
        *,
        now: datetime,
        new_leads: set[int],
    ) -> list[Filed]:
        """Store new mentions and their alerts, a few at a time.

        Each part is its own short transaction, so Slack's requests (and, on SQLite, anything
        that writes) get the database in between instead of waiting for a whole burst. A crash
        between parts loses nothing: the poll's state is recorded after the last part, so the
        same posts are read again, and those already stored are known then.

        ``new_leads``: the poll's new stories so far (their copies earn no note); the stories
        these mentions start are added.
        """
        filed: list[Filed] = []
        for start in range(0, len(mentions), MENTIONS_PER_TRANSACTION):
            part = mentions[start : start + MENTIONS_PER_TRANSACTION]
            try:
                async with self._db.session() as session:
                    # The story decisions take the clustering lock for this transaction, and
                    # every poller takes it before writing anything else.
                    filed += await self._clusterer.file(
                        session, mentions=part, now=now, new_leads=new_leads
                    )
            except BaseException:
                # The in-memory index may hold mentions this rolled-back transaction never
                # stored.
                self._clusterer.reset()
                raise
        return filed

    async def _velocities(self, keys: Sequence[StoryKeys]) -> list[int]:
        """How many posts of each new post's story arrived recently (see watchers/priority)."""
        if not keys:
            return []
        now = self._clock()
        async with self._db.session() as session:
            await cluster_store.lock_clustering(session)
            await self._clusterer.catch_up(session, now=now)
            return await self._clusterer.velocities(session, keys, now=now)

    async def _record_success(
        self,
        session: AsyncSession,
        watch: Watch,
        state: SourceStateRow,
        result: FetchResult,
        now: datetime,
        mentions_found: int,
    ) -> None:
        assert state.id is not None
        new_state = result.state
        await watch_store.record_poll(
            session,
            state_id=state.id,
            now=now,
            next_poll_at=now + timedelta(seconds=watch.interval_seconds),
            error=None,
            etag=new_state.etag,
            last_modified=new_state.last_modified,
            cursor=new_state.cursor,
            posts_seen=len(result.posts),
            mentions_found=mentions_found,
        )

    async def _unseen(
        self, namespace: str, matched: list[Found]
    ) -> tuple[list[Found], list[KnownPost]]:
        """Split matched posts into new ones and ones already stored as mentions.

        Known posts cost no scoring; they come back with the reach stored for them so their
        new numbers can be kept (and a big jump noted as traction).
        """
        if not matched:
            return [], []
        async with self._db.session() as session:
            known = await mention_store.known_posts(
                session,
                origin=namespace,
                external_ids=[item.post.external_id for item in matched],
            )
        seen_now: set[str] = set()
        fresh: list[Found] = []
        again: list[KnownPost] = []
        for item in matched:
            external_id = item.post.external_id
            if external_id in seen_now:
                continue
            seen_now.add(external_id)
            if external_id in known:
                mention_id, reach = known[external_id]
                again.append(KnownPost(mention_id, reach, item.post))
            else:
                fresh.append(item)
        return fresh, again

    async def _record_failure(
        self, watch: Watch, state: SourceStateRow, error: str, retry_after: float | None
    ) -> PollOutcome:
        assert state.id is not None
        now = self._clock()
        log.warning("watch %s: source %s failed: %s", watch.name, state.source, error)
        async with self._db.session() as session:
            await watch_store.record_poll(
                session,
                state_id=state.id,
                now=now,
                next_poll_at=next_poll_after_failure(
                    now=now,
                    interval_seconds=watch.interval_seconds,
                    failures=state.consecutive_failures,
                    retry_after=retry_after,
                ),
                error=error,
            )
        return PollOutcome(watch.name, state.source, 0, 0, error)


def _mention(
    item: Found, scores: Enrichment, story: StoryKeys, *, source: str, now: datetime
) -> Mention:
    post = item.post
    return mention_store.new_mention(
        watch_id=item.primary.id,
        watch_name=item.primary.name,
        watch_kind=item.primary.kind,
        watches=[watch.name for watch in item.watches],
        source=source,
        origin=origin(source),
        external_id=post.external_id,
        url=post.url,
        author=post.author,
        author_reach=post.author_reach,
        title=post.title,
        text=post.text,
        language=post.language,
        published_at=post.published_at,
        found_at=now,
        raw=post.raw,
        matched_terms=list(item.terms),
        sentiment_compound=round(scores.sentiment.compound, 4),
        sentiment_label=scores.sentiment.label,
        intents=[
            {"intent": hit.intent.value, "triggers": list(hit.triggers)} for hit in scores.intents
        ],
        primary_intent=scores.intents[0].intent.value if scores.intents else None,
        department=scores.department.value,
        cc=[department.value for department in scores.cc],
        route_rule=scores.route_rule,
        priority=scores.priority.value,
        priority_reason=scores.priority_reason,
        updated_at=now,
        canonical_url=story.canonical_url,
        minhash=story.minhash_bytes,
    )


def _kept_post(post: Post, source: str, now: datetime) -> dict[str, Any]:
    return {
        "source": source,
        "origin": origin(source),
        "external_id": post.external_id,
        "url": post.url,
        "author": post.author,
        "author_reach": post.author_reach,
        "title": post.title,
        "text": post.text,
        "language": post.language,
        "published_at": post.published_at,
        "fetched_at": now,
    }
