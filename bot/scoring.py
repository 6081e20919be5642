"""Scoring bursts of posts off the event loop.

VADER, the intent rules, matching against every watch and MinHash signatures are pure Python:
in a thread they would still hold the GIL and slow every ack, so by default they run in a small
process pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from watchers.dedup import signature, to_bytes
from watchers.departments import Department, WatchKind
from watchers.enrich import Enrichment, enrich
from watchers.matcher import Matcher, MatchRules, build_matcher
from watchers.query import PostFields
from watchers.routing import RoutingTable

# Posts per batch sent to the pool: big enough that sending costs little next to scoring,
# small enough that a poll stores one part while the next is scored.
SCORE_CHUNK = 200


@dataclass(frozen=True, slots=True)
class ScoreInput:
    title: str | None
    text: str
    kind: WatchKind
    department_override: Department | None
    author_reach: int | None
    # How many posts of this story arrived in the recent window, this one included.
    velocity: int = 1


def score_batch(
    items: Sequence[ScoreInput], *, routing: RoutingTable | None = None
) -> list[Enrichment]:
    """``routing`` is the table in force (team edits applied); None means the defaults."""
    return [
        enrich(
            title=item.title,
            text=item.text,
            kind=item.kind,
            department_override=item.department_override,
            author_reach=item.author_reach,
            velocity=item.velocity,
            routing=routing,
        )
        for item in items
    ]


def sign_batch(texts: Sequence[str]) -> list[bytes | None]:
    """MinHash signatures (as stored) of texts; None where a text is too short to judge."""
    signatures = (signature(text) for text in texts)
    return [to_bytes(minhash) if minhash is not None else None for minhash in signatures]


# Matchers a worker built, by MatchRules.key: the rules travel with every batch (plain data),
# the automaton is built once per worker per change of the watches.
_matchers: dict[str, Matcher] = {}
_MATCHERS_KEPT = 16  # sources with different watch sets
# What one post matched: (watch id, the terms that matched) per watch, in rule order.
Hits = list[tuple[int, tuple[str, ...]]]


def match_batch(rules: MatchRules, items: Sequence[tuple[str, PostFields]]) -> list[Hits]:
    """Match texts (title and text joined) against the watches ``rules`` describe."""
    matcher = _matchers.get(rules.key)
    if matcher is None:
        matcher, _ = build_matcher(rules.specs)
        if len(_matchers) >= _MATCHERS_KEPT:
            _matchers.pop(next(iter(_matchers)))
        _matchers[rules.key] = matcher
    return [
        [(int(key), found.terms) for key, found in matcher.match(text, fields)]  # type: ignore[call-overload]
        for text, fields in items
    ]


def _warm_up() -> None:
    # Build VADER's lexicon and the compiled intent rules once per worker, not per batch.
    score_batch([ScoreInput(None, "warm up", WatchKind.BRAND, None, None)])


class Scorer:
    def __init__(self, workers: int = 1) -> None:
        self._executor: Executor
        if workers > 0:
            # forkserver: forking a process that runs an event loop and driver threads is unsafe.
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_warm_up,
            )
        else:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")

    async def score(
        self,
        items: Sequence[ScoreInput],
        *,
        chunk: int = SCORE_CHUNK,
        routing: RoutingTable | None = None,
    ) -> list[Enrichment]:
        loop = asyncio.get_running_loop()
        results: list[Enrichment] = []
        # The table travels with each batch (a plain dict pickles to the process pool).
        work = partial(score_batch, routing=routing)
        for start in range(0, len(items), chunk):
            batch = list(items[start : start + chunk])
            results.extend(await loop.run_in_executor(self._executor, work, batch))
        return results

    async def score_ahead(
        self,
        items: Sequence[ScoreInput],
        *,
        chunk: int = SCORE_CHUNK,
        routing: RoutingTable | None = None,
    ) -> AsyncGenerator[list[Enrichment], None]:
        """:meth:`score`, one chunk at a time: while the caller handles a chunk, the pool is
        already scoring the next. Only one chunk waits ahead, so another poll's work still
        gets the pool between two of this one's chunks."""
        loop = asyncio.get_running_loop()
        work = partial(score_batch, routing=routing)
        starts = iter(range(0, len(items), chunk))
        pending: deque[asyncio.Future[list[Enrichment]]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                batch = list(items[start : start + chunk])
                pending.append(loop.run_in_executor(self._executor, work, batch))

        submit()
        try:
            while pending:
                scored = await pending.popleft()
                submit()
                yield scored
        finally:
            for future in pending:
                future.cancel()

    async def match(
        self, rules: MatchRules, items: Sequence[tuple[str, PostFields]], *, chunk: int = 500
    ) -> list[Hits]:
        """Which watches each post matches, off the event loop like scoring."""
        loop = asyncio.get_running_loop()
        results: list[Hits] = []
        for start in range(0, len(items), chunk):
            batch = list(items[start : start + chunk])
            results.extend(await loop.run_in_executor(self._executor, match_batch, rules, batch))
        return results

    async def sign(self, texts: Sequence[str], *, chunk: int = 500) -> list[bytes | None]:
        """Near-duplicate signatures of texts, off the event loop like scoring (bot/clustering)."""
        loop = asyncio.get_running_loop()
        results: list[bytes | None] = []
        for start in range(0, len(texts), chunk):
            batch = list(texts[start : start + chunk])
            results.extend(await loop.run_in_executor(self._executor, sign_batch, batch))
        return results

    @property
    def executor(self) -> Executor:
        """The pool, for other CPU work that must stay out of the serving process (spikes)."""
        return self._executor

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
