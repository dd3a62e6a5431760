"""The `journeys` check kind: multi-step HTTP user journeys, measured.

A journey that fails is a measurement (its success rate falls), not an error of the
check; the check reports `error` only when it cannot run at all: no base URL, or a file
to upload that is not there.
"""

from __future__ import annotations

__all__ = ["JourneysCheck", "resolve_base_url", "upload_files"]

import asyncio
import os
from pathlib import Path

import httpx

from gonogo.checks.base import CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames
from gonogo.checks.journeys.engine import Engine, JourneyResult
from gonogo.checks.journeys.metrics import Recorder, metric_names
from gonogo.checks.journeys.settings import BodySource, JourneysSettings

DETAILED_FAILURES = 5


class JourneysCheck(CheckKind[JourneysSettings]):
    kind = "journeys"
    series_metrics = frozenset[str]()
    Settings = JourneysSettings

    @classmethod
    def metric_names(cls, settings: JourneysSettings, plan: PlanNames) -> MetricPatterns:
        return metric_names(settings)

    def run(self, settings: JourneysSettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        if problem:
            return CheckOutcome("error", problem)
        assert base_url is not None
        files, missing = upload_files(settings, ctx)
        if missing:
            return CheckOutcome("error", f"{len(missing)} file(s) to upload cannot be read", details=missing)
        recorder = Recorder(ctx, base_url)
        engine = Engine(settings, base_url, files=files, expand=ctx.expand, progress=ctx.progress)
        results = asyncio.run(engine.run(on_journey_done=recorder.journey))
        recorder.overall(results)
        return _outcome(results)


def resolve_base_url(configured: str | None, ctx: CheckContext) -> tuple[str | None, str | None]:
    """(the base URL, None) or (None, why there is none): the check's own, else the plan's."""
    raw = configured or ctx.base_url
    if not raw:
        return None, ("no base URL: set base_url in this check or system.base_url in the plan")
    text = ctx.expand(raw).rstrip("/")
    if not text or "{base_url}" in text:
        return None, (
            f"no base URL: base_url is {raw!r} but the plan has no system.base_url; set one of them"
        )
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as error:
        return None, f"the base URL {text!r} is not a valid URL: {error}"
    if url.scheme not in ("http", "https") or not url.host:
        return None, f"the base URL {text!r} is not an http:// or https:// URL with a host"
    if url.query or url.fragment:
        return None, f"the base URL {text!r} must not have a query or a fragment"
    return text, None


def upload_files(settings: JourneysSettings, ctx: CheckContext) -> tuple[dict[str, Path], list[str]]:
    """Every file the journeys upload (path as written → file), and the ones unreadable."""
    files: dict[str, Path] = {}
    missing: list[str] = []
    for journey_name, journey in settings.journeys.items():
        for step in journey.steps:
            for source in step.request.sources().values():
                if not isinstance(source, BodySource) or source.path is None:
                    continue
                if source.path in files:
                    continue
                path = Path(ctx.expand(source.path)).expanduser()
                if not path.is_absolute():
                    path = ctx.plan_dir / path
                files[source.path] = path
                if not path.is_file() or not os.access(path, os.R_OK):
                    missing.append(
                        f"journey {journey_name}, step {step.name}: {path} "
                        + ("is not readable" if path.is_file() else "does not exist")
                    )
    return files, missing


def _outcome(results: list[JourneyResult]) -> CheckOutcome:
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
    details = [failure.summary() for failure in failures[:DETAILED_FAILURES]]
    if len(failures) > DETAILED_FAILURES:
        details.append(
            f"… and {len(failures) - DETAILED_FAILURES} more (see the journey-failures.json artifact)"
        )
    return CheckOutcome("completed", message, details)
