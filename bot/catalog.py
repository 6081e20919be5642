"""The active watches, compiled once and grouped by source, for matching fetched posts.

Every post a source returns is matched against all active watches that read that source, in
one pass, so a story fetched for one watch also reaches the others it concerns. The routing
table in force (defaults plus team edits) is loaded with them, so an edit made in Slack
reaches the pollers on the same refresh as a watch edit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from storage import routing_rules as rule_store
from storage import watches as watch_store
from storage.db import Database
from storage.models import Watch
from watchers.matcher import Matcher, WatchRule
from watchers.query import Query, QuerySyntaxError, parse
from watchers.routing import DEFAULT_ROUTING, Route

log = logging.getLogger(__name__)

# Which watch a mention is filed under when several match: our own brand first.
KIND_RANK = {"brand": 0, "product": 1, "person": 2, "competitor": 3, "topic": 4}


@lru_cache(maxsize=20_000)
def compiled_query(text: str) -> Query:
    return parse(text)


def compiled_exclusion(text: str | None) -> Query | None:
    return compiled_query(text) if text else None


@dataclass(frozen=True, slots=True)
class SourceWatches:
    matcher: Matcher
    watches: dict[int, Watch]

    def primary(self, watch_ids: list[int]) -> Watch:
        """The same answer whichever watch's poll found the post first."""
        ranked = sorted(
            (self.watches[i] for i in watch_ids),
            key=lambda w: (KIND_RANK.get(w.kind, 9), w.name),
        )
        return ranked[0]


class WatchCatalog:
    def __init__(self, db: Database, *, max_age_seconds: float = 30.0) -> None:
        self._db = db
        self._max_age = max_age_seconds
        self._loaded_at: float | None = None
        self._active: list[Watch] = []
        self._by_source: dict[str, SourceWatches] = {}
        self._routing: dict[rule_store.RuleKey, Route] = dict(DEFAULT_ROUTING)

    def invalidate(self) -> None:
        """Watches or routing changed here; other replicas notice within ``max_age_seconds``."""
        self._loaded_at = None

    @property
    def routing(self) -> dict[rule_store.RuleKey, Route]:
        """The routing table as of the last load: a plain dict, so it pickles to the scorers."""
        return self._routing

    async def for_source(self, spec: str, *, must_include: int | None = None) -> SourceWatches:
        stale = self._loaded_at is None or time.monotonic() - self._loaded_at > self._max_age
        if not stale and must_include is not None:
            cached = self._by_source.get(spec)
            stale = cached is None or must_include not in cached.watches
        if stale:
            await self._reload()
        cached = self._by_source.get(spec)
        if cached is None:
            cached = self._build(spec)
            self._by_source[spec] = cached
        return cached

    async def _reload(self) -> None:
        async with self._db.session() as session:
            self._active = [w for w in await watch_store.list_watches(session) if not w.paused]
            rules = await rule_store.list_rules(session)
        self._routing = rule_store.effective_table(rules)
        self._by_source = {}
        self._loaded_at = time.monotonic()

    def _build(self, spec: str) -> SourceWatches:
        return build_source_watches(w for w in self._active if spec in w.sources)


def build_source_watches(watches: Iterable[Watch]) -> SourceWatches:
    """One matcher over these watches; a saved query that no longer parses is skipped."""
    rules = []
    by_id: dict[int, Watch] = {}
    for watch in watches:
        if watch.id is None:
            continue
        try:
            rule = WatchRule(
                key=watch.id,
                query=compiled_query(watch.query),
                exclude=compiled_exclusion(watch.exclude),
            )
        except QuerySyntaxError:
            # Saved queries were valid when saved; one that no longer parses (after a
            # grammar change) must not stop the others.
            log.exception("watch %s has a query that no longer parses", watch.name)
            continue
        rules.append(rule)
        by_id[watch.id] = watch
    return SourceWatches(matcher=Matcher(rules), watches=by_id)
