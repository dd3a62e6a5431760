"""What the journeys check records, and the evidence each figure points to.

Names are relative to the check (the runner prefixes `<check>.`):

| metric | unit | dimension |
|---|---|---|
| `success_rate` — iterations that completed every step / all iterations | ratio | tests |
| `iterations`, `failures` — over all journeys (a failed iteration is one failure) | count | tests |
| `<journey>.success_rate`, `<journey>.iterations`, `<journey>.failures` | ratio, count | tests |
| `<journey>.duration.p50/p95/p99/max` — whole iteration, successful ones only | seconds | performance |
| `<journey>.<step>.iterations` — iterations that reached the step | count | tests |
| `<journey>.<step>.success_rate` — of those, the ones where the step passed | ratio | tests |
| `<journey>.<step>.latency.p50/p95/p99/max` — passed executions only | seconds | performance |

A step no iteration reached has no `success_rate`; a journey or step with no success has
no latency or duration figures: they are *not measured*, never zero.

Percentiles are exact, by nearest rank over the sorted samples x₁ ≤ … ≤ xₙ:
pP = x⌈P/100·n⌉ (so p50 of 4 samples is the 2nd, p99 of 10 samples is the 10th).

Evidence: each journey's figures point to `journey-<journey>.json` (every iteration, its
steps with status, latency and attempts, and its failure); the overall figures point to
`journey-failures.json` (every failure of every journey). A failure's URL, message and
response excerpt are kept with the iteration's passwords and tokens redacted (its variables
named like a credential, and the Authorization its steps' `auth` sent), see
`gonogo.journey.redact`.
"""

from __future__ import annotations

__all__ = ["Recorder", "metric_names", "percentile"]

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from gonogo.checks.base import ArtifactRef, CheckContext
from gonogo.journey.auth import AuthError, authorization
from gonogo.journey.engine import Failure, IterationResult, JourneyResult
from gonogo.journey.redact import redact, secrets_of
from gonogo.journey.settings import JourneysSettings
from gonogo.journey.variables import VariableError, render
from gonogo.units import Unit

PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))
_Record = Callable[[str, float, Unit, str, "str | None"], None]


def metric_names(settings: JourneysSettings) -> list[str]:
    """Every metric a run of these journeys can record (the table above)."""
    spread = [suffix for suffix, _ in PERCENTILES] + ["max"]
    names = ["success_rate", "iterations", "failures"]
    for journey_name, journey in settings.journeys.items():
        names += [f"{journey_name}.{figure}" for figure in ("success_rate", "iterations", "failures")]
        names += [f"{journey_name}.duration.{suffix}" for suffix in spread]
        for step in journey.steps:
            prefix = f"{journey_name}.{step.name}"
            names += [f"{prefix}.iterations", f"{prefix}.success_rate"]
            names += [f"{prefix}.latency.{suffix}" for suffix in spread]
    return names


def percentile(samples: Sequence[float], rank: float) -> float:
    """The nearest-rank percentile of samples (which need not be sorted); samples non-empty."""
    ordered = sorted(samples)
    index = max(math.ceil(rank / 100.0 * len(ordered)), 1) - 1
    return ordered[index]


class Recorder:
    """Turns journey results into metrics and artifacts, as each journey finishes."""

    def __init__(self, ctx: CheckContext, base_url: str) -> None:
        self._ctx = ctx
        self._base_url = base_url

    def journey(self, result: JourneyResult) -> None:
        name, journey = result.name, result.journey
        artifact = self._ctx.store_artifact(
            _dump(
                {
                    "journey": name,
                    "base_url": self._base_url,
                    "started_at": result.started_at.isoformat(),
                    "ended_at": result.ended_at.isoformat(),
                    "iterations": journey.iterations,
                    "concurrency": journey.concurrency,
                    "steps": [step.name for step in journey.steps],
                    "results": [_iteration(item) for item in result.iterations],
                    "failures": self._failures(result),
                }
            ),
            name=f"journey-{name}.json",
            media_type="application/json",
        )
        source = (
            f"journey {name}: {_count(journey.iterations, 'iteration')} of "
            f"{_count(len(journey.steps), 'step')}, {journey.concurrency} at a time, against {self._base_url}"
        )
        window = (result.started_at, result.ended_at)

        def record(metric: str, value: float, unit: Unit, dimension: str, step: str | None = None) -> None:
            labels = {"journey": name} if step is None else {"journey": name, "step": step}
            self._ctx.record_metric(
                metric,
                value,
                unit,
                dimension=dimension,
                source=source,
                artifact=artifact,
                window=window,
                labels=labels,
            )

        runs = result.iterations
        passed = [item for item in runs if item.ok]
        record(f"{name}.iterations", len(runs), "count", "tests")
        record(f"{name}.failures", len(runs) - len(passed), "count", "tests")
        if runs:
            record(f"{name}.success_rate", len(passed) / len(runs), "ratio", "tests")
        self._spread(record, f"{name}.duration", [item.duration for item in passed])
        for step in journey.steps:
            executions = [s for item in runs for s in item.steps if s.step == step.name]
            prefix = f"{name}.{step.name}"
            record(f"{prefix}.iterations", len(executions), "count", "tests", step.name)
            if executions:
                ok = [s.latency for s in executions if s.ok]
                record(f"{prefix}.success_rate", len(ok) / len(executions), "ratio", "tests", step.name)
                self._spread(record, f"{prefix}.latency", ok, step.name)

    def _failures(self, result: JourneyResult) -> list[dict[str, Any]]:
        """The journey's failures as kept in artifacts: without the failing iteration's secrets."""
        kept = []
        for iteration in result.iterations:
            if iteration.failure is None:
                continue
            secrets = self.secrets(result, iteration)
            failure = asdict(iteration.failure)
            for key in ("url", "message", "response_excerpt"):
                failure[key] = redact(failure[key], secrets)
            kept.append(failure)
        return kept

    def secrets(self, result: JourneyResult, iteration: IterationResult) -> set[str]:
        """The iteration's credentials: its variables named like one, and the Authorization
        headers its steps send (`auth:`, or the header written out)."""
        secrets = secrets_of(iteration.variables, {})

        def fill(text: str) -> str:
            return render(text, iteration.variables, self._ctx.expand)

        for step in result.journey.steps:
            try:
                headers = {fill(key): fill(value) for key, value in step.request.headers.items()}
                if step.request.auth is not None:
                    headers["Authorization"] = authorization(step.request.auth, fill)
            except (AuthError, VariableError, KeyError):
                continue  # a step the iteration did not reach, whose variables are not there
            secrets |= secrets_of({}, headers)
        return secrets

    @staticmethod
    def _spread(record: _Record, metric: str, samples: list[float], step: str | None = None) -> None:
        if not samples:
            return
        for suffix, rank in PERCENTILES:
            record(f"{metric}.{suffix}", percentile(samples, rank), "seconds", "performance", step)
        record(f"{metric}.max", max(samples), "seconds", "performance", step)

    def overall(self, results: list[JourneyResult]) -> ArtifactRef:
        failures: list[Failure] = [failure for result in results for failure in result.failures]
        iterations = sum(len(result.iterations) for result in results)
        artifact = self._ctx.store_artifact(
            _dump(
                {
                    "base_url": self._base_url,
                    "iterations": iterations,
                    "failures": [item for result in results for item in self._failures(result)],
                }
            ),
            name="journey-failures.json",
            media_type="application/json",
        )
        window: tuple[datetime, datetime] | None = None
        if results:
            window = (results[0].started_at, results[-1].ended_at)
        source = f"journeys {', '.join(result.name for result in results)} against {self._base_url}"

        def record(metric: str, value: float, unit: Unit) -> None:
            self._ctx.record_metric(
                metric, value, unit, dimension="tests", source=source, artifact=artifact, window=window
            )

        record("iterations", iterations, "count")
        record("failures", len(failures), "count")
        if iterations:
            record("success_rate", (iterations - len(failures)) / iterations, "ratio")
        return artifact


def _iteration(result: IterationResult) -> dict[str, Any]:
    return {
        "iteration": result.iteration,
        "ok": result.ok,
        "started_at": result.started_at.isoformat(),
        "duration": result.duration,
        "steps": [asdict(step) for step in result.steps],
        "failed_step": result.failure.step if result.failure else None,
    }


def _dump(document: Any) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
