"""What the HTML report shows beyond the records themselves, read from the run's stored
artifacts and from the plan's earlier runs: journeys with their failures, chaos experiments
as timelines, latency percentile spectra, flaky tests and the trend of key figures.

Every reader here is forgiving: an artifact that is missing, unreadable or shaped otherwise
is skipped (`gonogo verify` is what reports a missing or altered artifact)."""

from __future__ import annotations

__all__ = [
    "ExperimentTimeline",
    "JourneyDetail",
    "LatencySpectrum",
    "TrendPoint",
    "percentile_levels",
    "read_experiments",
    "read_journeys",
    "read_spectra",
    "read_trend",
    "spectrum_points",
]

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from gonogo.evidence import ArtifactRecord, CheckRecord, MetricRecord, RunRecord, Store

MAX_FAILURES_SHOWN = 10  # per journey: the first ones say what broke; the artifact has them all
MAX_EXCERPT_CHARS = 2000
MAX_NINES = 6.0  # the spectrum stops at 99.9999%, as HdrHistogram's own plots do
_NINES_STEP = 0.05

PathOf = Callable[[str], Path]


@dataclass(frozen=True)
class JourneyDetail:
    check: str
    name: str
    artifact: str  # the artifact its failures were read from
    iterations: int | None
    failed: int | None
    steps: list[str]
    failures: list[dict[str, Any]]  # the first failures (journey/engine.py `Failure` fields)
    failures_total: int
    failed_at: dict[str, int]  # step → iterations that failed there


@dataclass(frozen=True)
class ExperimentTimeline:
    check: str
    artifact: str
    faults: list[str]
    applied: bool
    started: datetime | None
    injected: datetime | None
    detected: datetime | None  # injected + time_to_detect, when it was detected
    removed: datetime | None
    recovered: datetime | None  # start of the sustained period in which the hypothesis held
    ended: datetime | None
    broke: bool | None = None  # whether the hypothesis broke during the fault (None: not known)


@dataclass(frozen=True)
class LatencySpectrum:
    check: str
    name: str  # the distribution's stem: `latency`, `endpoint.list.latency`
    count: int
    points: list[tuple[float, float]]  # (percentile 0-100, seconds)


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    started_at: datetime
    decision: str | None
    score: float | None
    latency_p95: float | None
    rps: float | None
    error_rate: float | None


def _document(path_of: PathOf, artifact: ArtifactRecord) -> Any:
    try:
        return json.loads(path_of(artifact.sha256).read_bytes())
    except (OSError, ValueError):
        return None


def _metric_value(metrics: list[MetricRecord], full_name: str) -> float | None:
    found = [m.value for m in metrics if m.full_name == full_name]
    return found[-1] if found else None


def _failure(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    kept = {key: item.get(key) for key in ("journey", "iteration", "step", "method", "url", "status")}
    kept["message"] = str(item.get("message") or "")
    excerpt = str(item.get("response_excerpt") or "")
    kept["response_excerpt"] = excerpt[:MAX_EXCERPT_CHARS] + ("…" if len(excerpt) > MAX_EXCERPT_CHARS else "")
    kept["kind"] = str(item.get("kind") or "")
    kept["attempts"] = item.get("attempts")
    return kept


def _failures(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    return [f for f in (_failure(item) for item in items) if f is not None]


def read_journeys(
    artifacts: list[ArtifactRecord], metrics: list[MetricRecord], path_of: PathOf
) -> list[JourneyDetail]:
    """The journeys of `journeys` checks (`journey-<name>.json`) and of loads that ran journeys
    (`load-journey-failures.json`), each with its first failures."""
    found: list[JourneyDetail] = []
    for artifact in artifacts:
        check = artifact.check or ""
        if artifact.name.startswith("journey-") and artifact.name != "journey-failures.json":
            document = _document(path_of, artifact)
            if not isinstance(document, dict) or not isinstance(document.get("journey"), str):
                continue
            results: list[Any] = document["results"] if isinstance(document.get("results"), list) else []
            failures = _failures(document.get("failures"))
            found.append(
                JourneyDetail(
                    check=check,
                    name=document["journey"],
                    artifact=artifact.name,
                    iterations=len(results),
                    failed=sum(1 for r in results if isinstance(r, dict) and not r.get("ok")),
                    steps=[str(step) for step in document.get("steps") or []],
                    failures=failures[:MAX_FAILURES_SHOWN],
                    failures_total=len(failures),
                    failed_at=_count_steps(failures),
                )
            )
        elif artifact.name == "load-journey-failures.json":
            document = _document(path_of, artifact)
            if not isinstance(document, dict):
                continue
            failures = _failures(document.get("failures"))
            names = sorted(
                {str(name) for name in document.get("failed_at") or {}}
                | {str(f["journey"]) for f in failures if f.get("journey")}
            )
            for name in names:
                own = [f for f in failures if f.get("journey") == name]
                iterations = _metric_value(metrics, f"{check}.journey.{name}.iterations")
                failed = _metric_value(metrics, f"{check}.journey.{name}.failures")
                failed_at = (document.get("failed_at") or {}).get(name)
                counts = (
                    {str(step): int(n) for step, n in failed_at.items() if isinstance(n, int | float) and n}
                    if isinstance(failed_at, dict)
                    else _count_steps(own)
                )
                found.append(
                    JourneyDetail(
                        check=check,
                        name=name,
                        artifact=artifact.name,
                        iterations=None if iterations is None else int(iterations),
                        failed=None if failed is None else int(failed),
                        steps=[str(step) for step in failed_at] if isinstance(failed_at, dict) else [],
                        failures=own[:MAX_FAILURES_SHOWN],
                        failures_total=len(own),
                        failed_at=counts,
                    )
                )
    return found


def _count_steps(failures: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for failure in failures:
        step = str(failure.get("step") or "")
        counts[step] = counts.get(step, 0) + 1
    return counts


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def read_experiments(
    artifacts: list[ArtifactRecord], metrics: list[MetricRecord], path_of: PathOf
) -> list[ExperimentTimeline]:
    """Each chaos experiment's timeline from its `<check>-experiment.json`."""
    found: list[ExperimentTimeline] = []
    for artifact in artifacts:
        if not artifact.check or artifact.name != f"{artifact.check}-experiment.json":
            continue
        document = _document(path_of, artifact)
        if not isinstance(document, dict) or not isinstance(document.get("timeline"), dict):
            continue
        timeline = document["timeline"]
        faults = [f for f in document.get("faults") or [] if isinstance(f, dict)]
        injected = _moment(timeline.get("injected"))
        to_detect = _metric_value(metrics, f"{artifact.check}.time_to_detect")
        failed_rounds = _metric_value(metrics, f"{artifact.check}.hypothesis.during.failed_rounds")
        detected = None
        if injected is not None and to_detect is not None:
            detected = datetime.fromtimestamp(injected.timestamp() + to_detect, tz=injected.tzinfo)
        found.append(
            ExperimentTimeline(
                check=artifact.check,
                artifact=artifact.name,
                faults=[str(f.get("description") or f.get("kind") or "") for f in faults],
                applied=bool(faults) and all(f.get("applied") for f in faults),
                started=_moment(timeline.get("started")),
                injected=injected,
                detected=detected,
                removed=_moment(timeline.get("removed")),
                recovered=_moment(timeline.get("recovered")),
                ended=_moment(timeline.get("ended")),
                broke=None if failed_rounds is None else failed_rounds > 0,
            )
        )
    return found


def percentile_levels(total: int) -> list[float]:
    """The percentiles a spectrum of `total` values shows: from 0% up to the last one they can
    tell (1 - 1/total), evenly spaced in 'nines' (-log10(1 - p)) as HdrHistogram plots them."""
    if total <= 0:
        return []
    last_nines = min(math.log10(total), MAX_NINES)
    levels = [index * _NINES_STEP for index in range(int(last_nines / _NINES_STEP) + 1)]
    if last_nines - levels[-1] > _NINES_STEP / 2:
        levels.append(last_nines)
    else:
        levels[-1] = last_nines
    return [100.0 * (1.0 - 10.0**-nines) for nines in levels]


def spectrum_points(sample: Mapping[float, int]) -> list[tuple[float, float]]:
    """(percentile, value) of a weighted sample at `percentile_levels`."""
    total = sum(sample.values())
    ordered = sorted(sample.items())
    points: list[tuple[float, float]] = []
    position, cumulative = 0, ordered[0][1] if ordered else 0
    for percentile in percentile_levels(total):
        wanted = percentile / 100.0 * total
        while cumulative < wanted and position + 1 < len(ordered):
            position += 1
            cumulative += ordered[position][1]
        points.append((percentile, ordered[position][0]))
    return points


def read_spectra(artifacts: list[ArtifactRecord], path_of: PathOf) -> list[LatencySpectrum]:
    """The latency percentile spectrum of the whole load and of each endpoint, from each load
    check's `load-histograms.json` (latencies corrected for coordinated omission). Only those
    histograms are decoded, and read in one pass each: reading every one bucket by bucket took
    half a second of every report of the example."""
    found: list[LatencySpectrum] = []
    for artifact in artifacts:
        if artifact.name != "load-histograms.json":
            continue
        document = _document(path_of, artifact)
        if not isinstance(document, dict):
            continue
        endpoints = document.get("endpoints")
        wanted: list[tuple[str, Any]] = [("latency", document.get("overall"))]
        if isinstance(endpoints, dict):
            wanted += [(f"endpoint.{name}.latency", pair) for name, pair in endpoints.items()]
        for stem, pair in wanted:
            encoded = pair.get("corrected") if isinstance(pair, dict) else None
            if not isinstance(encoded, str):
                continue
            try:
                histogram = HdrHistogram.decode(encoded.encode("ascii"))
            except (ValueError, TypeError, AttributeError, UnicodeEncodeError):
                continue
            total = histogram.get_total_count()
            if total:
                levels = percentile_levels(total)
                values = histogram.get_percentile_to_value_dict(levels)  # µs, in one pass
                points = [(level, values[level] / 1e6) for level in levels]
                found.append(LatencySpectrum(artifact.check or "", stem, total, points))
    return found


def main_load_check(checks: list[CheckRecord]) -> tuple[str, str] | None:
    """(check, throughput metric) of the run's first load, else its first soak."""
    for kind, throughput in (("load", "rps"), ("soak", "throughput")):
        for check in checks:
            if check.kind == kind:
                return check.name, throughput
    return None


def read_trend(store: Store, run: RunRecord, checks: list[CheckRecord], limit: int = 20) -> list[TrendPoint]:
    """The plan's earlier runs (up to `limit`), oldest first, then this one: score, decision and
    the main load's p95, throughput and error rate."""
    main = main_load_check(checks)
    runs = [*reversed(store.plan_runs(run.name, before=run.id, limit=limit)), run]
    points: list[TrendPoint] = []
    for each in runs:
        verdict = store.verdict(each.id)
        metrics = store.metrics(each.id) if main is not None else []

        def figure(name: str, metrics: list[MetricRecord] = metrics) -> float | None:
            return None if main is None else _metric_value(metrics, f"{main[0]}.{name}")

        points.append(
            TrendPoint(
                run_id=each.id,
                started_at=each.started_at,
                decision=verdict.decision if verdict else None,
                score=verdict.score if verdict else None,
                latency_p95=figure("latency.p95"),
                rps=figure(main[1]) if main is not None else None,
                error_rate=figure("error_rate"),
            )
        )
    return points
