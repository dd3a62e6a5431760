"""Resource trends: flat noise is never a leak, a slow leak is, on synthetic series and real processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import numpy as np
import psutil
import pytest

from gonogo.system.trends import TooFewSamples, detectable_slope, duration_to_detect, trend

MB = 1e6
HOUR = 3600.0
SEEDS = range(8)


def series(
    seed: int, *, samples: int, slope_per_hour: float, noise: str, sigma: float, start: float = 100 * MB
) -> list[tuple[float, float]]:
    """`samples` one second apart: start + slope·t + noise of the given kind."""
    rng = np.random.default_rng(seed)
    times = np.arange(samples, dtype=float)
    if noise == "gaussian":
        wobble = rng.normal(0, sigma, samples)
    elif noise == "spiky":  # heavy tails: garbage collections, a burst of requests
        wobble = rng.standard_t(3, samples) * sigma
    else:  # "wandering": each sample remembers the last (AR(1), correlation 0.9)
        wobble = np.zeros(samples)
        for i in range(1, samples):
            wobble[i] = 0.9 * wobble[i - 1] + rng.normal(0, sigma * math.sqrt(1 - 0.81))
    values = start + slope_per_hour / HOUR * times + wobble
    return list(zip(times.tolist(), values.tolist(), strict=True))


@pytest.mark.parametrize("noise", ["gaussian", "spiky", "wandering"])
def test_a_flat_noisy_series_is_never_significant(noise: str) -> None:
    for seed in SEEDS:
        points = series(seed, samples=600, slope_per_hour=0, noise=noise, sigma=2 * MB)
        found = trend(points, warmup=0, horizon=72 * HOUR, limit=None, unit="bytes")
        assert not found.significant, (seed, found.describe("RSS"))


def test_a_slow_leak_under_noise_is_significant_and_its_slope_within_the_interval() -> None:
    # 3 MB/h on 100 MB, with 1 MB of noise, watched for an hour: 3 MB of growth, 3 sigma.
    covered = 0
    for seed in SEEDS:
        points = series(seed, samples=3600, slope_per_hour=3 * MB, noise="gaussian", sigma=1 * MB)
        found = trend(points, warmup=0, horizon=72 * HOUR, limit=1e9, unit="bytes")
        assert found.significant, (seed, found.describe("RSS"))
        assert 0 < found.slope_low <= found.slope <= found.slope_high
        assert found.slope == pytest.approx(3 * MB, rel=0.25)
        covered += found.slope_low <= 3 * MB <= found.slope_high
    # A 95 % interval misses the true slope one time in twenty: here 1 seed of 8.
    assert covered >= len(SEEDS) - 2


def test_a_spike_does_not_move_start_end_or_slope() -> None:
    points = series(0, samples=600, slope_per_hour=0, noise="gaussian", sigma=0.1 * MB)
    points[-2] = (points[-2][0], 900 * MB)  # one sample caught in the middle of a huge allocation
    found = trend(points, warmup=0, horizon=None, limit=None, unit="bytes")
    assert found.end == pytest.approx(100 * MB, rel=0.01)
    assert not found.significant


def test_warm_up_is_excluded_so_a_fast_start_then_flat_is_not_a_leak() -> None:
    # 50 MB → 100 MB in the first two minutes (imports, caches, pools), then flat for ten.
    points = [
        (t, value + (50 * MB * (t - 120) / 120 if t < 120 else 0.0))
        for t, value in series(1, samples=720, slope_per_hour=0, noise="gaussian", sigma=1 * MB)
    ]
    found = trend(points, warmup=120, horizon=72 * HOUR, limit=None, unit="bytes")
    assert not found.significant, found.describe("RSS")
    assert found.first == 120
    assert found.start == pytest.approx(100 * MB, rel=0.02)
    with_start = trend(points, warmup=0, horizon=72 * HOUR, limit=None, unit="bytes")
    assert with_start.start < 60 * MB  # without the warm-up the start is the cold process


def test_projection_and_time_to_limit_of_a_clean_line() -> None:
    # 1 MB/h from 100 MB, one sample a second for two hours; limit 150 MB, horizon 72 h.
    points = [(t, 100 * MB + MB * t / HOUR) for t in range(7200)]
    found = trend(points, warmup=0, horizon=72 * HOUR, limit=150 * MB, unit="bytes")
    assert found.slope == pytest.approx(MB)
    assert found.slope_low == pytest.approx(MB) and found.slope_high == pytest.approx(MB)
    assert found.growth == pytest.approx(MB * (7199 - 29) / HOUR)  # medians of the first/last 30
    assert found.projected == pytest.approx(172 * MB)
    assert found.time_to_limit == pytest.approx(50 * HOUR - 7199, rel=1e-6)
    assert found.crosses_limit and found.significant
    assert found.describe("RSS") == (
        "RSS grows 976.6 KiB/h ± 0 B → 164.0 MiB at 72 h, limit 143.1 MiB (reached at 50 h)"
    )


def test_counts_and_ratios_are_described_in_their_units() -> None:
    fds = [(float(t), 20.0 + t // 60) for t in range(3600)]  # one descriptor lost a minute
    found = trend(fds, warmup=0, horizon=72 * HOUR, limit=1024, unit="count")
    assert found.significant and found.slope == pytest.approx(60, rel=0.05)
    assert found.describe("fds").startswith("fds grows 60")
    assert found.time_to_limit is not None and found.crosses_limit

    cpu = series(2, samples=600, slope_per_hour=0, noise="gaussian", sigma=0.02, start=0.3)
    steady = trend(cpu, warmup=0, horizon=None, limit=None, unit="ratio")
    assert not steady.significant
    assert steady.describe("CPU").startswith("CPU steady: 30")
    assert steady.time_to_limit is None and not steady.crosses_limit


def test_a_real_but_negligible_drift_is_not_material() -> None:
    # 10 KB/h on 100 MB without noise: certain, but 0.7 MB at 72 h is not a leak worth a gate.
    points = [(float(t), 100 * MB + 10e3 * t / HOUR) for t in range(3600)]
    found = trend(points, warmup=0, horizon=72 * HOUR, limit=None, unit="bytes")
    assert found.slope_low > 0 and not found.significant
    assert "not material" in found.describe("RSS")


def test_a_material_creep_seen_below_an_arena_says_so() -> None:
    # The healthy example's API in a 10-minute soak: 0.8 MiB of creep, certain, and 4 MiB/h
    # would be material over 72 h, but so little was seen that an allocator arena explains it.
    points = [(float(t), 84 * 2**20 + 0.8 * 2**20 * t / 600) for t in range(600)]
    found = trend(points, warmup=0, horizon=72 * HOUR, limit=1e9, unit="bytes")
    assert found.slope_low > 0 and not found.significant
    assert "grew less than 1.0 MiB in the run" in found.describe("api rss")


def test_a_falling_series_is_never_projected_below_zero() -> None:
    latency = [(float(t), 0.0064 - 0.0009 * t / 600) for t in range(600)]  # p95 6.4 ms falling to 5.5 ms
    found = trend(latency, warmup=0, horizon=72 * HOUR, limit=0.25, unit="seconds")
    assert found.slope < 0 and found.projected == 0.0 and found.projected_low == 0.0
    assert found.describe("latency p95").startswith("latency p95 falls")


def test_too_few_samples_after_warm_up() -> None:
    with pytest.raises(TooFewSamples, match=r"3 samples after the 10\.00 s warm-up"):
        trend([(float(t), 1.0) for t in range(13)], warmup=10, horizon=None, limit=None)


def test_detectable_slope_and_duration_to_detect_are_inverse() -> None:
    noise, interval = 1 * MB, 1.0
    ten_minutes, one_hour = detectable_slope(noise, 600, interval), detectable_slope(noise, HOUR, interval)
    assert one_hour < ten_minutes  # longer runs see smaller slopes
    assert detectable_slope(noise, 600, 2.0) > ten_minutes  # sparser samples see less
    assert duration_to_detect(ten_minutes, noise, interval) == pytest.approx(600, abs=interval)
    assert duration_to_detect(one_hour, noise, interval) == pytest.approx(HOUR, abs=interval)
    assert duration_to_detect(0, noise, interval) == math.inf
    assert detectable_slope(noise, 3, interval) == math.inf  # fewer samples than a trend needs


def test_a_slope_at_the_detectable_size_is_mostly_detected() -> None:
    # The formula promises 80 % power; a slope twice as large is found every time.
    slope = detectable_slope(1 * MB, 599, 1.0)
    for seed in SEEDS:
        points = series(seed, samples=600, slope_per_hour=2 * slope, noise="gaussian", sigma=1 * MB)
        assert trend(points, warmup=0, horizon=72 * HOUR, limit=None).significant


# Real processes. MALLOC_MMAP_THRESHOLD_ makes glibc map every block over 64 KB on its own
# and unmap it on free, so RSS follows what the program holds rather than heap fragmentation.
LEAKER = """
import time
kept = []
while True:
    kept.append(b"x" * 200_000)  # written, so resident
    time.sleep(0.05)
"""
CHURNER = """
import random, time
random.seed(7)
block = b""
while True:
    block = b""
    block = b"x" * random.randrange(0, 8_000_000)
    time.sleep(0.05)
"""


@pytest.fixture
def two_processes() -> Iterator[tuple[psutil.Process, psutil.Process]]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    started = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env) for code in (LEAKER, CHURNER)
    ]
    try:
        yield psutil.Process(started[0].pid), psutil.Process(started[1].pid)
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=10)


def test_a_real_leak_is_flagged_and_real_churn_is_not(
    two_processes: tuple[psutil.Process, psutil.Process],
) -> None:
    leaker, churner = two_processes
    leaked: list[tuple[float, float]] = []
    churned: list[tuple[float, float]] = []
    began = time.monotonic()
    while (now := time.monotonic() - began) < 5.0:
        leaked.append((now, float(leaker.memory_info().rss)))
        churned.append((now, float(churner.memory_info().rss)))
        time.sleep(0.02)

    leak = trend(leaked, warmup=0.5, horizon=None, limit=None, unit="bytes")
    churn = trend(churned, warmup=0.5, horizon=None, limit=None, unit="bytes")
    assert leak.significant, leak.describe("leaker RSS")
    assert leak.growth > 5 * MB
    assert not churn.significant, churn.describe("churner RSS")
    assert churn.noise > 0.5 * MB  # it was noisy, not idle


def test_a_few_pages_over_minutes_are_no_leak_however_far_they_would_project() -> None:
    # 16 KB in 4 minutes on 22 MB, clean as a line: 72 h would make it 17 MB, yet nothing is seen.
    pages = [(float(t), 22 * MB + 16_000 * t / 240) for t in range(240)]
    assert not trend(pages, warmup=0, horizon=72 * HOUR, limit=None, unit="bytes").significant
    # One descriptor opened lazily half-way: no leak either.
    lazy = [(float(t), 10.0 + (t >= 120)) for t in range(240)]
    assert not trend(lazy, warmup=0, horizon=72 * HOUR, limit=None, unit="count").significant
