"""Is a watch spiking? Tests of one window's numbers against the watch's own baseline.

Pure functions: hourly counts in, a :class:`SpikeTest` out; no database, no Slack.

Two tests, each one-sided (only "more than usual" matters):

- **Volume**: the window's mention count against a Poisson distribution whose rate is the
  watch's mean hourly count over the baseline. Posts arrive roughly independently, which is
  what the Poisson model assumes; stories retold across sources are not independent, which is
  one reason a spike also needs a minimum count and a minimum ratio, not only a small p-value.
- **Negative share**: the window's negative mentions against a binomial distribution with the
  window's mention count as trials and the baseline's negative share as the probability.

Each test also says whether a spike of its kind has *subsided*. The rule to end one is much
looser than the rule to start one (hysteresis), so a spike hovering near the threshold does
not open, close and reopen — which would alert executives again — every few minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from scipy.stats import binom, poisson


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
# keep false alarms rare across all those tests.
SPIKE_P_VALUE = 0.001
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


def volume_test(baseline: Sequence[int], current: int) -> SpikeTest:
    """Test one hour's ``current`` count against ``baseline``, the counts of the hours before.

    ``baseline`` holds one count per hour, zeros included, and only hours in which the watch
    existed; it must not include the current window, or a spike would raise its own bar.
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
    mean = sum(baseline) / len(baseline)
    expected = max(mean, EXPECTED_FLOOR_PER_HOUR)
    # P(X >= current): sf(k) is P(X > k).
    p_value = float(poisson.sf(current - 1, expected)) if current > 0 else 1.0
    ratio = current / expected
    return SpikeTest(
        kind=SpikeKind.VOLUME,
        observed=float(current),
        expected=expected,
        p_value=p_value,
        is_spike=(
            current >= MIN_SPIKE_COUNT and ratio >= MIN_SPIKE_RATIO and p_value < SPIKE_P_VALUE
        ),
        subsided=ratio < END_RATIO or p_value > END_P_VALUE,
        reason=describe(SpikeKind.VOLUME, current, expected, p_value),
    )


def negative_test(
    *,
    baseline_total: int,
    baseline_negative: int,
    current_total: int,
    current_negative: int,
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
    p_value = (
        float(binom.sf(current_negative - 1, current_total, usual)) if current_negative > 0 else 1.0
    )
    return SpikeTest(
        kind=SpikeKind.NEGATIVE,
        observed=float(current_negative),
        expected=expected,
        p_value=p_value,
        is_spike=(
            current_total >= NEGATIVE_MIN_WINDOW
            and current_negative >= NEGATIVE_MIN_COUNT
            and uplift >= NEGATIVE_MIN_UPLIFT
            and p_value < SPIKE_P_VALUE
        ),
        subsided=uplift < NEGATIVE_END_UPLIFT or p_value > END_P_VALUE,
        reason=(
            f"{current_negative} of {current_total} mentions negative in the last hour "
            f"({share:.0%}) vs {usual:.0%} usually ({format_p(p_value)})"
        ),
    )
