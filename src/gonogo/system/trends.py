"""Resource trends: does a sampled series (RSS, fds, threads, CPU) grow, how fast, and where does it lead?

Pure computation over `(seconds since start, value)` points; no I/O. The slope is the
Theil-Sen estimator (the median of the slopes between every pair of samples), which a
few spikes cannot move, with Sen's rank-based confidence interval.

When is a slope *significant* (a leak, not noise)? All four must hold:

1. **The whole confidence interval is above zero.** The interval is widened for
   correlation between successive samples (a series that wanders looks like a trend
   over a short run): with `rho` the lag-1 autocorrelation of the residuals, the normal
   quantile is multiplied by `√((1 + rho) / (1 - rho))`, i.e. the interval of a series of
   `n·(1 - rho)/(1 + rho)` independent samples.
2. **The slope is measured, not guessed**: the interval's lower bound is at least
   `PRECISION` (half) of the slope, i.e. the estimate is at least twice the interval's
   half-width (Z ≥ 3.9 at 95 %). The interval alone would let one flat series in 40
   through; with this, about one in 20 000, and a run watches a dozen series.
3. **The trend stands out of the noise within the run**: the fitted growth over the
   observed window is at least `NOISE_FRACTION` (half) of the noise (the robust standard
   deviation of the residuals). On long runs this is the stricter test (chance reaches
   it only at Z ≥ NOISE_FRACTION·√(n/12), 8.7 for an hour of 1 s samples), a guard
   for noise whose correlation the lag-1 widening underestimates.
4. **The growth is material**: the interval's *lower* bound, projected over
   `[first sample after warm-up, horizon]` (the observed window when there is no
   horizon), is more than `MATERIAL_FRACTION` (5 %) of the limit when one is given,
   else of the start value. A real but negligible drift (10 KB/h on 100 MB) is not a leak.

5. **The growth is seen**: the fitted growth over the observed window is at least
   `MIN_SEEN_GROWTH` of the unit: 1 MiB of memory (an allocator arena: a Python process's RSS
   creeps and falls back by such steps under a steady load), 2 file descriptors or threads, 50 ms
   of latency (a per-second p95 moves by milliseconds on a busy machine). A
   few pages, or one file opened lazily, projected over 72 h look material, and are no leak.

A slow leak passes all five once the run is long enough: `duration_to_detect` says how
long. Measured on simulated series (noise sigma, 1 s samples): no flat series flagged in
hundreds of seeds of Gaussian, heavy-tailed and AR(1) (0.9) noise over 10 min and 1 h;
3 MB/h under 1 MB of noise is flagged in every seed over an hour.

Under steady load (a soak) one more rule applies, `sustained`: **the growth has not slowed.**
A warm-up that outlasts the warm-up allowance (a heap or a cache growing to its size) rises
and then levels off, and a straight line through it passes the four rules; a leak under steady
load keeps its rate. The later half of the window is fitted on its own, and when its whole
interval lies below the lower bound of the whole window's, the growth slowed: not a leak.
Measured on simulated linear leaks at the detectable size (180, 600 and 3600 samples), the
rule drops 1 of about 700 that the four rules flag; it cleared a healthy Python service
whose RSS rose 700 KB in the first minutes of a 3-minute soak and then stayed flat.
"""

from __future__ import annotations

__all__ = [
    "MATERIAL_FRACTION",
    "MIN_SAMPLES",
    "MIN_SEEN_GROWTH",
    "NOISE_FRACTION",
    "PRECISION",
    "TooFewSamples",
    "Trend",
    "detectable_slope",
    "duration_to_detect",
    "sustained",
    "trend",
]

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from gonogo.errors import GonogoError
from gonogo.units import Unit, format_value

# scipy.stats is imported where a trend is computed: importing it takes a second, which every
# `gonogo run` paid at start (the runner imports this module) whether it fits a trend or not.

MIN_SAMPLES = 5  # after warm-up; fewer cannot tell a trend from a spike
NOISE_FRACTION = 0.5  # the fitted growth over the run must reach half the noise's standard deviation
MATERIAL_FRACTION = 0.05  # of the limit, or of the start value without one
PRECISION = 0.5  # the interval's lower bound must be at least this part of the slope
# The least growth within the run that can be a leak, by unit (rule 5).
MIN_SEEN_GROWTH: dict[str, float] = {"bytes": 1024.0**2, "count": 2.0, "seconds": 0.05}
# Theil-Sen's variance is that of least squares divided by its asymptotic relative
# efficiency, 3/π for Gaussian noise and equally spaced times (Sen 1968).
THEIL_SEN_EFFICIENCY = 3 / math.pi
# Theil-Sen compares every pair (n² memory); longer series are fitted on block means,
# which keeps the slope's standard error of the raw samples.
_MAX_FIT_POINTS = 1000
_MAX_AUTOCORRELATION = 0.98
_EDGE_MAX = 30  # samples whose median is the start (and the end)
_MAD_TO_SIGMA = 1.4826  # median absolute deviation → standard deviation, for Gaussian noise
_HOUR = 3600.0


class TooFewSamples(GonogoError):
    """Not enough samples after the warm-up to fit a trend."""


@dataclass(frozen=True)
class Trend:
    """The trend of one series after warm-up. Times are seconds since start; slopes per hour."""

    unit: Unit
    samples: int  # samples used (after warm-up)
    first: float  # time of the first sample used
    observed: float  # time of the last sample
    start: float  # median of the first few samples used
    end: float  # median of the last few samples
    slope: float  # Theil-Sen, per hour
    slope_low: float  # the confidence interval of the slope, per hour
    slope_high: float
    confidence: float
    noise: float  # robust standard deviation of the residuals around the fitted line
    horizon: float | None
    projected: (
        float | None
    )  # end + slope * (horizon - time of end), the time of end being just before observed
    projected_low: float | None
    projected_high: float | None
    limit: float | None
    time_to_limit: float | None  # seconds after `observed` until the projection reaches the limit
    significant: bool
    # which of the rules above a growing but not significant slope failed, for `describe`
    held_back_by: str | None = None
    # per hour: the slope of the window's later half, when a significant growth slowed there
    # (see `sustained`; the trend is then not significant)
    slowed_to: float | None = None

    @property
    def growth(self) -> float:
        return self.end - self.start

    @property
    def crosses_limit(self) -> bool:
        """The projection reaches the limit by the horizon (or already has)."""
        if self.time_to_limit is None:
            return False
        return self.horizon is None or self.observed + self.time_to_limit <= self.horizon

    def describe(self, subject: str) -> str:
        """One line for a person: "RSS grows 3.1 MiB/h ± 409.6 KiB → 1.2 GiB at 72 h, limit 953.7 MiB"."""
        rate = _format_rate(self.slope, self.unit)
        spread = _format_rate((self.slope_high - self.slope_low) / 2, self.unit).removesuffix("/h")
        if self.significant:
            text = f"{subject} grows {rate} ± {spread}"
        elif self.slope_high < 0:
            text = f"{subject} falls {rate} ± {spread}"
        else:
            why = self.held_back_by or "not significant"
            if self.slowed_to is not None:
                why = f"growth slowed to {_format_rate(self.slowed_to, self.unit)} in the later half"
            text = (
                f"{subject} steady: {format_value(self.start, self.unit)} → "
                f"{format_value(self.end, self.unit)} over {_format_duration(self.observed - self.first)} "
                f"(slope {rate} ± {spread}, {why})"
            )
        if self.horizon is not None and self.projected is not None and self.significant:
            text += f" → {format_value(self.projected, self.unit)} at {_format_duration(self.horizon)}"
        if self.limit is not None:
            text += f", limit {format_value(self.limit, self.unit)}"
            if self.significant and self.crosses_limit and self.time_to_limit is not None:
                text += f" (reached at {_format_duration(self.observed + self.time_to_limit)})"
        return text


def trend(
    points: Sequence[tuple[float, float]],
    *,
    warmup: float,
    horizon: float | None,
    limit: float | None,
    confidence: float = 0.95,
    unit: Unit = "number",
) -> Trend:
    """Fit the series after `warmup` seconds; project it to `horizon` against `limit`.

    Raises TooFewSamples when fewer than MIN_SAMPLES finite samples follow the warm-up.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    times, values = _after_warmup(points, warmup)
    slope, low, high, residuals = _theil_sen(times, values, confidence)
    noise = _MAD_TO_SIGMA * float(np.median(np.abs(residuals - np.median(residuals))))
    edge = min(max(len(values) // 10, 3), _EDGE_MAX, len(values))
    start, end = float(np.median(values[:edge])), float(np.median(values[-edge:]))
    first, observed = float(times[0]), float(times[-1])
    # `end` is the level in the middle of the last few samples, a little before `observed`.
    end_time = float(np.median(times[-edge:]))

    projected = projected_low = projected_high = None
    if horizon is not None:
        ahead = max(horizon - end_time, 0.0)
        # memory, descriptors, threads, CPU and latency never go below zero, however they fall
        floor = 0.0 if float(values.min()) >= 0 else -math.inf
        projected, projected_low, projected_high = (max(end + s * ahead, floor) for s in (slope, low, high))
    base = abs(limit) if limit is not None else abs(start)
    window = (horizon if horizon is not None else observed) - first
    seen = slope * (observed - first)
    minimum_seen = MIN_SEEN_GROWTH.get(unit, 0.0)
    held_back_by = next(
        (
            why
            for failed, why in (
                (low <= 0, "not significant"),
                (low < PRECISION * slope, "too imprecise"),
                (seen < NOISE_FRACTION * noise, "within the noise"),
                (low * window <= MATERIAL_FRACTION * base, "not material"),
                (seen < minimum_seen, f"grew less than {format_value(minimum_seen, unit)} in the run"),
            )
            if failed
        ),
        None,
    )
    significant = held_back_by is None
    return Trend(
        unit=unit,
        samples=len(values),
        first=first,
        observed=observed,
        start=start,
        end=end,
        slope=slope * _HOUR,
        slope_low=low * _HOUR,
        slope_high=high * _HOUR,
        confidence=confidence,
        noise=noise,
        horizon=horizon,
        projected=projected,
        projected_low=projected_low,
        projected_high=projected_high,
        limit=limit,
        time_to_limit=_time_to_limit(end, end_time, observed, slope, limit),
        significant=significant,
        held_back_by=held_back_by,
    )


def sustained(points: Sequence[tuple[float, float]], fitted: Trend, *, warmup: float) -> Trend:
    """`fitted` (the trend of `points` after `warmup`), no longer significant if its growth
    slowed: the later half of its window, fitted alone, has its whole interval below the lower
    bound of the whole window's slope. For a window of steady load, where a leak keeps its rate
    and a warm-up levels off (see the module's doc)."""
    if not fitted.significant:
        return fitted
    middle = max(warmup, (fitted.first + fitted.observed) / 2)
    try:
        later = trend(
            points, warmup=middle, horizon=None, limit=None, confidence=fitted.confidence, unit=fitted.unit
        )
    except TooFewSamples:
        return fitted
    if later.slope_high >= fitted.slope_low:
        return fitted
    return replace(fitted, significant=False, slowed_to=later.slope)


def detectable_slope(
    noise: float, duration: float, interval: float, *, confidence: float = 0.95, power: float = 0.8
) -> float:
    """The smallest slope (per hour) a run of `duration` seconds sampled every `interval` flags.

    With n = ⌊duration / interval⌋ + 1 equally spaced samples and independent noise of
    standard deviation sigma, least squares has SE = sigma·√(12 / (n(n² - 1))) / interval,
    and Theil-Sen SE_TS = SE / √(3/π). The estimate must clear the larger of two
    thresholds: z₍₁₊c₎/₂ / (1 - PRECISION) · SE_TS (an interval above zero and precise) and
    NOISE_FRACTION · sigma / duration (visible above the noise). It does with probability
    `power` when the true slope is that threshold + z_power · SE_TS. Simulated (600 and
    3600 samples), the slope this returns is flagged in 78-80 % of runs at power 0.8.
    Materiality (against the start or the limit) is left out: it depends on the series.
    """
    from scipy.stats import norm

    # The epsilon keeps (n - 1) * interval / interval from flooring to n - 2.
    samples = math.floor(duration / interval + 1e-9) + 1 if interval > 0 else 0
    if samples < MIN_SAMPLES:
        return math.inf
    standard_error = (
        noise * math.sqrt(12 / (samples * (samples**2 - 1))) / interval / math.sqrt(THEIL_SEN_EFFICIENCY)
    )
    precise = float(norm.ppf((1 + confidence) / 2)) / (1 - PRECISION) * standard_error
    visible = NOISE_FRACTION * noise / duration
    per_second = max(precise, visible) + float(norm.ppf(power)) * standard_error
    return per_second * _HOUR


def duration_to_detect(
    slope: float, noise: float, interval: float, *, confidence: float = 0.95, power: float = 0.8
) -> float:
    """How many seconds a run sampled every `interval` needs to flag `slope` (per hour): the
    inverse of `detectable_slope`. Infinite for a slope that is not growth."""
    if slope <= 0 or interval <= 0:
        return math.inf

    def detects(samples: int) -> bool:
        duration = (samples - 1) * interval
        return detectable_slope(noise, duration, interval, confidence=confidence, power=power) <= slope

    # detectable_slope falls as samples grow: double to a bracket, then bisect.
    low, high = MIN_SAMPLES - 1, MIN_SAMPLES
    while not detects(high):
        low, high = high, high * 2
        if high > 1 << 60:
            return math.inf
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if detects(middle) else (middle, high)
    return (high - 1) * interval


def _after_warmup(
    points: Sequence[tuple[float, float]], warmup: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    kept = sorted((t, v) for t, v in points if t >= warmup and math.isfinite(t) and math.isfinite(v))
    if len(kept) < MIN_SAMPLES:
        raise TooFewSamples(
            f"{len(kept)} samples after the {format_value(warmup, 'seconds')} warm-up; "
            f"a trend needs at least {MIN_SAMPLES}"
        )
    array = np.asarray(kept, dtype=np.float64)
    return array[:, 0], array[:, 1]


def _fit_points(
    times: NDArray[np.float64], values: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """At most _MAX_FIT_POINTS points: block means of consecutive samples for long series."""
    if len(times) <= _MAX_FIT_POINTS:
        return times, values
    size = math.ceil(len(times) / _MAX_FIT_POINTS)  # equal blocks: equal weights for the ranks
    starts = np.arange(0, len(times), size)
    counts = np.diff(np.append(starts, len(times)))
    return np.add.reduceat(times, starts) / counts, np.add.reduceat(values, starts) / counts


def _theil_sen(
    times: NDArray[np.float64], values: NDArray[np.float64], confidence: float
) -> tuple[float, float, float, NDArray[np.float64]]:
    """Slope (per second), its interval widened for autocorrelation, and the residuals."""
    from scipy.stats import norm, theilslopes

    fit_times, fit_values = _fit_points(times, values)
    slope, intercept, _, _ = theilslopes(fit_values, fit_times)
    residuals = values - (intercept + slope * times)
    # Block means keep the raw samples' standard error only for independent noise; the
    # correlation of the raw residuals says how much wider the truth is.
    rho = _lag1_autocorrelation(residuals)
    z = float(norm.ppf((1 + confidence) / 2)) * math.sqrt((1 + rho) / (1 - rho))
    # Sen's interval at the confidence whose quantile is the widened z; kept below 1 so
    # that scipy's quantile stays finite.
    widened = min(2 * float(norm.cdf(z)) - 1, 1 - 1e-12)
    _, _, low, high = theilslopes(fit_values, fit_times, alpha=max(widened, confidence))
    return float(slope), float(low), float(high), residuals


def _lag1_autocorrelation(residuals: NDArray[np.float64]) -> float:
    centred = residuals - residuals.mean()
    energy = float(np.dot(centred, centred))
    if energy == 0:
        return 0.0
    rho = float(np.dot(centred[:-1], centred[1:])) / energy
    rho += (1 + 3 * rho) / len(residuals)  # the estimate's bias on short series (Marriott & Pope 1954)
    return min(max(rho, 0.0), _MAX_AUTOCORRELATION)  # negative correlation would narrow it: ignored


def _time_to_limit(
    end: float, end_time: float, observed: float, slope: float, limit: float | None
) -> float | None:
    if limit is None:
        return None
    if end >= limit:
        return 0.0
    if slope <= 0:
        return None
    return max(end_time + (limit - end) / slope - observed, 0.0)


def _format_rate(per_hour: float, unit: Unit) -> str:
    # A count's rate is fractional (0.5 fds/h); the count format would round it to 0.
    return format_value(per_hour, "number" if unit == "count" else unit) + "/h"


def _format_duration(seconds: float) -> str:
    if seconds >= 2 * _HOUR:
        return f"{seconds / _HOUR:.3g} h"
    return format_value(seconds, "seconds")
