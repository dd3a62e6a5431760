"""The C engine records latencies in exactly HdrHistogram's layout: what it counts rebuilds
a real hdrh histogram without loss, and its percentiles are the exact ones within the
histogram's stated precision."""

from __future__ import annotations

import random

import pytest
from engine_support import nearest_rank

import gonogo.loadgen._engine as _engine
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.engine import waiting_percentile


def samples(n: int, seed: int) -> list[int]:
    """Log-uniform latencies from 1 µs to an hour, plus the layout's edge values."""
    rng = random.Random(seed)
    values = [int(10 ** rng.uniform(0, 9.5)) for _ in range(n)]
    edges = [0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 1_000_000, 3_599_999_999, 3_600_000_000]
    edges += [2**k + d for k in range(11, 31) for d in (-1, 0, 1)]
    return values + edges


def reference(values: list[int], significant_figures: int) -> hist.HdrHistogram:
    h = hist.new_histogram(significant_figures)
    for v in values:
        assert h.record_value(v)
    return h


@pytest.mark.parametrize("significant_figures", [2, 3])
def test_layout_matches_hdrhistogram(significant_figures: int) -> None:
    assert _engine.counts_len(significant_figures) == hist.new_histogram(significant_figures).counts_len
    assert _engine.HIGHEST_TRACKABLE == hist.HIGHEST_TRACKABLE


@pytest.mark.parametrize("significant_figures", [2, 3])
def test_c_counts_rebuild_the_same_histogram(significant_figures: int) -> None:
    values = samples(20_000, seed=significant_figures)
    first, counts = _engine.record_values(values, significant_figures)
    built = hist.from_counts(first, counts, significant_figures)
    ref = reference(values, significant_figures)
    assert built.get_total_count() == len(values)
    assert list(built.counts) == list(ref.counts)
    assert built.equals(ref)
    assert built.get_max_value() == ref.get_max_value()
    assert built.get_min_value() == ref.get_min_value()


def test_values_beyond_an_hour_are_clamped_not_lost() -> None:
    first, counts = _engine.record_values([5_000_000_000, -3])
    built = hist.from_counts(first, counts)
    assert built.get_total_count() == 2
    assert built.get_max_value() == hist.highest_equivalent_value(hist.HIGHEST_TRACKABLE)
    assert built.get_min_value() == 0


def test_percentiles_equal_exact_ones_within_precision() -> None:
    rng = random.Random(7)
    # 10,000 samples: every tested percentile falls on a whole rank, as nearest-rank defines it
    values = [int(rng.lognormvariate(8, 1.5)) + 1 for _ in range(10_000)]
    built = hist.from_counts(*_engine.record_values(values))
    ordered = sorted(values)
    found = hist.percentiles(built, [50, 90, 95, 99, 99.9, 100])
    for p, value in found.items():
        exact = nearest_rank(ordered, p)
        # the histogram reports the top of the exact value's bucket: 3 significant digits
        assert exact <= value <= hist.highest_equivalent_value(exact), (p, exact, value)
        assert value - exact <= exact / 1024 + 1
    assert found[100] == built.get_max_value()


def test_sparse_percentiles_match_hdrhistogram() -> None:
    values = samples(5_000, seed=3)
    first, counts = _engine.record_values(values, hist.SERIES_SIGNIFICANT_FIGURES)
    dense = hist.from_counts(first, counts, hist.SERIES_SIGNIFICANT_FIGURES)
    pairs = [(i, int(c)) for i, c in enumerate(dense.counts) if c]
    sparse = hist.from_sparse(pairs)
    assert sparse.equals(dense)
    for p in (0, 1, 50, 95, 99, 99.9, 100):
        assert hist.sparse_percentile(pairs, p) == dense.get_value_at_percentile(p)
    assert hist.sparse_percentile([], 50) is None


def test_bucket_helpers_match_hdrhistogram() -> None:
    for sf in (2, 3):
        h = hist.new_histogram(sf)
        for v in samples(2_000, seed=sf + 10):
            assert hist.highest_equivalent_value(v, sf) == h.get_highest_equivalent_value(v)
        for index in range(0, h.counts_len, 7):
            assert hist.value_at_index(index, sf) == h.get_value_from_index(index)


def test_merge_is_lossless_and_encoding_round_trips() -> None:
    values = samples(9_000, seed=11)
    parts = [values[0:3000], values[3000:6000], values[6000:]]
    merged = hist.merge([hist.from_counts(*_engine.record_values(part)) for part in [*parts, []]])
    whole = hist.from_counts(*_engine.record_values(values))
    assert merged.equals(whole)
    assert merged.get_min_value() == whole.get_min_value()
    text = hist.encode(merged)
    assert isinstance(text, str)
    assert hist.decode(text).equals(whole)
    assert hist.summary(hist.new_histogram()) == {"count": 0}
    assert hist.percentiles(hist.new_histogram()) == {}
    assert hist.summary(whole)["count"] == len(values)


def test_requests_still_waiting_only_ever_raise_a_seconds_percentile() -> None:
    def sparse(values: list[int]) -> dict[int, int]:
        first, counts = _engine.record_values(values, hist.SERIES_SIGNIFICANT_FIGURES)
        built = hist.from_counts(first, counts, hist.SERIES_SIGNIFICANT_FIGURES)
        return {i: int(c) for i, c in enumerate(built.counts) if c}

    answered = sparse([100_000] * 95 + [300_000] * 5)
    p95 = hist.sparse_percentile(answered, 95)
    assert p95 is not None and 100_000 <= p95 < 101_000
    # requests in flight for a moment: younger than the answers, they change nothing
    assert waiting_percentile(answered, sparse([5_000] * 50), 95) == p95
    # a stall: most users of the second are still waiting, for over a second
    stalled = waiting_percentile(answered, sparse([1_200_000] * 400), 95)
    assert stalled is not None and stalled >= 1_200_000
    # nothing answered at all: the waiting alone; neither: no figure
    assert waiting_percentile({}, sparse([700_000] * 3), 50) == hist.sparse_percentile(sparse([700_000]), 50)
    assert waiting_percentile({}, {}, 95) is None
