"""Is a watch spiking? Tests of one window's numbers against the watch's own baseline.

Pure functions: hourly counts in, a :class:`SpikeTest` out; no database, no Slack.

Two tests, each one-sided (only "more than usual" matters):

- **Volume**: the window's mention count against the upper tail of a negative binomial whose
  mean is the watch's usual rate *at this time of day* and whose extra variance is measured on
  the baseline itself. Mention counts are burstier than Poisson (stories are retold across
  sources, news cycles cluster), and a Poisson model calls ordinary bursts "impossible"; with
  no measurable extra variance the negative binomial is the Poisson.
- **Negative share**: the window's negative and other mentions against the baseline's, by a
  one-sided Fisher exact test (a two-proportion test that is exact for small counts and
  accounts for the baseline's share being itself an estimate, which matters for a watch with
  a few dozen mentions of history).

A p-value alone never opens a spike: a window also needs a minimum count and a minimum size
against what was expected, so 1 → 3 mentions, or 10 % → 14 % negative over many mentions, is
never a crisis. The p-value threshold is divided among the tests of one check (Bonferroni),
because a check tests every busy watch twice.

Each test also says whether a spike of its kind has *subsided*. The rule to end one is much
looser than the rule to start one (hysteresis), so a spike hovering near the threshold does
not open, close and reopen — which would alert executives again — every few minutes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class SpikeKind(StrEnum):
    VOLUME = "volume"
    NEGATIVE = "negative"


# ---------------------------------------------------------------- volume

# A baseline shorter than this is no baseline: a watch created this morning has nothing to be
# compared with, and its first polls bring in a backlog of posts all found at once.
MIN_BASELINE_HOURS = 24
# The expected count per hour never goes below this. Without a floor a watch that saw nothing
# for a week would "spike" on its first two mentions (p ≈ 0 against a rate of 0). With it and
# the p-value below, a quiet watch needs 6 mentions in an hour to spike.
EXPECTED_FLOOR_PER_HOUR = 1.0
# Fewer mentions than this never make a crisis, however unusual.
MIN_SPIKE_COUNT = 5
# The window must hold at least this many times the expected count: with a busy watch a
# small relative rise is already "significant", but not worth waking PR for.
MIN_SPIKE_RATIO = 3.0
# The check runs every few minutes for every watch, so the per-test threshold is strict to
# keep false alarms rare across all those tests ...
SPIKE_P_VALUE = 0.001
# ... and stricter still when one check tests many watches: the chance that any test of one
# check passes the threshold by chance is kept under this (Bonferroni; see spike_threshold).
FAMILY_P_VALUE = 0.01
# The usual rate at this time of day is the mean of the same hour, and the hours either side,
# on each earlier day of the baseline: 3 hours × 7 days = 21 samples in a full week.
SEASON_HOURS = 24
SEASON_BAND = 1
# How many hours' worth of weight the whole baseline's mean gets against those samples.
SEASON_PRIOR_HOURS = 3
# A volume spike has ended once the window is back under this multiple of expected, or no
# longer even mildly unusual.
END_RATIO = 1.5
END_P_VALUE = 0.05

# ---------------------------------------------------------------- negative share

# The baseline needs this many mentions before its negative share means anything.
NEGATIVE_MIN_BASELINE = 20
# The window needs this many mentions, and this many negative ones, to be tested at all.
NEGATIVE_MIN_WINDOW = 10
NEGATIVE_MIN_COUNT = 5
# The usual negative share is taken to be at least this: a watch with no negatives all week
# would otherwise make a single negative mention infinitely surprising.
NEGATIVE_SHARE_FLOOR = 0.05
# The window's negative share must exceed the usual one by this many points (0.25 = 25
# percentage points): a shift from 10 % to 14 % over many mentions is significant but not a
# crisis.
NEGATIVE_MIN_UPLIFT = 0.25
# A negative-share spike has ended once the uplift is under this, or p is above END_P_VALUE.
NEGATIVE_END_UPLIFT = 0.10


@dataclass(frozen=True, slots=True)
class SpikeTest:
    """One test of one window. ``observed`` and ``expected`` count mentions (negative mentions
    for :attr:`SpikeKind.NEGATIVE`); ``p_value`` is the chance of at least ``observed`` if
    nothing had changed."""

    kind: SpikeKind
    observed: float
    expected: float
    p_value: float
    is_spike: bool  # open a spike now (if none is open)
    subsided: bool  # close an open spike of this kind
    reason: str


def format_p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def describe(kind: SpikeKind | str, observed: float, expected: float, p_value: float) -> str:
    """The human reason for a test's numbers (also rebuilt from a stored spike for its card)."""
    count = round(observed)
    if kind == SpikeKind.NEGATIVE:
        noun = "negative mention" if count == 1 else "negative mentions"
        tail = "expected from the usual negative share"
    else:
        noun = "mention" if count == 1 else "mentions"
        tail = "expected"
    return f"{count} {noun} in the last hour vs {expected:.1f} {tail} ({format_p(p_value)})"


def in_words(kind: SpikeKind | str, observed: float, expected: float, p_value: float) -> str:
    """The test result for people who do not read p-values (executives, mostly)."""
    if expected <= 0:
        return ""
    multiple = observed / expected
    times = f"About {multiple:.0f}×" if multiple >= 2 else f"{multiple:.1f}×"
    if kind == SpikeKind.NEGATIVE:
        size, event = f"{times} the negative mentions the usual share would give", "that"
    else:
        size, event = f"{times} the usual rate for this time of day", "an hour this busy"
    if p_value < 0.001:
        odds = "less than once in 1,000 hours"
    elif p_value < 0.5:
        odds = f"about once in {round(1 / p_value):,} hours"
    else:
        return f"{size}; nothing unusual."
    return f"{size}; by chance alone, {event} comes {odds}."


def spike_threshold(tests: int) -> float:
    """The p-value under which one of ``tests`` tests of one check may open a spike."""
    return min(SPIKE_P_VALUE, FAMILY_P_VALUE / max(tests, 1))


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a watch's history says about an hour like the current one."""

    expected: float  # mean count to expect now, never below EXPECTED_FLOOR_PER_HOUR
    dispersion: float  # φ in Var = μ + φμ² (0: Poisson)


def seasonal_baseline(baseline: Sequence[int]) -> Baseline:
    """The expected count for the hour after ``baseline`` and the counts' overdispersion.

    ``baseline[-1]`` is the hour just before the window, so ``baseline[-24]`` is the window's
    hour one day earlier. The expected count is the mean around this time of day on earlier
    days, so a daily peak is not a spike and a burst at night is measured against the night.
    That mean is shrunk towards the whole baseline's mean by SEASON_PRIOR_HOURS pseudo-hours:
    a watch with two days of history has only a few samples of "this time of day".
    The floor and MIN_SPIKE_COUNT keep quiet hours from turning 1 → 3 mentions into a crisis.
    """
    n = len(baseline)
    mean = sum(baseline) / n
    same_time = [
        baseline[-lag]
        for day in range(1, n // SEASON_HOURS + 2)
        for lag in range(day * SEASON_HOURS - SEASON_BAND, day * SEASON_HOURS + SEASON_BAND + 1)
        if 0 < lag <= n
    ]
    seasonal = (sum(same_time) + SEASON_PRIOR_HOURS * mean) / (len(same_time) + SEASON_PRIOR_HOURS)
    expected = max(seasonal, EXPECTED_FLOOR_PER_HOUR)
    return Baseline(expected=expected, dispersion=_dispersion(baseline))


def _dispersion(baseline: Sequence[int]) -> float:
    """Method-of-moments φ of a negative binomial around each hour of day's own mean.

    Measured against the daily profile rather than the overall mean, so that a regular
    day/night rhythm is not mistaken for burstiness (which would hide real spikes).
    """
    n = len(baseline)
    by_phase: dict[int, list[int]] = defaultdict(list)
    for index, count in enumerate(baseline):
        by_phase[(n - index) % SEASON_HOURS].append(count)
    freedom = n - len(by_phase)
    if freedom < SEASON_HOURS:
        return 0.0  # about a day of history: too little to measure a variance
    profile = {phase: sum(counts) / len(counts) for phase, counts in by_phase.items()}
    residual = sum((c - profile[phase]) ** 2 for phase, cs in by_phase.items() for c in cs)
    squares = sum(profile[(n - i) % SEASON_HOURS] ** 2 for i in range(n)) / n
    if squares == 0:
        return 0.0  # a silent baseline
    return max(0.0, (residual / freedom - sum(baseline) / n) / squares)


def upper_tail(current: int, expected: float, dispersion: float) -> float:
    """P(X ≥ current) for a count with mean ``expected`` and NB dispersion φ."""
    if current <= 0:
        return 1.0
    # scipy.stats is imported here, not at start-up: it is tens of MB a process only needs once
    # a watch has mentions in the window.
    from scipy.stats import nbinom, poisson

    if dispersion <= 0:
        return float(poisson.sf(current - 1, expected))  # sf(k) is P(X > k)
    size = 1 / dispersion  # scipy's n; its p is n / (n + μ)
    return float(nbinom.sf(current - 1, size, size / (size + expected)))


def volume_test(
    baseline: Sequence[int], current: int, *, threshold: float = SPIKE_P_VALUE
) -> SpikeTest:
    """Test one hour's ``current`` count against ``baseline``, the counts of the hours before.

    ``baseline`` holds one count per hour, zeros included, oldest first, and only hours in
    which the watch existed; it must not include the current window, or a spike would raise
    its own bar. ``threshold`` is the p-value to beat (see :func:`spike_threshold`).
    """
    if len(baseline) < MIN_BASELINE_HOURS:
        return SpikeTest(
            kind=SpikeKind.VOLUME,
            observed=float(current),
            expected=0.0,
            p_value=1.0,
            is_spike=False,
            subsided=True,
            reason=f"not enough history ({len(baseline)} h, needs {MIN_BASELINE_HOURS} h)",
        )
    usual = seasonal_baseline(baseline)
    expected = usual.expected
    p_value = upper_tail(current, expected, usual.dispersion)
    ratio = current / expected  # expected ≥ EXPECTED_FLOOR_PER_HOUR > 0
    return SpikeTest(
        kind=SpikeKind.VOLUME,
        observed=float(current),
        expected=expected,
        p_value=p_value,
        is_spike=(current >= MIN_SPIKE_COUNT and ratio >= MIN_SPIKE_RATIO and p_value < threshold),
        subsided=ratio < END_RATIO or p_value > END_P_VALUE,
        reason=describe(SpikeKind.VOLUME, current, expected, p_value),
    )


def negative_test(
    *,
    baseline_total: int,
    baseline_negative: int,
    current_total: int,
    current_negative: int,
    threshold: float = SPIKE_P_VALUE,
) -> SpikeTest:
    """Test the window's share of negative mentions against the baseline's share."""
    if baseline_total < NEGATIVE_MIN_BASELINE or current_total == 0:
        why = (
            f"not enough history ({baseline_total} mentions, needs {NEGATIVE_MIN_BASELINE})"
            if baseline_total < NEGATIVE_MIN_BASELINE
            else "no mentions in the last hour"
        )
        return SpikeTest(
            kind=SpikeKind.NEGATIVE,
            observed=float(current_negative),
            expected=0.0,
            p_value=1.0,
            is_spike=False,
            subsided=True,
            reason=why,
        )
    usual = max(baseline_negative / baseline_total, NEGATIVE_SHARE_FLOOR)
    share = current_negative / current_total
    uplift = share - usual
    expected = current_total * usual
    p_value = 1.0
    if current_negative > 0:
        from scipy.stats import fisher_exact  # see upper_tail

        table = [
            [current_negative, current_total - current_negative],
            [baseline_negative, baseline_total - baseline_negative],
        ]
        p_value = float(fisher_exact(table, alternative="greater").pvalue)
    return SpikeTest(
        kind=SpikeKind.NEGATIVE,
        observed=float(current_negative),
        expected=expected,
        p_value=p_value,
        is_spike=(
            current_total >= NEGATIVE_MIN_WINDOW
            and current_negative >= NEGATIVE_MIN_COUNT
            and uplift >= NEGATIVE_MIN_UPLIFT
            and p_value < threshold
        ),
        subsided=uplift < NEGATIVE_END_UPLIFT or p_value > END_P_VALUE,
        reason=(
            f"{current_negative} of {current_total} mentions negative in the last hour "
            f"({share:.0%}) vs {usual:.0%} usually ({format_p(p_value)})"
        ),
    )
