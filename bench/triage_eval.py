"""How well Earful's triage finds bug reports and feature requests, against a baseline.

Runs the function behind ``earful classify --all`` (the same matching and scoring code the
pollers run) over a labelled set of app reviews, and, in the same run, a baseline: raw VADER
(no social-text cleaning, no domain layer) plus the v1 intent rules kept in
``bench/baseline/intents_v1.yml``. Prints precision / recall / F1 for bug report and feature
request detection, a confusion matrix (gold label × predicted), and the sentiment label
distribution per gold label, for both.

The rules are tuned by looking at odd ids only; even ids are held out, and both splits are
printed, so a gain that exists only on the ids that were looked at shows up as a gap.

    python bench/triage_eval.py [--data ../shared/data/app_reviews_labeled.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.classify import build_watch_set, classify_lines  # noqa: E402
from watchers.departments import Intent, WatchKind  # noqa: E402
from watchers.intents import detect_intents, load_rules  # noqa: E402
from watchers.sentiment import label_for  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "app_reviews_labeled.csv"
BASELINE_RULES = ROOT / "bench" / "baseline" / "intents_v1.yml"
BUG, FEATURE = "bug report", "feature request"
PREDICTED = ("bug report", "feature request", "both", "neither")
SENTIMENTS = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    text: str
    gold: str


@dataclass(frozen=True, slots=True)
class Prediction:
    bug: bool
    feature: bool
    sentiment: str

    @property
    def category(self) -> str:
        if self.bug and self.feature:
            return "both"
        return BUG if self.bug else FEATURE if self.feature else "neither"


def read_reviews(path: Path) -> list[Review]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [Review(int(r["id"]), r["text"], r["label"]) for r in csv.DictReader(handle)]


def earful(reviews: Sequence[Review]) -> list[Prediction]:
    # No watches: every review is a post about our brand (``--all --kind brand``).
    watch_set = build_watch_set([], routing=None, origin="none")
    lines = (json.dumps({"id": r.id, "text": r.text}) for r in reviews)
    out: list[Prediction] = []
    for record in classify_lines(lines, watch_set, unmatched_kind=WatchKind.BRAND):
        if "error" in record:
            raise SystemExit(f"line {record['line']}: {record['error']}")
        intents = {i["intent"] for i in record["intents"]}
        out.append(
            Prediction(
                bug=Intent.BUG_REPORT.value in intents,
                feature=Intent.FEATURE_REQUEST.value in intents,
                sentiment=record["sentiment"]["label"],
            )
        )
    return out


def baseline(reviews: Sequence[Review]) -> list[Prediction]:
    analyzer = SentimentIntensityAnalyzer()
    rules = load_rules(BASELINE_RULES)
    out: list[Prediction] = []
    for review in reviews:
        intents = {hit.intent for hit in detect_intents(review.text, rules=rules)}
        compound = analyzer.polarity_scores(review.text)["compound"]
        out.append(
            Prediction(
                bug=Intent.BUG_REPORT in intents,
                feature=Intent.FEATURE_REQUEST in intents,
                sentiment=label_for(compound),
            )
        )
    return out


def prf(gold: Iterable[bool], predicted: Iterable[bool]) -> tuple[float, float, float]:
    pairs = list(zip(gold, predicted, strict=True))
    tp = sum(g and p for g, p in pairs)
    fp = sum(p and not g for g, p in pairs)
    fn = sum(g and not p for g, p in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def metrics_table(
    reviews: Sequence[Review], systems: dict[str, list[Prediction]], keep: Callable[[int], bool]
) -> list[str]:
    rows = [
        f"  {'label':<16} {'system':<9} {'precision':>9} {'recall':>7} {'F1':>6}",
    ]
    index = [i for i, r in enumerate(reviews) if keep(r.id)]
    for label, pick in ((BUG, "bug"), (FEATURE, "feature")):
        gold = [reviews[i].gold == label for i in index]
        for name, predictions in systems.items():
            p, r, f = prf(gold, [getattr(predictions[i], pick) for i in index])
            rows.append(f"  {label:<16} {name:<9} {p:>9.3f} {r:>7.3f} {f:>6.3f}")
    return rows


def confusion(reviews: Sequence[Review], predictions: list[Prediction]) -> list[str]:
    counts = Counter((r.gold, p.category) for r, p in zip(reviews, predictions, strict=True))
    golds = sorted({r.gold for r in reviews})
    corner = "gold / predicted"
    rows = ["  " + f"{corner:<18}" + "".join(f"{c:>17}" for c in PREDICTED)]
    for gold in golds:
        rows.append("  " + f"{gold:<18}" + "".join(f"{counts[(gold, c)]:>17}" for c in PREDICTED))
    return rows


def sentiment_table(reviews: Sequence[Review], predictions: list[Prediction]) -> list[str]:
    counts = Counter((r.gold, p.sentiment) for r, p in zip(reviews, predictions, strict=True))
    totals = Counter(r.gold for r in reviews)
    rows = ["  " + f"{'gold':<18}" + "".join(f"{s:>11}" for s in SENTIMENTS)]
    for gold in sorted(totals):
        rows.append(
            "  "
            + f"{gold:<18}"
            + "".join(f"{counts[(gold, s)] / totals[gold]:>11.1%}" for s in SENTIMENTS)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    reviews = read_reviews(args.data)

    started = time.perf_counter()
    ours = earful(reviews)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    base = baseline(reviews)
    base_seconds = time.perf_counter() - started
    systems = {"earful": ours, "baseline": base}

    print(
        f"data: {args.data.name}, {len(reviews)} reviews, {dict(Counter(r.gold for r in reviews))}"
    )
    print("earful   = earful classify --all (kind brand): social cleaning + VADER + domain")
    print("           layer, watchers/data/intents.yml")
    print("baseline = raw VADER + bench/baseline/intents_v1.yml (the v1 rules)")
    print(f"time: earful {ours_seconds:.1f}s, baseline {base_seconds:.1f}s")
    for title, keep in (
        ("all ids", lambda _: True),
        ("odd ids (looked at while tuning)", lambda i: i % 2 == 1),
        ("even ids (held out)", lambda i: i % 2 == 0),
    ):
        print(f"\ndetection, {title}")
        print("\n".join(metrics_table(reviews, systems, keep)))
    for name, predictions in systems.items():
        print(f"\nconfusion matrix, {name}, all ids")
        print("\n".join(confusion(reviews, predictions)))
    for name, predictions in systems.items():
        print(f"\nsentiment label share per gold label, {name}, all ids")
        print("\n".join(sentiment_table(reviews, predictions)))


if __name__ == "__main__":
    main()
