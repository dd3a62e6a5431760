"""The trends of a soak's window: every sampled resource of every watched service, and the
latency, each fitted by `gonogo.system.resource_trends` and told in one line, with how long a
soak needs to flag a given growth (`detect`) and the smallest growth this one could flag. The
window is one of steady load, so a growth that slowed in its later half is a warm-up, not a
leak (`gonogo.system.trends.sustained`).

Pure computation over the samples the run took; the check records what these return.
"""

from __future__ import annotations

__all__ = ["DETECT_FIGURES", "SeriesResult", "default_detect_slope", "latency_trend", "resource_trends"]

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gonogo.plan.model import ResourceLimits, Trends
from gonogo.system.resource_trends import RESOURCES, Figure, SeriesTrend, resource_limit, series_trend
from gonogo.system.trends import MATERIAL_FRACTION, Trend, detectable_slope, duration_to_detect
from gonogo.units import Unit, format_value

# Beyond the trend's own figures, per resource: how long a soak must run to flag the `detect`
# slope, and the smallest slope this soak's samples could flag.
DETECT_FIGURES = ("duration_to_detect", "detectable_slope")
_HOUR = 3600.0
# Without a limit, the default `detect` growth over the horizon, as a share of the start value:
# twice what the trend calls material, so that a slope measured to the precision the trend asks
# for (interval's lower bound at least half the slope) is also material.
_DEFAULT_GROWTH = 2 * MATERIAL_FRACTION
# A series moves in steps: a count (fds, threads) by one, RSS by a page at least. However flat it
# looks, a growth below one step stays hidden until it adds up to one, as if the noise were at
# least that of rounding to the step, step/√12.
_STEP = {"count": 1.0, "bytes": 4096.0}

Points = Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class SeriesResult:
    """One series of the soak: its points, its trend, and the figures to record with their sources."""

    name: str  # the metric prefix: `api.rss`, `latency`
    subject: str  # `api rss`
    unit: Unit
    points: list[tuple[datetime, float]]
    fitted: SeriesTrend
    limit_source: str | None = None
    interval: float | None = None  # median seconds between samples
    detect: float | None = None  # per hour
    detect_source: str = ""
    figures: list[tuple[Figure, str]] = field(default_factory=list)  # (figure, its source)

    @property
    def summary(self) -> str:
        return self.fitted.summary

    def evidence(self, since: datetime) -> dict[str, object]:
        """The series as stored in the soak's artifact: points in seconds since `since`."""
        return {
            "summary": self.summary,
            "unit": self.unit,
            "limit_source": self.limit_source,
            "sample_interval": self.interval,
            "detect_per_hour": self.detect,
            "detect_source": self.detect_source or None,
            "figures": {figure.name: figure.value for figure, _ in self.figures},
            "points": [[round((at - since).total_seconds(), 3), value] for at, value in self.points],
        }


def resource_trends(
    samples: Mapping[tuple[str, str], Points],
    services: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    trends: Trends,
    limits: Mapping[str, ResourceLimits],
    fd_limits: Mapping[str, tuple[float, str]],
    detect: Mapping[str, float],
    fallback_interval: float,
) -> list[SeriesResult]:
    """Every resource of every service in `services`, over [since, until] (no further warm-up:
    the soak's window starts after it). `fd_limits`: service → (soft RLIMIT_NOFILE, where it was
    read), used when the plan sets no `limits.fds`."""
    window = trends.model_copy(update={"warmup": 0.0})
    results = []
    for service in services:
        for resource, unit in RESOURCES.items():
            points = [(at, v) for at, v in samples.get((service, resource), []) if since <= at <= until]
            limit, limit_source = _limit(service, resource, limits, fd_limits)
            subject = f"{service} {resource}"
            fitted = series_trend(
                subject, points, since=since, settings=window, unit=unit, limit=limit, steady_load=True
            )
            interval = _interval(points) or fallback_interval
            results.append(
                _with_figures(
                    f"{service}.{resource}",
                    subject,
                    unit,
                    points,
                    fitted,
                    limit=limit,
                    limit_source=limit_source,
                    interval=interval,
                    detect=detect.get(resource),
                    trends=trends,
                )
            )
    return results


def latency_trend(
    p95: Points, *, since: datetime, trends: Trends, slo: float | None, interval: float = 1.0
) -> SeriesResult:
    """The trend of the per-second p95 latency over the soak's measured phase, against the SLO."""
    window = trends.model_copy(update={"warmup": 0.0})
    points = list(p95)
    fitted = series_trend(
        "latency p95", points, since=since, settings=window, unit="seconds", limit=slo, steady_load=True
    )
    return _with_figures(
        "latency",
        "latency p95",
        "seconds",
        points,
        fitted,
        limit=slo,
        limit_source="latency_slo" if slo is not None else None,
        interval=interval,
        detect=None,
        trends=trends,
        with_detect=False,
    )


def default_detect_slope(start: float, limit: float | None, horizon: float) -> tuple[float | None, str]:
    """The growth per hour to report detection time for when the plan's `detect` names none:
    with a limit, the growth that reaches it from the start by the horizon; without one,
    `_DEFAULT_GROWTH` of the start over the horizon. None when that is no growth."""
    hours = horizon / _HOUR
    if limit is not None:
        slope = (limit - start) / hours
        return (slope if slope > 0 else None), f"default: reaches the limit from the start in {hours:g} h"
    slope = _DEFAULT_GROWTH * abs(start) / hours
    share = f"{_DEFAULT_GROWTH * 100:g}%"
    return (slope if slope > 0 else None), f"default: grows {share} of the start in {hours:g} h"


def _with_figures(
    name: str,
    subject: str,
    unit: Unit,
    points: list[tuple[datetime, float]],
    fitted: SeriesTrend,
    *,
    limit: float | None,
    limit_source: str | None,
    interval: float,
    detect: float | None,
    trends: Trends,
    with_detect: bool = True,
) -> SeriesResult:
    result = fitted.trend
    if result is None:
        # Too few samples: no trend, but `leak` is still recorded so that the default gates
        # read a value; its source says that nothing could be seen, rather than nothing is there.
        why = fitted.summary.removeprefix(f"{subject}: ")
        source = f"{subject}: {why}: no growth could be seen, which is not evidence of none; soak longer"
        figures = [(Figure("leak", 0.0, "count"), source)]
        if limit is not None:
            figures.append((Figure("limit", limit, unit), f"{limit_source} ({subject}: {why})"))
        return SeriesResult(name, subject, unit, points, fitted, limit_source, interval, figures=figures)
    window = f"{len(points)} samples over {format_value(result.observed - result.first, 'seconds')}"
    limit_note = f"; limit from {limit_source}" if limit_source else ""
    source = f"{fitted.summary} (Theil-Sen, {window} of the soak{limit_note})"
    figures = [(figure, source) for figure in fitted.figures]
    detect_source = ""
    if with_detect:
        if detect is not None:
            detect_source = f"detect.{name.rsplit('.', 1)[-1]}"
        else:
            detect, detect_source = default_detect_slope(result.start, result.limit, trends.horizon)
        noise = _detection_noise(points, result)
        figures += _detection(subject, result, noise, interval, detect, detect_source, trends.horizon)
    return SeriesResult(
        name, subject, unit, points, fitted, limit_source, interval, detect, detect_source, figures
    )


def _detection_noise(points: Sequence[tuple[datetime, float]], result: Trend) -> float:
    """The noise that hides a growth, for the detection figures: the larger of the trend's robust
    noise and the plain standard deviation of the residuals, and at least the rounding to the
    series' step. The robust noise leaves out what moves in steps (an allocator taking memory
    by the megabyte, then nothing for minutes: most residuals exactly zero), and steps hide a
    growth as well as noise does; overstating the noise only makes the advice longer."""
    per_second = result.slope / 3600.0
    origin = points[0][0]
    residuals = [value - per_second * (at - origin).total_seconds() for at, value in points]
    spread = statistics.pstdev(residuals) if len(residuals) > 1 else 0.0
    return max(result.noise, spread, _STEP.get(result.unit, 0.0) / math.sqrt(12))


def _detection(
    subject: str,
    result: Trend,
    noise: float,
    interval: float,
    detect: float | None,
    detect_source: str,
    horizon: float,
) -> list[tuple[Figure, str]]:
    unit = result.unit
    shown_noise = format_value(noise, "number" if unit == "count" else unit)
    given = (
        f"given noise of {shown_noise} (standard deviation) around the trend and "
        f"a sample every {interval:.3g} s, in 8 soaks out of 10"
    )
    found: list[tuple[Figure, str]] = []
    if detect is not None:
        seconds = duration_to_detect(detect, noise, interval, confidence=result.confidence)
        if math.isfinite(seconds):
            source = (
                f"{subject}: a soak of {_duration(seconds)} flags a growth of {_rate(detect, unit)} "
                f"({detect_source}), {given}"
            )
            base = abs(result.limit) if result.limit is not None else abs(result.start)
            if detect * horizon / _HOUR <= MATERIAL_FRACTION * base:
                source += (
                    f"; but that growth stays under {MATERIAL_FRACTION:.0%} of the "
                    f"{'limit' if result.limit is not None else 'start'} by the horizon, which is "
                    "not material: it is never called a leak"
                )
            found.append((Figure("duration_to_detect", seconds, "seconds"), source))
    observed = result.observed - result.first
    smallest = detectable_slope(noise, observed, interval, confidence=result.confidence)
    if math.isfinite(smallest):
        found.append(
            (
                Figure("detectable_slope", smallest, unit),
                f"{subject}: the smallest growth this soak's {_duration(observed)} of samples "
                f"flags is {_rate(smallest, unit)}, {given}",
            )
        )
    return found


def _limit(
    service: str,
    resource: str,
    limits: Mapping[str, ResourceLimits],
    fd_limits: Mapping[str, tuple[float, str]],
) -> tuple[float | None, str | None]:
    service_limits = limits.get(service)
    planned = resource_limit(resource, service_limits) if service_limits is not None else None
    if planned is not None:
        field_name = {"rss": "memory"}.get(resource, resource)
        return planned, f"system.services.{service}.limits.{field_name}"
    if resource == "fds" and service in fd_limits:
        return fd_limits[service]
    return None, None


def _interval(points: Sequence[tuple[datetime, float]]) -> float | None:
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(points)]
    gaps = [gap for gap in gaps if gap > 0]
    return statistics.median(gaps) if gaps else None


def _rate(per_hour: float, unit: Unit) -> str:
    # A count's rate is fractional (0.5 fds/h), a share's can be tiny (0.004 %/h): the formats
    # of counts and shares would round them to 0.
    if unit == "ratio":
        return f"{per_hour * 100:.3g}%/h"
    return format_value(per_hour, "number" if unit == "count" else unit) + "/h"


def _duration(seconds: float) -> str:
    if seconds >= 2 * _HOUR:
        return f"{seconds / _HOUR:.3g} h"
    return format_value(seconds, "seconds")
