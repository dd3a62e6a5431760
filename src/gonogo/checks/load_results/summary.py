"""What every load-test result format is reduced to, and how result files are read.

All figures are in gonogo's base units: seconds, ratios in 0..1, counts, per-second rates.
A figure the file does not give is `None` (*not measured*), never zero.
"""

from __future__ import annotations

__all__ = [
    "LATENCY_FIELDS",
    "MAX_FILE_BYTES",
    "Endpoint",
    "Format",
    "Latency",
    "LoadSummary",
    "SecondCounts",
    "Stats",
    "ThresholdResult",
    "finite",
    "load_json",
    "metric_key",
    "read_bounded",
    "unique_keys",
]

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from gonogo.errors import InputFileError

Format = Literal["k6", "locust-json", "locust-csv"]

MAX_FILE_BYTES = 256 * 1024 * 1024  # result files are read whole; larger ones are refused

# The latency figures, in the order they are reported; names as the `load` check's.
LATENCY_FIELDS = ("mean", "min", "p50", "p90", "p95", "p99", "p99_9", "max")

_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_-]+")


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


def finite(value: Any) -> float | None:
    """`value` as a float if it is a real, finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def metric_key(name: str) -> str:
    """`GET /api/items/[id]` → `GET_api_items_id`: runs of other characters become one `_`."""
    return _NOT_IN_KEY.sub("_", name).strip("_") or "_"


def unique_keys(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Keys for `names`, in order, made unique with `_2`, `_3`, ...; and a note per clash."""
    keys: list[str] = []
    notes: list[str] = []
    taken: dict[str, str] = {}
    for name in names:
        base = key = metric_key(name)
        count = 1
        while key in taken:
            count += 1
            key = f"{base}_{count}"
        if key != base:
            notes.append(f"{name!r} and {taken[base]!r} both make the name {base!r}; {name!r} is {key!r}")
        taken[key] = name
        keys.append(key)
    return keys, notes


def read_bounded(path: Path, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, refusing a missing, empty or oversized file with a clear error."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputFileError(f"{name}: no such file; expected {what}") from None
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    if not path.is_file():
        raise InputFileError(f"{name}: not a regular file; expected {what}")
    if size > max_bytes:
        raise InputFileError(
            f"{name}: refused: the file is {size / 2**20:.0f} MiB, over the limit of "
            f"{max_bytes / 2**20:.0f} MiB for a load-test result file, which is read whole"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    if len(data) > max_bytes:  # it grew while we looked
        raise InputFileError(f"{name}: refused: the file is over {max_bytes / 2**20:.0f} MiB")
    if not data.strip():
        raise InputFileError(f"{name}: the file is empty; expected {what}")
    return data


def load_json(data: bytes, name: str, what: str) -> Any:
    """Parse JSON text, naming the file and telling a truncated file from a malformed one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{name}: not UTF-8 text (byte {error.start}); expected {what}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise InputFileError(f"{name}: refused: the JSON is nested too deeply; expected {what}") from None
    except json.JSONDecodeError as error:
        if error.pos >= len(text.rstrip()):
            raise InputFileError(
                f"{name}: the JSON ends before the document is complete (truncated?); expected {what}"
            ) from None
        raise InputFileError(
            f"{name}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); expected {what}"
        ) from None
    except ValueError as error:  # e.g. an integer with too many digits
        raise InputFileError(f"{name}: not valid JSON ({error}); expected {what}") from None
