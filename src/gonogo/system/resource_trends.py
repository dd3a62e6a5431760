"""The trend figures of one sampled resource series, as metrics: what the run records for every
service (`service.<s>.rss.slope_per_hour`) and what a soak check records for its own window.

`gonogo.system.trends` does the statistics; this module names the figures, fixes their units and
says in one line what the series did.
"""

from __future__ import annotations

__all__ = [
    "LIMIT_FIGURES",
    "RESOURCES",
    "TREND_FIGURES",
    "Figure",
    "SeriesTrend",
    "resource_limit",
    "series_trend",
]

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gonogo.plan.model import ResourceLimits, Trends
from gonogo.plan.names import LIMIT_FIGURES, TREND_FIGURES
from gonogo.system.trends import TooFewSamples, Trend, sustained, trend
from gonogo.units import Unit

# What gonogo samples of every service, and the unit of each.
RESOURCES: dict[str, Unit] = {"rss": "bytes", "fds": "count", "threads": "count", "cpu": "ratio"}
_LIMIT_FIELD = {"rss": "memory", "fds": "fds", "threads": "threads", "cpu": "cpu"}


@dataclass(frozen=True)
class Figure:
    name: str  # after the series' own prefix: `slope_per_hour`
    value: float
    unit: Unit


@dataclass(frozen=True)
class SeriesTrend:
    """The figures of one series, or none and why (`summary`)."""

    subject: str
    summary: str
    trend: Trend | None = None
    figures: list[Figure] = field(default_factory=list)


def resource_limit(resource: str, limits: ResourceLimits) -> float | None:
    """The plan's limit for a sampled resource (`rss` → `limits.memory`)."""
    value = getattr(limits, _LIMIT_FIELD[resource], None) if resource in _LIMIT_FIELD else None
    return None if value is None else float(value)


def series_trend(
    subject: str,
    points: Sequence[tuple[datetime, float]],
    *,
    since: datetime,
    settings: Trends,
    unit: Unit,
    limit: float | None = None,
    steady_load: bool = False,
) -> SeriesTrend:
    """Fit `points` (warm-up counted from `since`) and project them to the plan's horizon.

    `steady_load`: the points were sampled under steady load (a soak), so a growth that slowed
    in the later half of the window is a warm-up, not a leak (`gonogo.system.trends.sustained`).

    `leak` is 1 when the growth is significant and material (see `gonogo.system.trends`);
    `within_limit` is 0 when the end value is already past the limit or a significant growth
    reaches it by the horizon.
    """
    relative = [((at - since).total_seconds(), value) for at, value in points]
    try:
        fitted = trend(
            relative,
            warmup=settings.warmup,
            horizon=settings.horizon,
            limit=limit,
            confidence=settings.confidence,
            unit=unit,
        )
    except TooFewSamples as error:
        return SeriesTrend(subject, f"{subject}: no trend ({error})")
    if steady_load:
        fitted = sustained(relative, fitted, warmup=settings.warmup)
    figures = [
        Figure("start", fitted.start, unit),
        Figure("end", fitted.end, unit),
        Figure("growth", fitted.growth, unit),
        Figure("slope_per_hour", fitted.slope, unit),
        Figure("slope_low", fitted.slope_low, unit),
        Figure("slope_high", fitted.slope_high, unit),
    ]
    if fitted.projected is not None:
        figures.append(Figure("projected", fitted.projected, unit))
    figures.append(Figure("leak", 1.0 if fitted.significant else 0.0, "count"))
    if limit is not None:
        reached = fitted.end >= limit or (fitted.significant and fitted.crosses_limit)
        figures += [Figure("limit", limit, unit), Figure("within_limit", 0.0 if reached else 1.0, "count")]
        if fitted.significant and fitted.time_to_limit is not None:
            figures.append(Figure("time_to_limit", fitted.time_to_limit, "seconds"))
    return SeriesTrend(subject, fitted.describe(subject), fitted, figures)
