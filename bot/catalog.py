"""The active watches, compiled once and grouped by source, for matching fetched posts.

Every post a source returns is matched against all active watches that read that source, in
one pass, so a story fetched for one watch also reaches the others it concerns. The routing
table in force (defaults plus team edits) is loaded with them, so an edit made in Slack
reaches the pollers on the same refresh as a watch edit.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from storage import routing_rules as rule_store
from storage import watches as watch_store
from storage.db import Database
from storage.models import Watch
from watchers.matcher import (
    Matcher,
    MatchRules,
    build_matcher,
    compiled_exclusion,
    compiled_query,
)
from watchers.routing import DEFAULT_ROUTING, Route

log = logging.getLogger(__name__)

# compiled_query and compiled_exclusion live with the matcher; they are imported from here too.
__all__ = [
    "KIND_RANK",
    "SourceWatches",
    "WatchCatalog",
    "build_source_watches",
    "compiled_exclusion",
    "compiled_query",
]

# Which watch a mention is filed under when several match: our own brand first.
KIND_RANK = {"brand": 0, "product": 1, "person": 2, "competitor": 3, "topic": 4}


@dataclass(frozen=True, slots=True)
class SourceWatches:
    matcher: Matcher
    watches: dict[int, Watch]
    rules: MatchRules  # the same watches as plain data, for matching in the scoring pool

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
    by_id = {watch.id: watch for watch in watches if watch.id is not None}
    specs = tuple((watch_id, w.query, w.exclude) for watch_id, w in by_id.items())
    matcher, kept = build_matcher(specs)
    rules = MatchRules(hashlib.sha256(repr(specs).encode()).hexdigest(), specs)
    return SourceWatches(
        matcher=matcher, watches={i: w for i, w in by_id.items() if i in kept}, rules=rules
    )
