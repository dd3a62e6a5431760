"""Latency histograms of the load engine as real HdrHistograms (`hdrh`, PyPI `hdrhistogram`).

Values are microseconds; lowest discernible value 1 µs, highest trackable 3,600,000,000 µs
(one hour). The engine's main histograms keep 3 significant digits (a recorded value is
known to within 1/1024 of itself); its per-second histograms keep 2 (within 1/128).

The C engine records into exactly HdrHistogram's bucket/sub-bucket layout, so
`from_counts` rebuilds an `HdrHistogram` from its counts without loss: it equals one built
by `record_value` on the same values. `merge` adds histograms bucket by bucket;
`encode`/`decode` give the standard compressed base64 form (V2) used as evidence, which
any HdrHistogram implementation reads. Percentiles follow HdrHistogram: the value at
percentile p is the highest value equivalent (same bucket) to the recorded value of rank
`round(p/100 * count)`, so it is never below the exact nearest-rank percentile of the
samples and exceeds it by at most the bucket width.

Per-second histograms travel as sparse `(index, count)` pairs; `sparse_percentile` reads
them without building a histogram.
"""

from __future__ import annotations

__all__ = [
    "HIGHEST_TRACKABLE",
    "LOWEST_DISCERNIBLE",
    "SERIES_SIGNIFICANT_FIGURES",
    "SIGNIFICANT_FIGURES",
    "STANDARD_PERCENTILES",
    "HdrHistogram",
    "decode",
    "encode",
    "from_counts",
    "from_sparse",
    "highest_equivalent_value",
    "merge",
    "new_histogram",
    "percentiles",
    "sparse_percentile",
    "summary",
    "value_at_index",
]

import ctypes
from array import array
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

LOWEST_DISCERNIBLE = 1
HIGHEST_TRACKABLE = 3_600_000_000
SIGNIFICANT_FIGURES = 3
SERIES_SIGNIFICANT_FIGURES = 2
STANDARD_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

_WORD = 8  # counts are 64-bit


def new_histogram(significant_figures: int = SIGNIFICANT_FIGURES) -> HdrHistogram:
    """An empty histogram with the engine's layout."""
    return HdrHistogram(LOWEST_DISCERNIBLE, HIGHEST_TRACKABLE, significant_figures)


@lru_cache(maxsize=4)
def _layout(significant_figures: int) -> tuple[int, int, int]:
    """(sub_bucket_half_count_magnitude, sub_bucket_half_count, counts_len), as hdrh computes them."""
    h = new_histogram(significant_figures)
    return int(h.sub_bucket_half_count_magnitude), int(h.sub_bucket_half_count), int(h.counts_len)


def value_at_index(index: int, significant_figures: int = SIGNIFICANT_FIGURES) -> int:
    """The lowest value recorded at counts index `index`."""
    half_mag, half_count, _ = _layout(significant_figures)
    bucket = (index >> half_mag) - 1
    sub_bucket = (index & (half_count - 1)) + half_count
    if bucket < 0:
        sub_bucket -= half_count
        bucket = 0
    return sub_bucket << bucket


def highest_equivalent_value(value: int, significant_figures: int = SIGNIFICANT_FIGURES) -> int:
    """The highest value in the same bucket as `value`."""
    half_mag, half_count, _ = _layout(significant_figures)
    sub_bucket_count = 2 * half_count
    bucket = max(value | (sub_bucket_count - 1), 1).bit_length() - (half_mag + 1)
    sub_bucket = value >> bucket
    lowest = sub_bucket << bucket
    if sub_bucket >= sub_bucket_count:
        bucket += 1
    return lowest + (1 << bucket) - 1


def from_counts(
    first_index: int, counts: bytes, significant_figures: int = SIGNIFICANT_FIGURES
) -> HdrHistogram:
    """A histogram from native 64-bit counts starting at counts index `first_index`
    (the form the C engine returns)."""
    h = new_histogram(significant_figures)
    if not counts:
        return h
    n = len(counts) // _WORD
    if len(counts) % _WORD or first_index < 0 or first_index + n > h.counts_len:
        raise ValueError("counts do not fit the histogram layout")
    ctypes.memmove(ctypes.addressof(h.counts) + first_index * _WORD, counts, len(counts))
    values = array("Q", counts)  # native order, as the C engine wrote them and as hdrh keeps them
    total = sum(values)
    if total:
        lo, hi = 0, len(values) - 1
        while not values[lo]:
            lo += 1
        while not values[hi]:
            hi -= 1
        h.set_internal_tacking_values(first_index + lo, first_index + hi, total)
    return h


def from_sparse(
    pairs: Iterable[tuple[int, int]], significant_figures: int = SERIES_SIGNIFICANT_FIGURES
) -> HdrHistogram:
    """A histogram from `(counts index, count)` pairs."""
    h = new_histogram(significant_figures)
    first, last, total = -1, -1, 0
    for index, count in pairs:
        if count <= 0:
            continue
        h.counts[index] += count
        total += count
        first = index if first < 0 else min(first, index)
        last = max(last, index)
    if total:
        h.set_internal_tacking_values(first, last, total)
    return h


def merge(histograms: Iterable[HdrHistogram], significant_figures: int = SIGNIFICANT_FIGURES) -> HdrHistogram:
    """The bucket-by-bucket sum of histograms of the same layout, without loss."""
    result = new_histogram(significant_figures)
    lowest: int | None = None
    for h in histograms:
        if h.significant_figures != significant_figures:
            raise ValueError("cannot merge histograms of different precision")
        if not h.get_total_count():
            continue
        result.add(h)
        low = int(h.get_min_value())
        lowest = low if lowest is None else min(lowest, low)
    if lowest is not None:
        # hdrh's add() takes the min of an empty histogram as 0; set the real one.
        result.min_value = lowest
    return result


def percentiles(h: HdrHistogram, wanted: Sequence[float] = STANDARD_PERCENTILES) -> dict[float, int]:
    """Values (µs) at the given percentiles; empty when nothing was recorded."""
    if not h.get_total_count():
        return {}
    found: dict[float, int] = h.get_percentile_to_value_dict(list(wanted))
    return {p: int(found[p]) for p in wanted}


def summary(h: HdrHistogram) -> dict[str, float]:
    """count, min, mean, p50, p90, p95, p99, p99.9 and max in µs; just count 0 when empty."""
    count = int(h.get_total_count())
    if not count:
        return {"count": 0}
    values = percentiles(h)
    out: dict[str, float] = {"count": count, "min": int(h.get_min_value()), "mean": float(h.get_mean_value())}
    for p, v in values.items():
        out[f"p{p:g}"] = v
    out["max"] = int(h.get_max_value())
    return out


def encode(h: HdrHistogram) -> str:
    """The standard compressed base64 (V2) form of the histogram."""
    encoded = h.encode()
    return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


def decode(text: str) -> HdrHistogram:
    """A histogram from its compressed base64 form."""
    return HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)


def sparse_percentile(
    pairs: Sequence[tuple[int, int]] | Mapping[int, int],
    percentile: float,
    significant_figures: int = SERIES_SIGNIFICANT_FIGURES,
) -> int | None:
    """HdrHistogram's value at `percentile` for sparse `(index, count)` pairs; None if empty."""
    items = sorted(pairs.items()) if isinstance(pairs, Mapping) else sorted(pairs)
    total = sum(c for _, c in items)
    if not total:
        return None
    target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
    running = 0
    for index, count in items:
        running += count
        if running >= target:
            value = value_at_index(index, significant_figures)
            return highest_equivalent_value(value, significant_figures) if percentile else value
    return None  # pragma: no cover - unreachable: running reaches total
