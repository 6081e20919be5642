"""Scoring bursts of posts off the event loop.

VADER and the intent rules are pure Python: in a thread they would still hold the GIL and
slow every ack, so by default they run in a small process pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from watchers.departments import Department, WatchKind
from watchers.enrich import Enrichment, enrich


@dataclass(frozen=True, slots=True)
class ScoreInput:
    title: str | None
    text: str
    kind: WatchKind
    department_override: Department | None
    author_reach: int | None


def score_batch(items: Sequence[ScoreInput]) -> list[Enrichment]:
    return [
        enrich(
            title=item.title,
            text=item.text,
            kind=item.kind,
            department_override=item.department_override,
            author_reach=item.author_reach,
        )
        for item in items
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

    async def score(self, items: Sequence[ScoreInput], *, chunk: int = 200) -> list[Enrichment]:
        loop = asyncio.get_running_loop()
        results: list[Enrichment] = []
        for start in range(0, len(items), chunk):
            batch = list(items[start : start + chunk])
            results.extend(await loop.run_in_executor(self._executor, score_batch, batch))
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
