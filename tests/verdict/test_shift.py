"""The baseline comparison's statistics against scipy and brute force, on weighted and plain
samples; and on two runs' latency histograms: a service slowed by 20% is slower with an interval
that excludes 0, an unchanged one is not."""

from __future__ import annotations

from collections import Counter
from statistics import median

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from gonogo.loadgen import histogram as hist
from gonogo.verdict.shift import TooFewValues, compare, histogram_sample


def _plain(values: list[float]) -> dict[float, int]:
    return dict(Counter(values))


def test_u_and_p_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(7)
    baseline = [float(v) for v in rng.integers(0, 30, 60)]  # many ties
    candidate = [float(v) for v in rng.integers(3, 33, 45)]
    found = compare(_plain(baseline), _plain(candidate))
    expected = mannwhitneyu(candidate, baseline, alternative="two-sided", method="asymptotic")
    assert found.u == pytest.approx(expected.statistic)
    assert found.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert found.baseline_count == 60 and found.candidate_count == 45


def test_the_shift_is_the_median_of_every_pairwise_difference() -> None:
    baseline = [1.0, 2.0, 2.0, 5.0, 9.0]
    candidate = [3.0, 4.0, 4.0, 4.0, 11.0, 12.0]
    found = compare(_plain(baseline), _plain(candidate))
    assert found.shift == median(c - b for c in candidate for b in baseline)
    assert found.low <= found.shift <= found.high


def test_a_slowdown_of_20_percent_is_significant_and_no_change_is_not() -> None:
    """Two runs' latencies as gonogo keeps them (2-significant-digit histogram buckets, in µs):
    lognormal around 40 ms, the candidate's every request 20% slower."""
    rng = np.random.default_rng(11)

    def run(scale: float, n: int) -> dict[float, int]:
        histogram = hist.new_histogram(2)
        for latency in rng.lognormal(np.log(40_000), 0.4, n) * scale:
            histogram.record_value(int(latency))
        sample = histogram_sample(histogram)
        assert sum(sample.values()) == n and len(sample) < 1_000  # buckets, not requests
        return sample

    baseline = run(1.0, 20_000)
    slower = compare(baseline, run(1.2, 20_000))
    assert slower.significant and slower.low > 0 and slower.p_value < 1e-6
    assert 0.15 * 40_000 < slower.shift < 0.25 * 40_000  # about 8 ms at the median
    assert slower.effect_size > 0.6
    same = compare(baseline, run(1.0, 20_000))
    assert not same.significant and same.low <= 0 <= same.high
    assert same.p_value > 0.01


def test_nothing_to_compare_is_said() -> None:
    with pytest.raises(TooFewValues, match="the baseline has no value"):
        compare({}, {1.0: 3})
    # every value equal: no difference, p = 1
    found = compare({5.0: 10}, {5.0: 7})
    assert found.p_value == 1.0 and found.shift == 0.0 and not found.significant


def test_histogram_sample_matches_hdrh_recorded_iterator() -> None:
    rng = np.random.default_rng(3)
    histogram = hist.new_histogram()
    for value in rng.lognormal(9, 1.5, 5000).astype(int) + 1:
        histogram.record_value(int(value))
    expected: Counter[float] = Counter()
    for bucket in histogram.get_recorded_iterator():  # hdrh's own walk (slow, in Python)
        high = bucket.value_iterated_to
        middle = (histogram.get_lowest_equivalent_value(high) + high) / 2
        expected[middle] += bucket.count_added_in_this_iter_step
    assert histogram_sample(histogram) == dict(expected)
