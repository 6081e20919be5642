"""The spike statistics: bursts fire, noise and thin history do not, and spikes end."""

from __future__ import annotations

import numpy as np
import pytest

from watchers import spikes
from watchers.spikes import SpikeKind, describe, negative_test, volume_test

WEEK = 7 * 24


def test_a_burst_over_a_flat_baseline_is_a_spike() -> None:
    result = volume_test([3] * WEEK, 42)
    assert result.kind == SpikeKind.VOLUME
    assert result.is_spike and not result.subsided
    assert result.observed == 42 and result.expected == pytest.approx(3.0)
    assert result.p_value < 1e-15
    assert result.reason == "42 mentions in the last hour vs 3.0 expected (p < 0.001)"


def test_poisson_noise_is_not_a_spike() -> None:
    rng = np.random.default_rng(20240501)
    baseline = [int(x) for x in rng.poisson(4.0, WEEK)]
    # Every hour of a noisy week, and a fresh week of the same noise, tested as "the last hour".
    for current in baseline + [int(x) for x in rng.poisson(4.0, WEEK)]:
        assert not volume_test(baseline, current).is_spike, current


def test_thin_history_does_not_spike_on_a_few_mentions() -> None:
    # A week without a single mention: two mentions are no crisis, however improbable.
    quiet = volume_test([0] * WEEK, 2)
    assert not quiet.is_spike
    assert quiet.expected == spikes.EXPECTED_FLOOR_PER_HOUR
    # With the floor, five mentions are still within reach of chance (p ≈ 0.004) ...
    assert not volume_test([0] * WEEK, 5).is_spike
    # ... and six are not.
    assert volume_test([0] * WEEK, 6).is_spike


def test_a_watch_younger_than_a_day_has_no_baseline() -> None:
    young = volume_test([0] * 10, 50)
    assert not young.is_spike and young.subsided
    assert "not enough history" in young.reason


def test_a_busy_watch_needs_a_real_multiple_not_just_significance() -> None:
    busy = volume_test([100] * WEEK, 150)
    assert busy.p_value < spikes.SPIKE_P_VALUE  # significant ...
    assert not busy.is_spike  # ... but 1.5× is no crisis
    assert volume_test([100] * WEEK, 300).is_spike


def test_a_volume_spike_ends_only_well_below_where_it_started() -> None:
    baseline = [3] * WEEK
    assert volume_test(baseline, 0).subsided
    assert volume_test(baseline, 4).subsided  # under 1.5× expected
    lingering = volume_test(baseline, 8)  # 2.7× and p ≈ 0.01: no new spike, not over either
    assert not lingering.is_spike and not lingering.subsided


def test_a_shift_in_negative_share_is_a_spike() -> None:
    result = negative_test(
        baseline_total=500, baseline_negative=50, current_total=25, current_negative=18
    )
    assert result.kind == SpikeKind.NEGATIVE
    assert result.is_spike and not result.subsided
    assert result.expected == pytest.approx(2.5)
    assert result.reason == (
        "18 of 25 mentions negative in the last hour (72%) vs 10% usually (p < 0.001)"
    )


def test_usual_negative_share_is_not_a_spike() -> None:
    result = negative_test(
        baseline_total=500, baseline_negative=50, current_total=25, current_negative=4
    )
    assert not result.is_spike and result.subsided


@pytest.mark.parametrize(
    ("baseline_total", "baseline_negative", "current_total", "current_negative", "why"),
    [
        (10, 1, 25, 20, "too little history to know the usual share"),
        (500, 50, 6, 6, "too few mentions in the window"),
        (500, 0, 12, 4, "too few negative mentions, even against a spotless week"),
        (5000, 500, 2000, 300, "significant, but 15 % against 10 % is no crisis"),
    ],
)
def test_negative_share_guards(
    baseline_total: int, baseline_negative: int, current_total: int, current_negative: int, why: str
) -> None:
    result = negative_test(
        baseline_total=baseline_total,
        baseline_negative=baseline_negative,
        current_total=current_total,
        current_negative=current_negative,
    )
    assert not result.is_spike, why


def test_a_spotless_week_uses_the_floor_share() -> None:
    result = negative_test(
        baseline_total=500, baseline_negative=0, current_total=20, current_negative=6
    )
    assert result.expected == pytest.approx(20 * spikes.NEGATIVE_SHARE_FLOOR)
    assert result.is_spike


def test_a_negative_spike_ends_when_the_share_is_back() -> None:
    back = negative_test(
        baseline_total=500, baseline_negative=50, current_total=30, current_negative=5
    )
    assert back.subsided
    assert negative_test(
        baseline_total=500, baseline_negative=50, current_total=0, current_negative=0
    ).subsided


def test_describe_matches_the_stored_numbers() -> None:
    assert describe("volume", 1, 0.5, 0.2) == (
        "1 mention in the last hour vs 0.5 expected (p = 0.200)"
    )
    assert describe(SpikeKind.NEGATIVE, 12, 2.04, 0.00001) == (
        "12 negative mentions in the last hour vs 2.0 expected from the usual negative share "
        "(p < 0.001)"
    )


# ---------------------------------------------------------------- baseline, dispersion, words


def daily(day: int, night: int) -> list[int]:
    """A week, oldest first, ending just before midnight: busy from 08:00 to 20:00."""
    return [day if 8 <= hour % 24 < 20 else night for hour in range(WEEK)]


def test_a_daily_peak_is_not_a_spike_but_the_same_count_at_night_is() -> None:
    # The window is 00:00-01:00: 20 samples around midnight (the 7th day's 23:00 is older than
    # the week), shrunk towards the week's mean of 7 by 3 pseudo-hours.
    week = daily(12, 2)
    at_night = volume_test(week, 24)
    assert at_night.is_spike and at_night.expected == pytest.approx((20 * 2 + 3 * 7) / 23)
    # Shifted by twelve hours the window is 12:00-13:00, when 12 an hour is normal.
    at_noon = volume_test(week[12:] + week[:12], 24)
    assert at_noon.expected == pytest.approx((20 * 12 + 3 * 7) / 23)
    assert not at_noon.is_spike  # about twice the usual for this hour: no crisis
    assert volume_test(week[12:] + week[:12], 40).is_spike
    # A quiet night still needs a real burst: 6 is about twice its usual 2.7.
    assert not volume_test(week, 6).is_spike


def test_a_regular_daily_rhythm_is_not_mistaken_for_burstiness() -> None:
    assert spikes.seasonal_baseline(daily(12, 2)).dispersion == 0.0


def test_a_bursty_baseline_raises_the_bar() -> None:
    bursty = [15 if hour % 5 == 0 else 0 for hour in range(WEEK)]  # 3 an hour, in bursts
    usual = spikes.seasonal_baseline(bursty)
    assert usual.dispersion > 1
    # A Poisson model would call 13 "p < 0.001" against about 3.75 an hour ...
    assert spikes.upper_tail(13, usual.expected, 0.0) < spikes.SPIKE_P_VALUE
    # ... but this watch does about that every fifth hour.
    assert not volume_test(bursty, 13).is_spike
    assert volume_test(bursty, 13).p_value > 0.05
    assert volume_test(bursty, 150).is_spike


def test_one_to_three_mentions_is_never_a_crisis() -> None:
    assert not volume_test([1] * WEEK, 3).is_spike
    assert not volume_test([0] * WEEK, 3).is_spike
    assert not negative_test(
        baseline_total=168, baseline_negative=0, current_total=3, current_negative=3
    ).is_spike


def test_a_silent_or_missing_history_divides_by_nothing() -> None:
    assert not volume_test([], 0).is_spike
    silent = volume_test([0] * WEEK, 0)
    assert silent.p_value == 1.0 and silent.subsided
    assert spikes.seasonal_baseline([0] * WEEK) == spikes.Baseline(
        expected=spikes.EXPECTED_FLOOR_PER_HOUR, dispersion=0.0
    )


def test_many_watches_share_one_false_alarm_budget() -> None:
    assert spikes.spike_threshold(2) == spikes.SPIKE_P_VALUE
    assert spikes.spike_threshold(200) == pytest.approx(spikes.FAMILY_P_VALUE / 200)
    # p ≈ 0.0006: a spike when one watch is tested, not when 100 are.
    assert volume_test([0] * WEEK, 6).is_spike
    assert not volume_test([0] * WEEK, 6, threshold=spikes.spike_threshold(200)).is_spike


def test_the_result_in_words() -> None:
    assert spikes.in_words(SpikeKind.VOLUME, 40, 3.0, 1e-20) == (
        "About 13× the usual rate for this time of day; by chance alone, an hour this busy "
        "comes less than once in 1,000 hours."
    )
    assert spikes.in_words(SpikeKind.NEGATIVE, 6, 1.5, 0.004) == (
        "About 4× the negative mentions the usual share would give; by chance alone, that "
        "comes about once in 250 hours."
    )
    assert spikes.in_words(SpikeKind.VOLUME, 3, 3.0, 0.6).endswith("nothing unusual.")
    assert spikes.in_words(SpikeKind.VOLUME, 3, 0.0, 1.0) == ""
