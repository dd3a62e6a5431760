"""The distributions behind a run's latency figures, as weighted samples `shift.compare` reads.

A load check's `load-histograms.json` holds an HdrHistogram (µs) of every figure whose
percentiles it recorded; a journeys check's `journey-<name>.json` holds every step's latency.
Both become {stem: {seconds: count}}, where the stem is the metric's name within its check
without the statistic: `load.endpoint.list.latency.p95` reads the distribution
`endpoint.list.latency` of check `load`; `e2e.upload_and_fetch.login.latency.p95` reads
`upload_and_fetch.login.latency` of check `e2e`.
"""

from __future__ import annotations

__all__ = ["Distributions", "distribution_stem", "journey_distributions", "load_distributions"]

import json
import re
from collections.abc import Mapping
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from gonogo.verdict.shift import histogram_sample

Sample = dict[float, int]
Distributions = dict[str, Sample]  # stem → seconds → count

_STATISTIC = re.compile(r"\.(p\d+(?:[._]\d+)?|max|min|mean|median)$")  # p99_9 as the load check names it


def distribution_stem(metric_name: str) -> str | None:
    """`endpoint.list.latency.p95` → `endpoint.list.latency`; None for a name with no statistic."""
    match = _STATISTIC.search(metric_name)
    return metric_name[: match.start()] if match else None


def load_distributions(document: bytes) -> Distributions:
    """The distributions of a load check's `load-histograms.json`, in seconds."""
    parsed: Any = json.loads(document)
    found: Distributions = {}

    def add(stem: str, encoded: object) -> None:
        if isinstance(encoded, str):
            histogram = HdrHistogram.decode(encoded.encode("ascii"))
            if histogram.get_total_count():
                found[stem] = {value / 1e6: count for value, count in histogram_sample(histogram).items()}

    def both(prefix: str, figure: str, pair: object) -> None:
        if isinstance(pair, Mapping):
            add(f"{prefix}{figure}", pair.get("corrected"))
            add(f"{prefix}{figure}_uncorrected", pair.get("uncorrected"))

    both("", "latency", parsed.get("overall"))
    for group, prefix in (("endpoints", "endpoint"), ("components", "component")):
        for name, pair in (parsed.get(group) or {}).items():
            both(f"{prefix}.{name}.", "latency", pair)
    for name, pair in (parsed.get("journeys") or {}).items():
        both(f"journey.{name}.", "duration", pair)
    return found


def journey_distributions(document: bytes) -> Distributions:
    """The step latencies and iteration durations of a journeys check's `journey-<name>.json`
    (passed steps and iterations only, as its latency metrics count them)."""
    parsed: Any = json.loads(document)
    name = parsed.get("journey")
    found: Distributions = {}
    if not isinstance(name, str):
        return found

    def add(stem: str, seconds: float) -> None:
        sample = found.setdefault(stem, {})
        sample[seconds] = sample.get(seconds, 0) + 1

    for iteration in parsed.get("results") or []:
        if iteration.get("ok"):
            add(f"{name}.duration", float(iteration["duration"]))
        for step in iteration.get("steps") or []:
            if step.get("ok"):
                add(f"{name}.{step['step']}.latency", float(step["latency"]))
    return found
