"""A quantile of a run's values with its confidence interval, for relative gates on `.p95`, `.p99`.

A p95 gate asks about the p95, not about the whole distribution: 10% of requests slowed by
30 ms move the p95 a lot and the median not at all. The interval is distribution-free: the
number of values below the true quantile q of n values is binomial (n, q), so the order
statistics at ranks n·q ± z·sqrt(n·q·(1 - q)) (the normal approximation) bracket it with the
given confidence. The lower rank is rounded down and the upper one up (plus one, as the
upper order statistic must lie above the quantile), so the interval is never narrower than
the approximation allows. A sample too small for both ranks to exist has no interval: a
p99 of 30 values is its largest value, which bounds nothing.

Samples are weighted (value → count), as `shift.py` reads HdrHistogram buckets.
"""

from __future__ import annotations

__all__ = ["QuantileInterval", "TooFewForQuantile", "quantile_interval", "values_needed"]

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from gonogo.errors import GonogoError

_MOST_VALUES = 1 << 40  # values_needed stops looking here (a quantile this extreme is no gate)


class TooFewForQuantile(GonogoError, ValueError):
    """A sample too small to bound a quantile at the asked confidence."""

    def __init__(self, count: int, needed: int, quantile: float, confidence: float) -> None:
        self.count, self.needed = count, needed
        super().__init__(
            f"{count} values cannot bound the {quantile:.4g} quantile with {confidence:.0%} confidence; "
            f"it takes at least {needed}"
        )


@dataclass(frozen=True)
class QuantileInterval:
    """A sample's quantile (nearest rank) and the interval around the true quantile."""

    quantile: float  # in (0, 1): 0.95 for p95
    count: int
    value: float
    low: float
    high: float
    confidence: float


def quantile_interval(
    sample: Mapping[float, int], quantile: float, confidence: float = 0.95
) -> QuantileInterval:
    """The `quantile` of a weighted sample with its distribution-free confidence interval;
    raises `TooFewForQuantile` when the sample cannot bound it."""
    items = sorted((float(value), int(count)) for value, count in sample.items() if count > 0)
    count = sum(c for _, c in items)
    z = _z(confidence)
    ranks = _ranks(count, quantile, z)
    if ranks is None:
        raise TooFewForQuantile(count, values_needed(quantile, confidence), quantile, confidence)
    values = np.array([value for value, _ in items], dtype=float)
    cumulative = np.cumsum([c for _, c in items])

    def at(rank: int) -> float:
        return float(values[int(np.searchsorted(cumulative, rank, side="left"))])

    low, high = ranks
    return QuantileInterval(
        quantile=quantile,
        count=count,
        value=at(max(1, math.ceil(count * quantile))),
        low=at(low),
        high=at(high),
        confidence=confidence,
    )


def values_needed(quantile: float, confidence: float = 0.95) -> int:
    """The fewest values whose sample bounds `quantile` with `confidence`."""
    z = _z(confidence)
    high = 1
    while _ranks(high, quantile, z) is None:
        if high >= _MOST_VALUES:
            return high
        high *= 2
    low = high // 2  # the ranks exist at `high`; find the first count at which they do
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _ranks(middle, quantile, z) is not None else (middle, high)
    return high


def _z(confidence: float) -> float:
    return float(ndtri(0.5 + confidence / 2))


def _ranks(count: int, quantile: float, z: float) -> tuple[int, int] | None:
    """The 1-based ranks of the interval's ends; None when either falls outside the sample."""
    if count < 1:
        return None
    spread = z * math.sqrt(count * quantile * (1 - quantile))
    low = math.floor(count * quantile - spread)
    high = math.ceil(count * quantile + spread) + 1
    if low < 1 or high > count:
        return None
    return low, high
