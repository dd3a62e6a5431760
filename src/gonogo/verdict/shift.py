"""Did a figure's distribution move between two runs, and by how much? (Issue 12: baselines.)

Kayenta's approach, on what gonogo stores: two samples of a figure (latencies from the
runs' HdrHistograms, as value → count buckets, or plain samples with count 1) compared with
the Mann-Whitney U test (two-sided, normal approximation with the tie correction and a
continuity correction: scipy's `mannwhitneyu(method="asymptotic")`), and the size of the
move as the Hodges-Lehmann shift (the median of every difference candidate - baseline) with
its distribution-free confidence interval (Moses: the order statistics of those differences
at the normal quantile of U). Never a bare ratio of two percentiles: a p95 that moved by 20%
between two runs of a few hundred requests may be noise, and this says whether it is.

Weighted throughout, so a histogram of a million requests costs its buckets, not its
requests: U from the merged buckets' mid-ranks, the shift and its interval from the weighted
differences of every pair of buckets (buckets of the baseline x buckets of the candidate).
"""

from __future__ import annotations

__all__ = ["Shift", "TooFewValues", "compare", "histogram_sample", "median"]

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

# the normal distribution's quantile and tail from scipy.special: scipy.stats costs 1.4 s to import
from scipy.special import ndtr, ndtri

from gonogo.errors import GonogoError

# pairs of distinct values the shift is computed from (each costs a sort slot); beyond, both
# samples are merged into log-spaced buckets, 0.25% wide first, then twice as wide until they fit
_MAX_PAIRS = 2_000_000
_FIRST_BUCKET = 0.0025


class TooFewValues(GonogoError, ValueError):
    """A sample too small to compare (an empty run, or a figure it did not measure)."""


@dataclass(frozen=True)
class Shift:
    """How the candidate's values differ from the baseline's."""

    baseline_count: int
    candidate_count: int
    u: float  # Mann-Whitney U of the candidate (the pairs in which its value is the larger, ties half)
    p_value: float  # two-sided
    shift: float  # Hodges-Lehmann: the median of candidate - baseline over every pair of values
    low: float  # the confidence interval of the shift
    high: float
    confidence: float

    @property
    def effect_size(self) -> float:
        """The probability that a candidate value exceeds a baseline value (ties half): 0.5 is
        no difference (the common-language effect size, U / (n1·n2))."""
        return self.u / (self.baseline_count * self.candidate_count)

    @property
    def significant(self) -> bool:
        """The interval excludes 0: the candidate is slower (or faster) beyond noise."""
        return self.low > 0 or self.high < 0


def compare(
    baseline: Mapping[float, int], candidate: Mapping[float, int], *, confidence: float = 0.95
) -> Shift:
    """Compare two weighted samples (value → how many times it was seen).

    A fine-grained histogram spanning milliseconds to seconds has thousands of buckets: when the
    pairs of distinct values exceed what the shift can sort, both samples are merged into
    log-spaced buckets (0.25% wide, doubling until they fit), which moves the shift by less than
    a bucket's width, far under any tolerance worth setting."""
    baseline, candidate = _bounded(baseline, candidate)
    base_values, base_counts = _arrays(baseline, "baseline")
    cand_values, cand_counts = _arrays(candidate, "candidate")
    n1, n2 = int(base_counts.sum()), int(cand_counts.sum())
    u, p_value = _mann_whitney(base_values, base_counts, cand_values, cand_counts)
    differences, weights = _pair_differences(base_values, base_counts, cand_values, cand_counts)
    # Moses' interval: drop the c_alpha smallest and largest of the n1·n2 differences
    z = float(ndtri(0.5 + confidence / 2))
    pairs = n1 * n2
    c_alpha = max(0.0, math.floor(pairs / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)))
    cumulative = np.cumsum(weights)
    return Shift(
        baseline_count=n1,
        candidate_count=n2,
        u=u,
        p_value=p_value,
        shift=_weighted_median(differences, cumulative),
        low=_at_rank(differences, cumulative, c_alpha + 1),
        high=_at_rank(differences, cumulative, pairs - c_alpha),
        confidence=confidence,
    )


def median(sample: Mapping[float, int]) -> float:
    """The weighted median of a sample (the mean of the two middle values of an even count)."""
    values, counts = _arrays(sample, "sample")
    return _weighted_median(values, np.cumsum(counts))


def _bounded(
    baseline: Mapping[float, int], candidate: Mapping[float, int]
) -> tuple[Mapping[float, int], Mapping[float, int]]:
    width = _FIRST_BUCKET
    while len(baseline) * len(candidate) > _MAX_PAIRS:
        baseline, candidate = _coarsened(baseline, width), _coarsened(candidate, width)
        width *= 2
    return baseline, candidate


def _coarsened(sample: Mapping[float, int], width: float) -> dict[float, int]:
    step = math.log1p(width)
    merged: dict[float, int] = {}
    for value, count in sample.items():
        key = math.exp(round(math.log(value) / step) * step) if value > 0 else value
        merged[key] = merged.get(key, 0) + count
    return merged


def histogram_sample(histogram: HdrHistogram) -> dict[float, int]:
    """A stored HdrHistogram as a weighted sample: each bucket's count at the middle of its
    range (the values in one bucket differ by less than its precision). Read from the counts
    array, not hdrh's recorded-values iterator, which steps through every bucket in Python
    (0.3 s a histogram)."""
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    sample: dict[float, int] = {}
    for index in np.flatnonzero(counts):
        low = histogram.get_value_from_index(int(index))
        middle = (low + histogram.get_highest_equivalent_value(low)) / 2
        sample[middle] = sample.get(middle, 0) + int(counts[index])
    return sample


def _arrays(sample: Mapping[float, int], which: str) -> tuple[np.ndarray, np.ndarray]:
    items = sorted((float(value), int(count)) for value, count in sample.items() if count > 0)
    if not items:
        raise TooFewValues(f"the {which} has no value to compare")
    values, counts = zip(*items, strict=True)
    return np.array(values, dtype=float), np.array(counts, dtype=np.int64)


def _mann_whitney(
    base_values: np.ndarray, base_counts: np.ndarray, cand_values: np.ndarray, cand_counts: np.ndarray
) -> tuple[float, float]:
    """U of the candidate and the two-sided p-value, from mid-ranks of the merged buckets."""
    values = np.concatenate([base_values, cand_values])
    counts = np.concatenate([base_counts, cand_counts])
    is_candidate = np.concatenate([np.zeros(len(base_values), bool), np.ones(len(cand_values), bool)])
    order = np.argsort(values, kind="stable")
    values, counts, is_candidate = values[order], counts[order], is_candidate[order]
    _, group = np.unique(values, return_inverse=True)
    tied = np.bincount(group, weights=counts).astype(np.int64)  # values equal across both samples
    ends = np.cumsum(tied)
    mid_rank = ends - (tied - 1) / 2.0  # ranks 1..N, ties at their mean
    n1, n2 = int(base_counts.sum()), int(cand_counts.sum())
    rank_sum = float((mid_rank[group] * counts * is_candidate).sum())
    u = rank_sum - n2 * (n2 + 1) / 2.0
    total = n1 + n2
    tie_term = float((tied.astype(float) ** 3 - tied).sum()) / (total * (total - 1)) if total > 1 else 0.0
    variance = n1 * n2 / 12.0 * ((total + 1) - tie_term)
    if variance <= 0:  # every value equal: nothing moved
        return u, 1.0
    mean = n1 * n2 / 2.0
    z = (abs(u - mean) - 0.5) / math.sqrt(variance)
    return u, float(min(1.0, 2 * ndtr(-max(z, 0.0))))


def _pair_differences(
    base_values: np.ndarray, base_counts: np.ndarray, cand_values: np.ndarray, cand_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate - baseline difference of a pair of buckets, sorted, with its weight (the
    number of value pairs it stands for)."""
    differences = np.subtract.outer(cand_values, base_values).ravel()
    weights = np.multiply.outer(cand_counts, base_counts).ravel()
    order = np.argsort(differences, kind="stable")
    return differences[order], weights[order]


def _at_rank(sorted_values: np.ndarray, cumulative: np.ndarray, rank: float) -> float:
    """The value at 1-based `rank` of the weighted, sorted values."""
    rank = min(max(rank, 1.0), float(cumulative[-1]))
    return float(sorted_values[int(np.searchsorted(cumulative, rank, side="left"))])


def _weighted_median(sorted_values: np.ndarray, cumulative: np.ndarray) -> float:
    total = float(cumulative[-1])
    if total % 2:  # odd: the middle one
        return _at_rank(sorted_values, cumulative, (total + 1) / 2)
    lower = _at_rank(sorted_values, cumulative, total / 2)
    return (lower + _at_rank(sorted_values, cumulative, total / 2 + 1)) / 2
