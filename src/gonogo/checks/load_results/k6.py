"""k6's end-of-test summary as JSON, in both of its forms.

- *Summary export* (`k6 run --summary-export=FILE`): each metric is a flat object of its
  figures, `{"avg": .., "med": .., "p(95)": .., "thresholds": {"p(95)<500": false}}`. Its
  threshold booleans say whether the threshold *failed* (k6 kept that inverted meaning
  for compatibility), and it has no test duration.
- *Summary data* (what `handleSummary` receives, written with `JSON.stringify(data)`; also
  `--summary-export` with `--new-machine-readable-summary`): each metric is
  `{"type": .., "contains": .., "values": {..}, "thresholds": {"p(95)<500": {"ok": true}}}`,
  and `state.testRunDurationMs` gives the duration.

What gonogo takes, in its base units:

- `http_reqs` count and rate → requests, rps;
- `http_req_failed` (a rate metric whose *passes* are the failed requests) → errors and
  error_rate = passes / (passes + fails); the counts are used rather than the exported
  rate, and a rate over no request at all is not recorded (k6 exports it as 0);
- `http_req_duration` trend, in milliseconds → latency: `avg` → mean, `med` or `p(50)`
  → p50, `p(90)`, `p(95)`, `p(99)`, `p(99.9)`, `min`, `max`. Only the figures k6 was told to
  keep (`summaryTrendStats`; `p(99)` is not among its defaults) are there;
- `checks` → checks pass rate, from its passes and fails;
- every threshold → its expression and whether it held;
- per endpoint: the submetrics `http_req_duration{name:...}`, `http_reqs{name:...}` and
  `http_req_failed{name:...}` (or `{url:...}`, optionally with `method:`), which k6
  exports only for submetrics that thresholds mention. Other tag filters
  (`{expected_response:true}`, `{status:500}`, ...) are not endpoints and are ignored.
"""

from __future__ import annotations

__all__ = ["WHAT", "parse_k6", "parse_k6_data", "split_metric_name"]

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonogo.checks.load_results.summary import Endpoint, Latency, LoadSummary, Stats, ThresholdResult
from gonogo.errors import InputFileError
from gonogo.inputs import finite, load_json, read_bounded, unique_keys

WHAT = 'a k6 end-of-test summary (a JSON object with "metrics", from --summary-export or handleSummary)'

# k6 trend statistic → gonogo latency field
_TREND_FIELDS = {
    "avg": "mean",
    "min": "min",
    "med": "p50",
    "p(50)": "p50",
    "p(90)": "p90",
    "p(95)": "p95",
    "p(99)": "p99",
    "p(99.9)": "p99_9",
    "max": "max",
}
_ENDPOINT_TAGS = ({"name"}, {"url"}, {"method", "name"}, {"method", "url"})
_HTTP_METRICS = ("http_req_duration", "http_reqs", "http_req_failed")
_URL_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")

TagKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Metric:
    """One metric of the summary, the same whichever form it came in."""

    name: str  # as exported, with its tag filter
    base: str
    tags: TagKey
    type: str | None  # trend, rate, counter, gauge; None when the export does not say
    values: dict[str, float | None]
    thresholds: dict[str, bool]  # expression → ok

    def value(self, key: str) -> float | None:
        return self.values.get(key)

    def count(self, key: str) -> int | None:
        value = self.values.get(key)
        return None if value is None else round(value)


def parse_k6(path: Path) -> LoadSummary:
    """Read the k6 summary JSON at `path`; raises InputFileError naming the file."""
    data = read_bounded(path, WHAT)
    return parse_k6_data(load_json(data, str(path), WHAT), str(path))


def parse_k6_data(document: Any, name: str) -> LoadSummary:
    """A k6 summary already parsed from JSON; `name` names its file in errors."""
    if not isinstance(document, dict) or not isinstance(document.get("metrics"), dict):
        shape = 'an object without a "metrics" object' if isinstance(document, dict) else _shape(document)
        raise InputFileError(f"{name}: {shape}; expected {WHAT}")
    metrics = [_metric(name, key, raw) for key, raw in document["metrics"].items()]
    plain = {metric.base: metric for metric in metrics if not metric.tags}
    notes: list[str] = []

    total = _stats(
        plain.get("http_req_duration"), plain.get("http_reqs"), plain.get("http_req_failed"), notes, ""
    )
    if "http_req_duration" not in plain and "http_reqs" not in plain:
        notes.append("the summary has no http_reqs or http_req_duration: the test made no HTTP request")
    duration_trend = plain.get("http_req_duration")
    if duration_trend is not None:
        missing = [stat for stat in ("p(99)", "p(99.9)") if stat not in duration_trend.values]
        nulls = [
            stat
            for stat in _TREND_FIELDS
            if stat in duration_trend.values and duration_trend.value(stat) is None
        ]
        if nulls:
            notes.append(f"latency {', '.join(nulls)} not recorded: k6 exported them as null (not a number)")
        if missing:
            notes.append(
                f"latency {', '.join(missing)} not in the summary: add them to k6's "
                "summaryTrendStats (--summary-trend-stats) to measure them"
            )

    return LoadSummary(
        format="k6",
        total=total,
        duration=_duration(document),
        endpoints=tuple(_endpoints(metrics, notes)),
        checks_pass_rate=_checks(plain.get("checks"), notes),
        thresholds=tuple(_thresholds(metrics)),
        latency_note="k6 trend statistics of http_req_duration",
        notes=tuple(notes),
    )


def split_metric_name(full: str) -> tuple[str, TagKey]:
    """`http_req_duration{name:GET /a,method:GET}` → (`http_req_duration`, sorted tag pairs)."""
    full = full.strip()
    if not full.endswith("}") or "{" not in full:
        return full, ()
    base, _, inner = full[:-1].partition("{")
    tags: dict[str, str] = {}
    last: str | None = None
    for part in inner.split(","):
        key, colon, value = part.partition(":")
        if not colon and last is not None:  # a comma inside the previous tag's value
            tags[last] += "," + part
            continue
        last = key.strip()
        tags[last] = value
    return base.strip(), tuple(sorted((key, _unquote(value.strip())) for key, value in tags.items()))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


# -- reading the metrics ----------------------------------------------------------------------


def _metric(file: str, name: str, raw: Any) -> _Metric:
    if not isinstance(raw, dict):
        raise InputFileError(f"{file}: metric {name!r} is {_shape(raw)}, not an object; expected {WHAT}")
    base, tags = split_metric_name(name)
    values_raw = raw.get("values")
    thresholds_raw = raw.get("thresholds") or {}
    if not isinstance(thresholds_raw, dict):
        raise InputFileError(f"{file}: the thresholds of metric {name!r} are not an object")
    thresholds: dict[str, bool] = {}
    if isinstance(values_raw, dict):  # the summary-data form
        kind = raw.get("type")
        metric_type = kind if isinstance(kind, str) else None
        figures = values_raw
        for expression, result in thresholds_raw.items():
            ok = result.get("ok") if isinstance(result, dict) else None
            if not isinstance(ok, bool):
                raise InputFileError(
                    f"{file}: threshold {expression!r} of metric {name!r} has no boolean `ok`"
                )
            thresholds[expression] = ok
    else:  # the summary-export form: flat figures, threshold booleans meaning "failed"
        figures = {key: value for key, value in raw.items() if key != "thresholds"}
        metric_type = _infer_type(figures)
        for expression, failed in thresholds_raw.items():
            if not isinstance(failed, bool):
                raise InputFileError(
                    f"{file}: threshold {expression!r} of metric {name!r} is not true or false"
                )
            thresholds[expression] = not failed
    values: dict[str, float | None] = {}
    for key, value in figures.items():
        if value is None:
            values[key] = None  # JSON.stringify writes a NaN as null
            continue
        number = finite(value)
        if number is None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InputFileError(f"{file}: metric {name!r}: {key!r} is {_shape(value)}, not a number")
        values[key] = number
    return _Metric(name, base, tags, metric_type, values, thresholds)


def _infer_type(figures: dict[str, Any]) -> str | None:
    keys = set(figures)
    if {"passes", "fails"} & keys:
        return "rate"
    if {"avg", "med"} & keys or any(key.startswith("p(") for key in keys):
        return "trend"
    if "count" in keys:
        return "counter"
    if "value" in keys:
        return "gauge"
    return None


def _stats(
    duration: _Metric | None,
    reqs: _Metric | None,
    failed: _Metric | None,
    notes: list[str],
    subject: str,
) -> Stats:
    """Figures from an http_req_duration trend, an http_reqs counter and an http_req_failed
    rate (or their submetrics for one endpoint, then `subject` names it in notes)."""
    requests = reqs.count("count") if reqs is not None else None
    rps = reqs.value("rate") if reqs is not None else None
    errors: int | None = None
    error_rate: float | None = None
    if failed is not None:
        passes, fails = failed.count("passes"), failed.count("fails")
        if passes is not None and fails is not None:
            errors = passes
            if requests is None:
                requests = passes + fails  # every HTTP request is one http_req_failed sample
            if passes + fails > 0:
                error_rate = passes / (passes + fails)
        else:
            # Without its counts, an exported rate of 0 may mean "no request at all": trust
            # the rate only when some requests were counted.
            rate = failed.value("rate") if "rate" in failed.values else failed.value("value")
            if rate is not None and requests:
                error_rate = rate
    latency = Latency()
    if duration is not None:
        samples = duration.count("count")
        if requests == 0 or samples == 0:
            notes.append(f"no latency{subject}: no request was made (k6 reports its figures as 0)")
        else:
            figures: dict[str, float] = {}
            for stat, field_name in _TREND_FIELDS.items():
                value = duration.value(stat)
                if value is not None and field_name not in figures:
                    figures[field_name] = value / 1000.0  # k6 time trends are in milliseconds
            latency = Latency(**figures)
    return Stats(requests=requests, errors=errors, error_rate=error_rate, rps=rps, latency=latency)


def _endpoints(metrics: list[_Metric], notes: list[str]) -> list[Endpoint]:
    groups: dict[TagKey, dict[str, _Metric]] = {}
    for metric in metrics:
        if metric.base in _HTTP_METRICS and {key for key, _ in metric.tags} in _ENDPOINT_TAGS:
            groups.setdefault(metric.tags, {})[metric.base] = metric
    labels: list[tuple[str, str | None, str]] = []  # (name, method, what the key is made from)
    for tags in groups:
        tag = dict(tags)
        target = tag.get("name", tag.get("url", ""))
        method = tag.get("method")
        shown = target if "name" in tag else (_URL_ORIGIN.sub("", target) or "/")
        labels.append(
            (f"{method} {target}" if method else target, method, f"{method} {shown}" if method else shown)
        )
    keys, clashes = unique_keys(source for _, _, source in labels)
    notes.extend(clashes)
    endpoints: list[Endpoint] = []
    for (name, method, _), key, parts in zip(labels, keys, groups.values(), strict=True):
        stats = _stats(
            parts.get("http_req_duration"),
            parts.get("http_reqs"),
            parts.get("http_req_failed"),
            notes,
            f" for endpoint {name!r}",
        )
        endpoints.append(Endpoint(name=name, key=key, stats=stats, method=method))
    return endpoints


def _checks(checks: _Metric | None, notes: list[str]) -> float | None:
    if checks is None:
        return None
    passes, fails = checks.count("passes"), checks.count("fails")
    if passes is not None and fails is not None:
        if passes + fails == 0:
            notes.append("checks.pass_rate not recorded: no k6 check ran")
            return None
        return passes / (passes + fails)
    return checks.value("rate") if "rate" in checks.values else checks.value("value")


def _thresholds(metrics: list[_Metric]) -> list[ThresholdResult]:
    with_thresholds = [metric for metric in metrics if metric.thresholds]
    keys, _ = unique_keys(metric.name for metric in with_thresholds)
    return [
        ThresholdResult(
            metric=metric.name, key=key, expression=expression, ok=ok, reliability=metric.type == "rate"
        )
        for metric, key in zip(with_thresholds, keys, strict=True)
        for expression, ok in metric.thresholds.items()
    ]


def _duration(document: dict[str, Any]) -> float | None:
    state = document.get("state")
    if not isinstance(state, dict):
        return None  # the summary-export form drops `state`
    milliseconds = finite(state.get("testRunDurationMs"))
    return None if milliseconds is None or milliseconds < 0 else milliseconds / 1000.0


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return f"`{str(value).lower() if value is not None else 'null'}`"
    return "a number" if isinstance(value, int | float) else type(value).__name__
