"""Scoring ahead: a burst comes back part by part, in order, as if scored in one call."""

from __future__ import annotations

from bot.scoring import ScoreInput, Scorer, score_batch
from watchers.departments import WatchKind

TEXTS = [
    "The app keeps crashing, please fix this",
    "Love the new dark mode",
    "I was charged twice and support never replied",
    "Can you add an export to CSV?",
    "We are switching to a competitor",
]


async def test_parts_come_back_in_order_and_score_as_one_call() -> None:
    items = [ScoreInput(None, text, WatchKind.BRAND, None, None) for text in TEXTS]
    scorer = Scorer(0)
    try:
        parts = [part async for part in scorer.score_ahead(items, chunk=2)]
    finally:
        scorer.close()
    assert [len(part) for part in parts] == [2, 2, 1]
    assert [scored for part in parts for scored in part] == score_batch(items)
