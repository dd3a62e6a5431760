"""`report.html`: one self-contained page for a release meeting, readable offline.

Charts are drawn by uPlot (vendored in `assets/`, MIT) from data embedded as JSON in a
`<script type="application/json">` element; every name that came from the run (test names,
journey names, response bodies) reaches the page either through Jinja's autoescaping or
through that JSON with `<`, `>` and `&` escaped, so it is shown as text and never run. A
Content-Security-Policy lets only the page's own two scripts run (by their sha256) and
forbids every network request."""

from __future__ import annotations

__all__ = ["render_html", "script_json"]

import base64
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from gonogo.evidence import MetricRecord, SampleSeries
from gonogo.report.details import ExperimentTimeline, TrendPoint, main_load_check
from gonogo.report.document import (
    COMPARISON_HEADERS,
    RunReport,
    artifact_command,
    comparison_caption,
    comparison_cells,
    gate_threshold,
)
from gonogo.units import format_value

if TYPE_CHECKING:
    import jinja2

MAX_POINTS = 600  # per chart: longer series are folded into buckets (max of latency, mean of the rest)
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_STATUS_CLASS = {"pass": "pass", "fail": "fail", "warn": "warn", "not_measured": "unknown"}


def script_json(value: Any) -> Markup:
    """JSON safe inside a `<script>` element: no `<`, `>` or `&` (so no `</script>` or `<!--`)
    and no NaN or infinity (not JSON)."""
    text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _ESCAPES.items():
        text = text.replace(raw, escaped)
    return Markup(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# -- charts -----------------------------------------------------------------------------------


@dataclass
class Chart:
    """One chart as the page's script reads it (`kind`: time, spectrum or runs)."""

    id: str
    title: str
    kind: str
    unit: str
    x: list[float]
    series: list[dict[str, Any]]  # {"label", "values"}
    bands: list[dict[str, Any]] = field(default_factory=list)  # {"from", "to", "label"}: faults
    marks: list[dict[str, Any]] = field(default_factory=list)  # {"at", "label"}: detected, recovered
    labels: list[str] = field(default_factory=list)  # runs charts: the x axis' run labels
    tips: list[str] = field(default_factory=list)  # runs charts: each run in the legend, in full
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "unit": self.unit,
            "x": self.x,
            "series": self.series,
            "bands": self.bands,
            "marks": self.marks,
            "labels": self.labels,
            "tips": self.tips,
        }


def _epoch(moment: datetime) -> float:
    return round(moment.timestamp(), 3)


def _aligned(
    named: Sequence[tuple[str, Sequence[tuple[float, float]]]], fold: Callable[[list[float]], float]
) -> tuple[list[float], list[dict[str, Any]], str]:
    """Series on one shared x axis (missing points are null), folded to MAX_POINTS buckets."""
    xs = sorted({x for _, points in named for x, _ in points})
    columns = [dict(points) for _, points in named]
    note = ""
    if len(xs) > MAX_POINTS:
        size = math.ceil(len(xs) / MAX_POINTS)
        buckets = [xs[start : start + size] for start in range(0, len(xs), size)]
        folded: list[list[float | None]] = []
        for column in columns:
            values = []
            for bucket in buckets:
                inside = [column[x] for x in bucket if x in column]
                values.append(fold(inside) if inside else None)
            folded.append(values)
        note = f"{len(xs)} points shown as {len(buckets)} buckets of {size}"
        xs = [bucket[0] for bucket in buckets]
    else:
        folded = [[column.get(x) for x in xs] for column in columns]
    return (
        xs,
        [{"label": name, "values": values} for (name, _), values in zip(named, folded, strict=True)],
        note,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


class _Charts:
    def __init__(self, report: RunReport) -> None:
        self.report = report
        self.all: list[Chart] = []
        self.bands = [band for e in report.experiments for band in _fault_bands(e)]

    def add(
        self,
        title: str,
        unit: str,
        named: Sequence[tuple[str, Sequence[tuple[float, float]]]],
        *,
        kind: str = "time",
        fold: Callable[[list[float]], float] = _mean,
        marks: list[dict[str, Any]] | None = None,
        labels: list[str] | None = None,
        tips: list[str] | None = None,
    ) -> Chart | None:
        named = [(name, points) for name, points in named if points]
        if not named:
            return None
        x, series, note = _aligned(named, fold)
        chart = Chart(
            id=f"chart-{len(self.all) + 1}",
            title=title,
            kind=kind,
            unit=unit,
            x=x,
            series=series,
            bands=self._bands_within(x) if kind == "time" else [],
            marks=marks or [],
            labels=labels or [],
            tips=tips or [],
            note=note,
        )
        self.all.append(chart)
        return chart

    def _bands_within(self, x: list[float]) -> list[dict[str, Any]]:
        if not x:
            return []
        return [b for b in self.bands if b["to"] >= x[0] and b["from"] <= x[-1]]


def _fault_bands(experiment: ExperimentTimeline) -> list[dict[str, Any]]:
    if experiment.injected is None:
        return []
    end = experiment.removed or experiment.ended or experiment.injected
    label = f"{experiment.check}: {', '.join(experiment.faults) or 'fault'}"
    return [
        {"from": _epoch(experiment.injected), "to": _epoch(end), "label": label, "check": experiment.check}
    ]


def _points(series: SampleSeries) -> list[tuple[float, float]]:
    return [(_epoch(at), value) for at, value in series.points]


@dataclass
class CheckCharts:
    check: str
    kind: str
    charts: list[Chart]


def _check_charts(charts: _Charts, report: RunReport) -> list[CheckCharts]:
    """For each check with per-second series: latency (p95 per endpoint, p95 and p99 overall),
    requests and errors per second, availability; anything else grouped by unit."""
    found: list[CheckCharts] = []
    for check in report.checks:
        own = [s for s in report.samples if s.labels.get("check") == check.name and s.points]
        made = _charts_of_check(charts, report, check.name, own) if own else []
        if made:
            found.append(CheckCharts(check.name, check.kind, made))
    return found


def _charts_of_check(charts: _Charts, report: RunReport, check: str, own: list[SampleSeries]) -> list[Chart]:
    prefix = f"{check}."
    by_name = {s.name.removeprefix(prefix): s for s in own}
    made: list[Chart | None] = []
    used: set[str] = set()

    def take(name: str) -> SampleSeries | None:
        series = by_name.get(name)
        if series is not None:
            used.add(name)
        return series

    latency: list[tuple[str, list[tuple[float, float]]]] = []
    for figure in ("latency.p95", "latency.p99"):
        series = take(figure)
        if series is not None:
            latency.append((f"all {figure.removeprefix('latency.')}", _points(series)))
    for name in sorted(by_name):
        if name.startswith("endpoint.") and name.endswith(".latency.p95"):
            endpoint = by_name[name].labels.get("endpoint") or name.split(".")[1]
            latency.append((f"{endpoint} p95", _points(by_name[name])))
            used.add(name)
        elif name.startswith(("endpoint.", "component.")) and ".latency." in name:
            used.add(name)  # the overall p99 is drawn; each endpoint's p95 is enough beside it
    made.append(charts.add(f"{check}: latency per second", "seconds", latency, fold=max))
    throughput = take("rps") or take("throughput")
    errors = take("error_rate")
    rates: list[tuple[str, list[tuple[float, float]]]] = []
    if throughput is not None:
        rates.append(("requests/s", _points(throughput)))
        if errors is not None:
            rate_at = dict(_points(errors))
            per_second = [(x, value * rate_at[x]) for x, value in _points(throughput) if x in rate_at]
            rates.append(("errors/s", per_second))
    elif errors is not None:
        made.append(charts.add(f"{check}: error rate", "ratio", [("error rate", _points(errors))]))
    made.append(charts.add(f"{check}: requests and errors per second", "per_second", rates))
    for name in sorted(by_name):
        if name.startswith(("endpoint.", "component.")) and name.endswith((".rps", ".error_rate")):
            used.add(name)  # in the overall rates; the per-endpoint figures are in the metrics
    experiment = next((e for e in report.experiments if e.check == check), None)
    availability = take("availability")
    if availability is not None:
        made.append(
            charts.add(
                f"{check}: availability of the background load",
                "ratio",
                [("availability", _points(availability))],
                fold=min,
                marks=_marks(experiment) if experiment else None,
            )
        )
    rest: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {}
    for name, series in sorted(by_name.items()):
        if name not in used:
            rest.setdefault(series.unit, []).append((name, _points(series)))
    for unit, named in rest.items():
        made.append(charts.add(f"{check}: {', '.join(n for n, _ in named)}", unit, named))
    return [chart for chart in made if chart is not None]


def _recovered(experiment: ExperimentTimeline) -> datetime | None:
    """When the hypothesis held again, if it broke: one that never broke has nothing to recover."""
    return experiment.recovered if experiment.broke is not False else None


def _marks(experiment: ExperimentTimeline) -> list[dict[str, Any]]:
    moments = (("detected", experiment.detected), ("recovered", _recovered(experiment)))
    return [{"at": _epoch(at), "label": label} for label, at in moments if at is not None]


_RESOURCES = (
    ("cpu", "CPU", "ratio"),
    ("rss", "resident memory (RSS)", "bytes"),
    ("fds", "open files", "count"),
)


def _resource_charts(charts: _Charts, report: RunReport) -> list[Chart]:
    made = []
    for name, title, unit in _RESOURCES:
        named = [
            (s.labels["service"], _points(s))
            for s in sorted(report.samples, key=lambda s: s.labels.get("service", ""))
            if s.name == name and "service" in s.labels and "check" not in s.labels
        ]
        chart = charts.add(f"{title} per service", unit, _merge_same_label(named))
        if chart is not None:
            made.append(chart)
    return made


def _merge_same_label(
    named: Iterable[tuple[str, list[tuple[float, float]]]],
) -> list[tuple[str, list[tuple[float, float]]]]:
    """Series flushed in several pieces under one label become one."""
    merged: dict[str, list[tuple[float, float]]] = {}
    for name, points in named:
        merged.setdefault(name, []).extend(points)
    return [(name, sorted(points)) for name, points in merged.items()]


def _nines(percentile: float) -> float:
    return round(-math.log10(max(1.0 - percentile / 100.0, 1e-9)), 4)


def _spectrum_charts(charts: _Charts, report: RunReport) -> dict[str, Chart]:
    by_check: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {}
    for spectrum in report.spectra:
        name = "all requests" if spectrum.name == "latency" else spectrum.name.removeprefix("endpoint.")
        name = name.removesuffix(".latency")
        points = [(_nines(p), seconds) for p, seconds in spectrum.points]
        by_check.setdefault(spectrum.check, []).append((f"{name} ({spectrum.count} requests)", points))
    made: dict[str, Chart] = {}
    for check, named in by_check.items():
        chart = charts.add(f"{check}: latency by percentile", "seconds", named, kind="spectrum", fold=max)
        if chart is not None:
            made[check] = chart
    return made


def _trend_charts(charts: _Charts, report: RunReport) -> list[Chart]:
    trend = report.trend
    if len(trend) < 2:
        return []
    labels = _run_labels(trend)
    tips = [f"{p.started_at:%Y-%m-%d %H:%M:%S} UTC, run {p.run_id}" for p in trend]
    main = main_load_check(report.checks)
    figures: list[tuple[str, str, Callable[[Any], float | None]]] = [("score", "number", lambda p: p.score)]
    if main is not None:
        figures += [
            (f"{main[0]}.latency.p95", "seconds", lambda p: p.latency_p95),
            (f"{main[0]}.{main[1]}", "per_second", lambda p: p.rps),
            (f"{main[0]}.error_rate", "ratio", lambda p: p.error_rate),
        ]
    made = []
    for title, unit, read in figures:
        points = [(float(index), value) for index, p in enumerate(trend) if (value := read(p)) is not None]
        if len(points) >= 2:
            chart = charts.add(title, unit, [(title, points)], kind="runs", labels=labels, tips=tips)
            if chart is not None:
                made.append(chart)
    return made


def _run_labels(trend: Sequence[TrendPoint]) -> list[str]:
    """Each run's start to the second, so that runs minutes apart read apart; runs that started
    in the same second are told apart by the end of their id."""
    labels = [f"{p.started_at:%m-%d %H:%M:%S}" for p in trend]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [
        f"{label} ({p.run_id[-6:]})" if label in repeated else label
        for label, p in zip(labels, trend, strict=True)
    ]


# -- the page ---------------------------------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # only where a page is rendered: `gonogo --help` and `validate` stay light

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gonogo.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["value"] = lambda value, unit: format_value(value, unit or "number")
    environment.filters["threshold"] = gate_threshold
    environment.filters["moment"] = lambda at: "—" if at is None else f"{at:%Y-%m-%d %H:%M:%S}"
    environment.filters["clock"] = lambda at: f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}"
    return environment


@cache
def _asset(name: str) -> str:
    return (files("gonogo.report") / "assets" / name).read_text(encoding="utf-8")


def _script_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def _metric_rows(report: RunReport) -> list[dict[str, Any]]:
    """The gated metrics, each with the artifact it came from and the command that extracts it."""
    by_id = {m.id: m for m in report.metrics if m.id is not None}
    rows = []
    seen: set[int] = set()
    for gate in report.verdict.gates if report.verdict else []:
        metric = by_id.get(gate.metric_id) if gate.metric_id is not None else None
        if metric is None or metric.id is None or metric.id in seen:
            continue
        seen.add(metric.id)
        rows.append(_metric_row(report, metric))
    return rows


def _metric_row(report: RunReport, metric: MetricRecord) -> dict[str, Any]:
    artifact = report.artifact_of(metric)
    return {
        "anchor": f"metric-{metric.id}",
        "metric": metric,
        "artifact": artifact,
        "command": artifact_command(report.run.id, artifact) if artifact else "",
    }


def _timeline_rows(report: RunReport, charts: dict[str, list[Chart]]) -> list[dict[str, Any]]:
    """Each experiment's moments, as percentages of its duration for a CSS timeline, with its
    check's charts (the background load's availability)."""
    rows = []
    for experiment in report.experiments:
        start, end = experiment.started, experiment.ended
        length = (end - start).total_seconds() if start is not None and end is not None else 0.0
        moments = [
            ("started", experiment.started),
            ("injected", experiment.injected),
            ("detected", experiment.detected),
            ("removed", experiment.removed),
            ("recovered", _recovered(experiment)),
            ("ended", experiment.ended),
        ]
        marks: list[dict[str, Any]] = []
        placed: dict[str, float] = {}
        for label, moment in moments:
            if moment is None:
                continue
            since = (moment - start).total_seconds() if start is not None else None
            left = None
            if since is not None and length > 0:
                left = round(min(max(since / length, 0.0), 1.0) * 100, 2)
            marks.append({"label": label, "at": moment, "since": since, "left": left})
            if left is not None:
                placed[label] = left
        fault = None
        if "injected" in placed:
            width = round(placed.get("removed", 100.0) - placed["injected"], 2)
            fault = {"left": placed["injected"], "width": max(width, 0.3)}
        rows.append(
            {
                "experiment": experiment,
                "marks": marks,
                "fault": fault,
                "charts": charts.get(experiment.check, []),
            }
        )
    return rows


def render_html(report: RunReport) -> str:
    charts = _Charts(report)
    check_charts = _check_charts(charts, report)
    experimented = {e.check for e in report.experiments}
    spectra = _spectrum_charts(charts, report)
    resources = _resource_charts(charts, report)
    trend = _trend_charts(charts, report)
    script = _asset("report.js")
    uplot = _asset("uPlot.iife.min.js")
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {_script_hash(uplot)} {_script_hash(script)}"
    )
    verdict = report.verdict
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            run=report.run,
            verdict=verdict,
            status_class=_STATUS_CLASS,
            gate_rows=_gate_rows(report),
            baseline_headers=COMPARISON_HEADERS,
            baseline_caption=comparison_caption(report.baseline) if report.baseline else "",
            baseline_rows=[(row, comparison_cells(row)) for row in report.baseline.rows]
            if report.baseline
            else [],
            gate_counts=_gate_counts(report),
            metric_rows=_metric_rows(report),
            check_charts=[group for group in check_charts if group.check not in experimented],
            spectra=spectra,
            resources=resources,
            resource_summaries=report.resources,
            trend_charts=trend,
            timelines=_timeline_rows(report, {group.check: group.charts for group in check_charts}),
            charts_json=script_json([chart.to_json() for chart in charts.all]),
            notes={chart.id: chart.note for chart in charts.all},
            policy=policy,
            uplot_css=Markup(_asset("uPlot.min.css")),
            uplot_js=Markup(uplot),
            report_js=Markup(script),
            artifact_command=artifact_command,
            journey_commands={
                (j.check, j.artifact): next(
                    (
                        artifact_command(report.run.id, a)
                        for a in report.artifacts
                        if a.name == j.artifact and (a.check or "") == j.check
                    ),
                    "",
                )
                for j in report.journeys
            },
        )
    )


def _gate_counts(report: RunReport) -> list[tuple[str, int]]:
    gates = report.verdict.gates if report.verdict else []
    counts = [(status, sum(1 for g in gates if g.status == status)) for status in _STATUS_CLASS]
    return [(status, count) for status, count in counts if count]


def _gate_rows(report: RunReport) -> list[dict[str, Any]]:
    by_id = {m.id: m for m in report.metrics if m.id is not None}
    rows = []
    for gate in report.verdict.gates if report.verdict else []:
        metric = by_id.get(gate.metric_id) if gate.metric_id is not None else None
        rows.append({"gate": gate, "anchor": f"metric-{metric.id}" if metric is not None else None})
    return rows
