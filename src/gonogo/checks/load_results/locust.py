"""Locust's end-of-test request statistics: the `--json` output and the `--csv` stats file.

`locust --json` (or `--json-file`) writes a JSON list with one entry per (method, name):
`num_requests` (failures included), `num_failures`, `num_none_requests` (requests without
a response time), `total_response_time`, `min_response_time`, `max_response_time` (ms),
`response_times` {ms → count}, `num_reqs_per_sec` and `num_fail_per_sec` {epoch second →
count}, `start_time` (when the entry's statistics began) and `last_request_timestamp`.
There is no aggregated entry: the totals are computed from the entries.

`locust --csv PREFIX` writes `PREFIX_stats.csv`: one row per endpoint, then the
`Aggregated` row (Locust rewrites the file in place while it runs, so a file without that
last row is incomplete), with Locust's own mean, min, max, requests/s and percentiles.

Percentiles: Locust does not keep response times, only a histogram whose buckets it
*rounds* — to 1 ms below 100 ms, to 10 ms below 1 s, to 100 ms below 10 s, to 1 s above.
From the JSON's buckets gonogo computes any percentile with Locust's own rule (the P-th
percentile of n requests is the bucket of the (⌊P·n⌋+1)-th fastest), so its figures are
the ones Locust prints, and its CSV and JSON agree; unlike Locust, a percentile is kept
within the exact min and max (a single 1387 ms request is in the 1400 ms bucket, yet the
maximum is 1387 ms). The figures are therefore as coarse as those buckets.
"""

from __future__ import annotations

__all__ = [
    "CSV_WHAT",
    "JSON_WHAT",
    "PERCENTILES",
    "bucket_percentile",
    "parse_locust_csv",
    "parse_locust_csv_data",
    "parse_locust_json",
    "parse_locust_json_data",
]

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gonogo.checks.load_results.summary import Endpoint, Latency, LoadSummary, SecondCounts, Stats
from gonogo.errors import InputFileError
from gonogo.inputs import finite, load_json, read_bounded, unique_keys

JSON_WHAT = "Locust's --json output (a JSON list of request statistics entries)"
CSV_WHAT = (
    "Locust's --csv request statistics (PREFIX_stats.csv: Type, Name, Request Count, Failure Count, "
    "..., ending with the Aggregated row)"
)

# gonogo latency field → percentile as a fraction, kept exact (0.999 · 1000 is not 999 in floats)
PERCENTILES: dict[str, tuple[int, int]] = {
    "p50": (50, 100),
    "p90": (90, 100),
    "p95": (95, 100),
    "p99": (99, 100),
    "p99_9": (999, 1000),
}
_CSV_PERCENTILES = {"p50": "50%", "p90": "90%", "p95": "95%", "p99": "99%", "p99_9": "99.9%"}
_CSV_REQUIRED = (
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Requests/s",
)
_OTHER_LOCUST_CSVS = {
    ("Timestamp", "User Count"): "the stats history (PREFIX_stats_history.csv)",
    ("Method", "Name"): "the failures list (PREFIX_failures.csv)",
    ("Count", "Message"): "the exceptions list (PREFIX_exceptions.csv)",
}
_LATEST_EPOCH = 1e11  # seconds: year 5138; anything later is not a timestamp
_JSON_NOTE = (
    "percentiles from Locust's rounded response-time buckets (1 ms < 100 ms, 10 ms < 1 s, "
    "100 ms < 10 s, 1 s above) by Locust's rule, kept within the exact min and max"
)
_CSV_NOTE = "Locust's percentiles, from its rounded response-time buckets, kept within the exact min and max"


def bucket_percentile(buckets: Mapping[float, int], numerator: int, denominator: int) -> float | None:
    """The `numerator/denominator` percentile of a {response time → count} histogram, by
    Locust's rule: the bucket holding the (⌊P·n⌋+1)-th fastest request (the slowest for
    P = 1). None for an empty histogram."""
    n = sum(buckets.values())
    if n <= 0:
        return None
    rank = min(n, numerator * n // denominator + 1)
    seen = 0
    for value in sorted(buckets):
        seen += buckets[value]
        if seen >= rank:
            return value
    return None  # not reached: the counts add up to n


# -- JSON -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One entry of Locust's JSON, checked; times in milliseconds."""

    name: str
    method: str | None
    requests: int
    failures: int
    none_requests: int
    total_time: float | None
    min_time: float | None
    max_time: float | None
    buckets: dict[float, int]
    start: float | None
    last: float | None
    per_second: dict[int, int]
    failures_per_second: dict[int, int]


def parse_locust_json(path: Path) -> LoadSummary:
    """Read Locust's `--json` output at `path`; raises InputFileError naming the file."""
    data = read_bounded(path, JSON_WHAT)
    return parse_locust_json_data(load_json(data, str(path), JSON_WHAT), str(path))


def parse_locust_json_data(document: Any, name: str) -> LoadSummary:
    """Locust's `--json` output already parsed; `name` names its file in errors."""
    if not isinstance(document, list):
        shape = "a JSON object" if isinstance(document, dict) else "not a JSON list"
        raise InputFileError(f"{name}: {shape}; expected {JSON_WHAT}")
    entries = [_entry(name, index, raw) for index, raw in enumerate(document)]
    notes: list[str] = []
    starts = [entry.start for entry in entries if entry.start is not None]
    lasts = [entry.last for entry in entries if entry.last is not None]
    window: tuple[datetime, datetime] | None = None
    duration: float | None = None
    if starts and lasts and max(lasts) > min(starts):
        window = (_time(min(starts)), _time(max(lasts)))
        duration = max(lasts) - min(starts)
    elif entries:
        notes.append("duration and rps not recorded: the entries give no start and last request times")
    if not entries:
        notes.append("Locust made no request: the statistics list is empty")

    keys, clashes = unique_keys(_label(entry.method, entry.name) for entry in entries)
    notes.extend(clashes)
    endpoints = tuple(
        Endpoint(
            name=_label(entry.method, entry.name),
            key=key,
            stats=_json_stats([entry], duration),
            method=entry.method,
        )
        for entry, key in zip(entries, keys, strict=True)
    )
    return LoadSummary(
        format="locust-json",
        total=_json_stats(entries, duration),
        duration=duration,
        endpoints=endpoints,
        window=window,
        per_second=_per_second(entries),
        latency_note=_JSON_NOTE,
        notes=tuple(notes),
    )


def _json_stats(entries: Sequence[_Entry], duration: float | None) -> Stats:
    requests = sum(entry.requests for entry in entries)
    errors = sum(entry.failures for entry in entries)
    buckets: dict[float, int] = {}
    for entry in entries:
        for value, count in entry.buckets.items():
            buckets[value] = buckets.get(value, 0) + count
    timed = [entry for entry in entries if entry.requests > entry.none_requests]
    mean: float | None = None
    if timed and all(entry.total_time is not None for entry in timed):
        mean = sum(entry.total_time or 0.0 for entry in timed) / sum(
            entry.requests - entry.none_requests for entry in timed
        )
    mins = [entry.min_time for entry in timed]
    maxes = [entry.max_time for entry in timed]
    low = min(value for value in mins if value is not None) if timed and None not in mins else None
    high = max(value for value in maxes if value is not None) if timed and None not in maxes else None
    figures: dict[str, float | None] = {"mean": mean, "min": low, "max": high}
    for field_name, (numerator, denominator) in PERCENTILES.items():
        figures[field_name] = _within(bucket_percentile(buckets, numerator, denominator), low, high)
    return Stats(
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else None,
        rps=requests / duration if duration else None,
        latency=_latency(figures),
    )


def _per_second(entries: Iterable[_Entry]) -> tuple[SecondCounts, ...]:
    requests: dict[int, int] = {}
    failures: dict[int, int] = {}
    for entry in entries:
        for second, count in entry.per_second.items():
            requests[second] = requests.get(second, 0) + count
        for second, count in entry.failures_per_second.items():
            failures[second] = failures.get(second, 0) + count
    return tuple(
        SecondCounts(_time(second), requests.get(second, 0), failures.get(second, 0))
        for second in sorted(requests.keys() | failures.keys())
    )


def _entry(file: str, index: int, raw: Any) -> _Entry:
    where = f"{file}: entry {index + 1}"
    if not isinstance(raw, dict):
        raise InputFileError(f"{where} is not an object; expected {JSON_WHAT}")
    name = raw.get("name")
    if not isinstance(name, str):
        raise InputFileError(f"{where} has no name; expected {JSON_WHAT}")
    where = f"{file}: entry {index + 1} ({name!r})"
    method = raw.get("method")
    if method is not None and not isinstance(method, str):
        raise InputFileError(f"{where}: `method` is not a string")

    def count(key: str, *, required: bool = True) -> int:
        value = raw.get(key)
        if value is None and not required:
            return 0
        number = finite(value)
        if number is None or number < 0 or not number.is_integer():
            raise InputFileError(
                f"{where}: `{key}` is {_show(value)}; expected a count; expected {JSON_WHAT}"
            )
        return int(number)

    def number(key: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        result = finite(value)
        if result is None or result < 0:
            raise InputFileError(f"{where}: `{key}` is {_show(value)}; expected a number of milliseconds")
        return result

    def moment(key: str) -> float | None:
        value = number(key)
        if value is not None and value >= _LATEST_EPOCH:
            raise InputFileError(
                f"{where}: `{key}` is {_show(raw.get(key))}; expected a Unix time in seconds"
            )
        return value or None

    requests = count("num_requests")
    failures = count("num_failures")
    none_requests = count("num_none_requests", required=False)
    if "response_times" not in raw:
        raise InputFileError(f"{where}: no `response_times`; expected {JSON_WHAT}")
    buckets = _histogram(where, "response_times", raw["response_times"])
    per_second = _histogram(where, "num_reqs_per_sec", raw.get("num_reqs_per_sec") or {})
    failures_per_second = _histogram(where, "num_fail_per_sec", raw.get("num_fail_per_sec") or {})
    return _Entry(
        name=name,
        method=method or None,
        requests=requests,
        failures=failures,
        none_requests=min(none_requests, requests),
        total_time=number("total_response_time"),
        min_time=number("min_response_time"),
        max_time=number("max_response_time"),
        buckets=buckets,
        start=moment("start_time"),
        last=moment("last_request_timestamp"),
        per_second=_seconds(per_second),
        failures_per_second=_seconds(failures_per_second),
    )


def _histogram(where: str, key: str, raw: Any) -> dict[float, int]:
    """A JSON object {number as text → count}, e.g. {"120.0": 5}."""
    if not isinstance(raw, dict):
        raise InputFileError(f"{where}: `{key}` is {_show(raw)}; expected an object of value → count")
    histogram: dict[float, int] = {}
    for text, value in raw.items():
        try:
            bucket = float(text)
        except ValueError:
            bucket = float("nan")
        if not math.isfinite(bucket) or bucket < 0:
            raise InputFileError(f"{where}: `{key}` has the key {text!r}, which is not a number") from None
        count = finite(value)
        if count is None or count < 0 or not count.is_integer():
            raise InputFileError(f"{where}: `{key}`[{text!r}] is {_show(value)}; expected a count")
        histogram[bucket] = histogram.get(bucket, 0) + int(count)
    return histogram


def _seconds(histogram: Mapping[float, int]) -> dict[int, int]:
    seconds: dict[int, int] = {}
    for second, count in histogram.items():
        if second < _LATEST_EPOCH:  # a time gonogo can show, not an absurd one
            seconds[int(second)] = seconds.get(int(second), 0) + count
    return seconds


# -- CSV --------------------------------------------------------------------------------------


def parse_locust_csv(path: Path) -> LoadSummary:
    """Read Locust's `PREFIX_stats.csv` at `path`; raises InputFileError naming the file."""
    return parse_locust_csv_data(read_bounded(path, CSV_WHAT), str(path))


def parse_locust_csv_data(data: bytes, name: str) -> LoadSummary:
    """The bytes of Locust's `PREFIX_stats.csv`; `name` names its file in errors."""
    text = data.decode("utf-8-sig", errors="replace")  # names are labels: a bad byte is harmless
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise InputFileError(f"{name}: not readable as CSV ({error}); expected {CSV_WHAT}") from None
    first = next((index for index, row in enumerate(rows) if any(cell.strip() for cell in row)), 0)
    header = [cell.strip() for cell in rows[first]] if rows else []
    other = _OTHER_LOCUST_CSVS.get((header[0], header[1]) if len(header) >= 2 else ("", ""))
    if other is not None:
        raise InputFileError(
            f"{name}: this is Locust's {other}, not its request statistics; point `file` at "
            "the PREFIX_stats.csv written beside it"
        )
    missing = [column for column in _CSV_REQUIRED if column not in header]
    if len(missing) == len(_CSV_REQUIRED):
        starts = ",".join(header[:3])[:60]
        raise InputFileError(
            f"{name}:{first + 1}: the header ({starts},...) is not that of Locust's request statistics; "
            f"expected {CSV_WHAT}"
        )
    if missing:
        raise InputFileError(
            f"{name}:{first + 1}: no column {', '.join(missing)} in the header; expected {CSV_WHAT}"
        )
    column = {title: index for index, title in enumerate(header)}

    total: Stats | None = None
    labels: list[tuple[str, str | None]] = []
    endpoint_stats: list[Stats] = []
    for line, row in enumerate(rows[first + 1 :], start=first + 2):
        if not any(cell.strip() for cell in row):
            continue
        if total is not None:
            raise InputFileError(f"{name}:{line}: a row after the Aggregated row, which Locust writes last")
        if len(row) != len(header):
            raise InputFileError(
                f"{name}:{line}: {len(row)} fields where the header has {len(header)} "
                "(truncated or not Locust's stats file?)"
            )
        method, label = row[column["Type"]].strip(), row[column["Name"]]
        stats = _csv_stats(name, line, row, column)
        if label == "Aggregated" and method in ("", "None"):
            total = stats
        else:
            labels.append((_label(method or None, label), method or None))
            endpoint_stats.append(stats)
    if total is None:
        raise InputFileError(
            f"{name}: no Aggregated row; Locust writes it last, so the file is incomplete "
            f"(truncated, or copied while Locust was still writing it); expected {CSV_WHAT}"
        )
    keys, clashes = unique_keys(label for label, _ in labels)
    endpoints = tuple(
        Endpoint(name=label, key=key, stats=stats, method=method)
        for (label, method), key, stats in zip(labels, keys, endpoint_stats, strict=True)
    )
    return LoadSummary(
        format="locust-csv",
        total=total,
        endpoints=endpoints,
        latency_note=_CSV_NOTE,
        notes=(*clashes, "duration not recorded: Locust's stats CSV does not give the run's duration"),
    )


def _csv_stats(file: str, line: int, row: list[str], column: Mapping[str, int]) -> Stats:
    def cell(title: str) -> float | None:
        if title not in column:
            return None
        text = row[column[title]].strip()
        if text in ("", "N/A"):
            return None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value < 0:
            raise InputFileError(f"{file}:{line}: {title} is {text!r}, not a number; expected {CSV_WHAT}")
        return value

    def count(title: str) -> int:
        value = cell(title)
        if value is None or not value.is_integer():
            raise InputFileError(f"{file}:{line}: {title} is not a count; expected {CSV_WHAT}")
        return int(value)

    requests = count("Request Count")
    errors = count("Failure Count")
    rps = cell("Requests/s")
    if not requests:  # Locust writes 0 (and N/A) for the figures of an entry with no request
        return Stats(requests=requests, errors=errors, rps=rps)
    low, high = cell("Min Response Time"), cell("Max Response Time")
    figures: dict[str, float | None] = {"mean": cell("Average Response Time"), "min": low, "max": high}
    for field_name, title in _CSV_PERCENTILES.items():
        value = cell(title)
        if value is None and field_name == "p50":
            value = cell("Median Response Time")
        figures[field_name] = _within(value, low, high)
    return Stats(
        requests=requests, errors=errors, error_rate=errors / requests, rps=rps, latency=_latency(figures)
    )


# -- shared -----------------------------------------------------------------------------------


def _latency(milliseconds: Mapping[str, float | None]) -> Latency:
    return Latency(**{key: value / 1000.0 for key, value in milliseconds.items() if value is not None})


def _within(value: float | None, low: float | None, high: float | None) -> float | None:
    if value is None:
        return None
    if high is not None:
        value = min(value, high)
    if low is not None:
        value = max(value, low)
    return value


def _label(method: str | None, name: str) -> str:
    return f"{method} {name}" if method else name


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
