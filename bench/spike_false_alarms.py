"""False alarms and detection of the volume spike test on simulated watches; prints figures.

Each simulated watch has a daily rhythm (busy 08:00-20:00 UTC) and bursty, negative-binomial
hourly counts. A week of history is the baseline; every hour of the following week is then
tested as "the last hour", first as it is (any spike is a false alarm), then with a burst of
k times the usual count for that hour added (a spike is a detection). The same is done with a
plain Poisson test against the week's flat mean, the test this one replaced.

    python bench/spike_false_alarms.py [--watches 200] [--seed 7]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import poisson

from watchers import spikes

WEEK = 7 * 24


def flat_poisson(baseline: Sequence[int], current: int, threshold: float) -> bool:
    """The earlier test: Poisson against the week's mean, same minimums."""
    expected = max(sum(baseline) / len(baseline), spikes.EXPECTED_FLOOR_PER_HOUR)
    p_value = float(poisson.sf(current - 1, expected)) if current > 0 else 1.0
    return (
        current >= spikes.MIN_SPIKE_COUNT
        and current / expected >= spikes.MIN_SPIKE_RATIO
        and p_value < threshold
    )


def seasonal_nb(baseline: Sequence[int], current: int, threshold: float) -> bool:
    return spikes.volume_test(baseline, current, threshold=threshold).is_spike


def simulate(
    rng: np.random.Generator, watches: int, day: float, night: float, dispersion: float
) -> list[tuple[list[int], np.ndarray]]:
    """Per watch: two weeks of hourly counts (oldest first) and the rate of each hour."""
    out = []
    for _ in range(watches):
        scale = rng.uniform(0.5, 2.0)
        rates = np.array(
            [scale * (day if 8 <= hour % 24 < 20 else night) for hour in range(2 * WEEK)]
        )
        size = 1 / dispersion
        counts = rng.negative_binomial(size, size / (size + rates))
        out.append(([int(c) for c in counts], rates))
    return out


def rates(
    test: Callable[[Sequence[int], int, float], bool],
    weeks: list[tuple[list[int], np.ndarray]],
    burst: float,
    threshold: float,
) -> float:
    flagged = tested = 0
    for counts, hourly in weeks:
        for hour in range(WEEK, 2 * WEEK):
            current = counts[hour] + round(float(burst * hourly[hour]))
            flagged += test(counts[hour - WEEK : hour], current, threshold)
            tested += 1
    return flagged / tested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    threshold = spikes.spike_threshold(2 * 20)  # a check testing 20 busy watches
    print(f"{args.watches} watches × {WEEK} hours, p threshold {threshold:g}")
    print(f"{'traffic':<34} {'test':<14} {'false/1000 h':>12} {'found 3x':>9} {'found 6x':>9}")
    for label, day, night, dispersion in (
        ("day 12/h, night 2/h, φ=0.3", 12.0, 2.0, 0.3),
        ("day 40/h, night 5/h, φ=0.1", 40.0, 5.0, 0.1),
        ("flat 3/h, φ=0.05", 3.0, 3.0, 0.05),
    ):
        weeks = simulate(rng, args.watches, day, night, dispersion)
        for name, test in (("poisson, flat", flat_poisson), ("seasonal NB", seasonal_nb)):
            false = rates(test, weeks, 0.0, threshold)
            # A burst of k× the usual count *on top of* the usual count.
            three = rates(test, weeks, 2.0, threshold)
            six = rates(test, weeks, 5.0, threshold)
            print(f"{label:<34} {name:<14} {1000 * false:>12.2f} {three:>9.1%} {six:>9.1%}")


if __name__ == "__main__":
    main()
