"""What every load-test result format is reduced to, and how result files are read.

All figures are in gonogo's base units: seconds, ratios in 0..1, counts, per-second rates.
A figure the file does not give is `None` (*not measured*), never zero.
"""

from __future__ import annotations

__all__ = [
    "LATENCY_FIELDS",
    "Endpoint",
    "Format",
    "Latency",
    "LoadSummary",
    "SecondCounts",
    "Stats",
    "ThresholdResult",
]

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Format = Literal["k6", "locust-json", "locust-csv"]

# The latency figures, in the order they are reported; names as the `load` check's.
LATENCY_FIELDS = ("mean", "min", "p50", "p90", "p95", "p99", "p99_9", "max")


@dataclass(frozen=True)
class Latency:
    """Response-time figures in seconds; only those the file really has."""

    mean: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None

    def items(self) -> list[tuple[str, float]]:
        """(field, seconds) for each measured figure, in LATENCY_FIELDS order."""
        return [(name, value) for name in LATENCY_FIELDS if (value := getattr(self, name)) is not None]


@dataclass(frozen=True)
class Stats:
    """The figures of the whole run or of one endpoint."""

    requests: int | None = None
    errors: int | None = None
    error_rate: float | None = None  # errors / requests; None when nothing was requested
    rps: float | None = None  # requests per second over the run
    latency: Latency = field(default_factory=Latency)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as the tool names it, with the key its metrics are named by."""

    name: str  # as in the file: `GET /api/items`, a k6 `name` or `url` tag
    key: str  # letters, digits, `_` and `-` only; unique within its summary
    stats: Stats
    method: str | None = None


@dataclass(frozen=True)
class ThresholdResult:
    """One k6 threshold expression and whether it held."""

    metric: str  # k6's metric name, with its tag filter: `http_req_duration{name:login}`
    key: str  # the metric name made safe for a gonogo metric name
    expression: str  # `p(95)<500`
    ok: bool
    reliability: bool  # on a rate metric (errors, checks) rather than on performance


@dataclass(frozen=True)
class SecondCounts:
    """Requests and failures that completed within one wall-clock second."""

    second: datetime
    requests: int
    failures: int


@dataclass(frozen=True)
class LoadSummary:
    """A load test's end-of-test results, whatever tool wrote them."""

    format: Format
    total: Stats
    duration: float | None = None  # seconds, when the file says it
    endpoints: tuple[Endpoint, ...] = ()
    checks_pass_rate: float | None = None  # k6 `checks`
    thresholds: tuple[ThresholdResult, ...] = ()  # k6 thresholds
    window: tuple[datetime, datetime] | None = None  # when the load ran, when the file says it
    per_second: tuple[SecondCounts, ...] = ()  # Locust JSON only
    latency_note: str = ""  # how the latency figures were obtained, for the metric's source
    notes: tuple[str, ...] = ()  # figures not measured, and why
