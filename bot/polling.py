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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.catalog import SourceWatches, WatchCatalog, compiled_query
from bot.clustering import Clusterer, KnownPost, StoryKeys, post_text, story_keys
from bot.mutes import set_aside_muted
from bot.scoring import ScoreInput, Scorer
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
    found = []
    for post in posts:
        haystack = f"{post.title}\n{post.text}" if post.title else post.text
        fields = PostFields(
            source=post.source, author=post.author, language=post.language, url=post.url
        )
        hits = catalog.matcher.match(haystack, fields)
        if not hits:
            continue
        ids = [int(key) for key, _ in hits]  # type: ignore[call-overload]
        terms: dict[str, None] = {}
        for _, match in hits:
            terms.update(dict.fromkeys(match.terms))
        primary = catalog.primary(ids)
        others = tuple(catalog.watches[i] for i in ids if i != primary.id)
        found.append(Found(post, primary, (primary, *others), tuple(terms)))
    return found


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
        if any(outcome.new_mentions or outcome.refreshed for outcome in outcomes):
            self._on_outbox()
        return list(outcomes)

    async def _guarded(self, watch: Watch, state: SourceStateRow) -> PollOutcome:
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
        watches = await self._catalog.for_source(state.source, must_include=watch.id)
        namespace = origin(state.source)
        fresh, known = await self._unseen(namespace, match_posts(watches, result.posts))
        signed = await self._scorer.sign([post_text(item.post) for item in fresh])
        keys = [
            story_keys(
                item.post,
                origin=namespace,
                watches=[watch.name for watch in item.watches],
                signed=signature,
            )
            for item, signature in zip(fresh, signed, strict=True)
        ]
        velocities = await self._velocities(keys)
        enrichments = await self._scorer.score(
            [
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
            ],
            routing=self._catalog.routing,
        )
        now = self._clock()
        mentions = [
            (_mention(item, scores, story, source=state.source, now=now), story)
            for item, scores, story in zip(fresh, enrichments, keys, strict=True)
        ]
        # Muted posts are stored here, out of every story and queue; the rest go on.
        mentions = await set_aside_muted(self._db, mentions, now=now)
        try:
            async with self._db.session() as session:
                # The story decisions first: they take the clustering lock for this transaction,
                # and every poller takes it before writing anything else.
                filed = await self._clusterer.file(session, mentions=mentions, now=now)
                refreshed = await self._clusterer.refresh(session, known=known, now=now)
                await post_store.add_posts(
                    session, posts=[_kept_post(post, state.source, now) for post in result.posts]
                )
                await self._record_success(session, watch, state, result, now, len(filed))
        except BaseException:
            # The in-memory index may hold mentions this rolled-back transaction never stored.
            self._clusterer.reset()
            raise
        stored = [item.mention for item in filed]
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
    return Mention(
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
