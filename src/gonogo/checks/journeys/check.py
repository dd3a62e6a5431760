"""The `journeys` check kind: multi-step HTTP user journeys, measured.

A journey that fails is a measurement (its success rate falls), not an error of the
check; the check reports `error` only when it cannot run at all: no base URL, or a file
to upload that is not there.
"""

from __future__ import annotations

__all__ = ["JourneysCheck"]

import asyncio

from gonogo.checks.base import CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames
from gonogo.checks.journeys.metrics import Recorder, metric_names
from gonogo.journey.engine import Engine, JourneyResult
from gonogo.journey.once import resolve_base_url, upload_files
from gonogo.journey.redact import redact
from gonogo.journey.settings import JourneysSettings

DETAILED_FAILURES = 5


class JourneysCheck(CheckKind[JourneysSettings]):
    kind = "journeys"
    series_metrics = frozenset[str]()
    live_metrics = frozenset[str]()  # nothing followed while it runs
    Settings = JourneysSettings

    @classmethod
    def metric_names(cls, settings: JourneysSettings, plan: PlanNames) -> MetricPatterns:
        return metric_names(settings)

    @classmethod
    def most_values(cls, settings: JourneysSettings, metric: str) -> int | None:
        """A journey's duration and each of its steps' latencies get one value per iteration."""
        journey_name, _, rest = metric.partition(".")
        journey = settings.journeys.get(journey_name)
        if journey is None:
            return None
        steps = {step.name for step in journey.steps}
        figure = rest.rsplit(".", 1)[0]
        if figure == "duration" or (figure.endswith(".latency") and figure[: -len(".latency")] in steps):
            return journey.iterations
        return None

    def run(self, settings: JourneysSettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        if problem:
            return CheckOutcome("error", problem)
        assert base_url is not None
        files, missing = upload_files(settings, ctx)
        if missing:
            return CheckOutcome("error", f"{len(missing)} file(s) to upload cannot be read", details=missing)
        recorder = Recorder(ctx, base_url)
        engine = Engine(
            settings, base_url, files=files, expand=ctx.expand, progress=ctx.progress, shapes=True
        )
        results = asyncio.run(engine.run(on_journey_done=recorder.journey))
        recorder.overall(results)
        return _outcome(results, recorder)


def _outcome(results: list[JourneyResult], recorder: Recorder) -> CheckOutcome:
    iterations = sum(len(result.iterations) for result in results)
    failures = [failure for result in results for failure in result.failures]
    passed = iterations - len(failures)
    rate = f" ({passed / iterations:.2%})" if iterations else ""
    message = f"{passed}/{iterations} iterations passed{rate} in {len(results)} journey(s)"
    if failures:
        by_journey = ", ".join(
            f"{result.name}: {len(result.failures)} failed" for result in results if result.failures
        )
        message += f"; {by_journey}"
    # said with the failing iteration's passwords and tokens redacted, as in the artifacts
    details: list[str] = []
    for result in results:
        for failure in result.failures:
            if len(details) < DETAILED_FAILURES:
                iteration = next(it for it in result.iterations if it.iteration == failure.iteration)
                details.append(redact(failure.summary(), recorder.secrets(result, iteration)))
    if len(failures) > DETAILED_FAILURES:
        details.append(
            f"… and {len(failures) - DETAILED_FAILURES} more (see the journey-failures.json artifact)"
        )
    return CheckOutcome("completed", message, details)
