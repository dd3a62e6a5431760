"""The `observability` check kind: does the health endpoint tell the truth when something breaks,
and do the metrics say so?

First the metrics endpoint (when named) is read once at steady state: it must parse as the
Prometheus text format and hold every `require_metrics` name. Then, for each fault in order:

1. *before* — health is read every `poll` for `before`: it must say healthy throughout, or the
   fault is not applied (a health endpoint that says unhealthy when nothing is broken is not
   truthful either).
2. *during* — the fault is applied; health is read until it says unhealthy (at most
   `detect_within`), then for `hold` more. With `expect: healthy` (a dependency the service can do
   without) it is read for `detect_within`, and must say healthy throughout. The metrics endpoint
   is read every round too: the error counters' rise is summed over the fault.
3. removal — always, also after an error or Ctrl-C.
4. *recovery* — health is read until it has said healthy for `sustain`, at most `recover_within`.

Every answer (time, status, body snippet, verdict) and every metrics reading is kept in one
artifact per fault, `<check>-<fault>-timeline.json`, so a NO-GO can be traced to what the
endpoints said. Figures: docs/metrics.md; the user's guide: docs/observability.md.
"""

from __future__ import annotations

__all__ = ["ObservabilityCheck"]

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from gonogo.checks.base import (
    ArtifactRef,
    CheckContext,
    CheckKind,
    CheckOutcome,
    MetricPatterns,
    PlanNames,
    Reference,
)
from gonogo.checks.observability.endpoints import HealthAnswer, MetricsReader, Scrape, read_health, rise
from gonogo.checks.observability.settings import FaultCase, MetricSelector, ObservabilitySettings
from gonogo.experiment.faults import FaultEnvironment, apply_fault, describe_fault, expand_fault
from gonogo.experiment.references import fault_references
from gonogo.experiment.settings import KillFault, RestartFault
from gonogo.experiment.traffic import BackgroundTraffic, start_background_traffic
from gonogo.experiment.wall import Wall
from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported
from gonogo.journey.once import resolve_base_url, run_setup
from gonogo.units import Unit, format_value

_DIMENSION = "operations"
# A lasting fault is told truthfully when at least this share of the health answers from the first
# unhealthy one until its removal say unhealthy (one healthy answer in a flapping moment is forgiven).
HELD_UNHEALTHY = 0.9


class ObservabilityCheck(CheckKind[ObservabilitySettings]):
    kind = "observability"
    Settings = ObservabilitySettings
    series_metrics = frozenset[str]()
    live_metrics = frozenset[str]()  # nothing followed while it runs

    @classmethod
    def metric_names(cls, settings: ObservabilitySettings, plan: PlanNames) -> MetricPatterns:
        names = ["health.truthful"]
        if settings.metrics is not None:
            names += ["metrics.parses", "metrics.missing"]
        for index, case in enumerate(settings.faults):
            name = settings.fault_name(index)
            names += [f"{name}.{figure}" for figure in ("healthy_before", "fault_applied", "recovered")]
            names += [f"{name}.time_to_recover"]
            if case.expect == "unhealthy":
                names += [f"{name}.detected", f"{name}.time_to_detect", f"{name}.unhealthy_during"]
            else:
                names += [f"{name}.healthy_during"]
            if settings.counters_of(index):
                names += [f"{name}.error_counter_rise"]
        return names

    @classmethod
    def default_gates(cls, settings: ObservabilitySettings) -> Mapping[str, str | Mapping[str, object]]:
        gates: dict[str, str | Mapping[str, object]] = {"health.truthful": "== 100%"}
        if settings.metrics is not None:
            gates |= {"metrics.parses": "== 1", "metrics.missing": "== 0"}
        for index in range(len(settings.faults)):
            if settings.counters_of(index):
                gates[f"{settings.fault_name(index)}.error_counter_rise"] = "> 0"
        return gates

    @classmethod
    def references(cls, settings: ObservabilitySettings) -> list[Reference]:
        return [
            reference
            for index, case in enumerate(settings.faults)
            for reference in fault_references(case.fault, ("faults", index, "fault"))
        ]

    def run(self, settings: ObservabilitySettings, ctx: CheckContext) -> CheckOutcome:
        return _Observation(settings, ctx).run()


@dataclass
class _FaultTimeline:
    """One fault's moments (time.monotonic()), and everything the endpoints said meanwhile."""

    index: int
    name: str
    case: FaultCase
    counters: list[MetricSelector]
    description: str = ""
    healthy_before: bool = False
    active: ActiveFault | None = None
    applied: bool = False
    problem: str | None = None  # why it was not applied
    removal_problem: str | None = None
    injected: float | None = None
    detected: float | None = None  # when health first answered unhealthy
    removed: float | None = None
    recovered: float | None = None  # start of the healthy streak that lasted `sustain`
    answers: list[tuple[str, HealthAnswer]] = field(default_factory=list)  # (phase, answer)
    scrapes: list[tuple[str, Scrape]] = field(default_factory=list)

    def phase(self, name: str) -> list[HealthAnswer]:
        return [answer for phase, answer in self.answers if phase == name]

    @property
    def instant(self) -> bool:
        """A kill or a restart is over once applied: recovery counts from the fault itself."""
        fault = self.case.fault
        return isinstance(fault, RestartFault) or (isinstance(fault, KillFault) and fault.repeat == 1)

    def time_to_recover(self) -> float | None:
        if self.recovered is None or self.injected is None or self.removed is None:
            return None
        since = self.injected if self.instant else self.removed
        return max(0.0, self.recovered - since)

    def healthy_during(self) -> float | None:
        during = self.phase("during")
        return sum(a.verdict == "healthy" for a in during) / len(during) if during else None

    def unhealthy_after_detection(self) -> float | None:
        """Of the answers from the first unhealthy one until the fault was removed, the share that
        said unhealthy: a health endpoint that says so once, then healthy again while its
        dependency is still down, is not truthful. None for a kill or a restart (over at once)."""
        if self.detected is None or self.instant:
            return None
        after = [a for a in self.phase("during") if a.at + a.latency >= self.detected]
        return sum(a.verdict != "healthy" for a in after) / len(after) if after else None

    def error_counter_rise(self) -> float | None:
        """Sum of the counters' rises from the last reading before the fault to the last during
        it; None when fewer than two readings could be parsed."""
        before = [s for phase, s in self.scrapes if phase == "before" and s.parsed][-1:]
        readings = before + [s for phase, s in self.scrapes if phase == "during"]
        if sum(s.parsed for s in readings) < 2:
            return None
        return sum(rise([s.total(selector) for s in readings]) for selector in self.counters)

    def truthful(self) -> bool:
        if not (self.healthy_before and self.applied and self.recovered is not None):
            return False
        if self.case.expect == "unhealthy":
            held = self.unhealthy_after_detection()
            return self.detected is not None and (held is None or held >= HELD_UNHEALTHY)
        return self.healthy_during() == 1.0


class _Observation:
    def __init__(self, settings: ObservabilitySettings, ctx: CheckContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.client = httpx.Client(
            trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.health_url = ""
        self.metrics: MetricsReader | None = None
        self.traffic: BackgroundTraffic | None = None
        self.wall = Wall(time.monotonic())
        self.details: list[str] = []

    def run(self) -> CheckOutcome:
        try:
            problem = self._prepare()
            if problem:
                return CheckOutcome("error", problem)
            if self.metrics is not None:
                self._steady_metrics(self.metrics)
            timelines = [self._fault(index) for index in range(len(self.settings.faults))]
        finally:
            self._stop_traffic()
            self.client.close()
        truthful = sum(t.truthful() for t in timelines)
        self.ctx.record_metric(
            "health.truthful",
            truthful / len(timelines),
            "ratio",
            dimension=_DIMENSION,
            source=f"faults after which {self.health_url} told the truth (the *-timeline.json artifacts)",
        )
        return self._outcome(timelines)

    # -- setting up ------------------------------------------------------------------

    def _prepare(self) -> str | None:
        settings = self.settings
        base_url, no_base = resolve_base_url(settings.base_url, self.ctx)
        health, problem = _url(settings.health, base_url, no_base, self.ctx, "health")
        if problem:
            return problem
        self.health_url = health
        if settings.metrics is not None:
            metrics, problem = _url(settings.metrics, base_url, no_base, self.ctx, "metrics")
            if problem:
                return problem
            self.metrics = MetricsReader(self.client, metrics, settings.timeout)
        load = settings.load
        if load is None:
            return None
        if base_url is None:
            return f"the background load needs a base URL: {no_base}"
        variables: dict[str, Any] = {}
        if load.setup is not None:
            variables, problem = run_setup(load.setup, load.request_timeout, base_url, self.ctx)
            if problem:
                return problem
        # The steady state is read with traffic already flowing (its counters already counting).
        traffic = start_background_traffic(load, base_url, variables, self.ctx, self._longest())
        if isinstance(traffic, str):
            return traffic
        self.traffic = traffic
        return None

    def _longest(self) -> float:
        """An upper bound of the check's duration, for the background load's own end."""
        s = self.settings
        rounds = sum(
            s.before + case.detect_within + case.hold + case.recover_within + s.sustain for case in s.faults
        )
        return rounds * (1 + s.timeout / s.poll) + 60  # every read may take its whole timeout

    def _stop_traffic(self) -> None:
        if self.traffic is None:
            return
        try:
            self.traffic.stop()
        except RuntimeError as error:
            self.details.append(str(error))

    # -- the steady state's metrics ------------------------------------------------------

    def _steady_metrics(self, reader: MetricsReader) -> None:
        scrape = reader.scrape()
        check = self.ctx.check_name
        evidence = self.ctx.store_artifact(
            scrape.text or (scrape.problem or "").encode(),
            name=f"{check}-metrics.txt",
            media_type="text/plain",
        )
        source = (
            f"{check}-metrics.txt: the metrics endpoint at steady state, read by prometheus_client's parser"
        )
        self._metric("metrics.parses", 1.0 if scrape.parsed else 0.0, "number", source, evidence)
        missing = [str(s) for s in self.settings.require_metrics if not scrape.present(s)]
        self._metric("metrics.missing", len(missing), "count", source, evidence)
        if not scrape.parsed:
            self.details.append(f"metrics endpoint: {scrape.problem}")
        if missing:
            self.details.append(f"metrics missing: {', '.join(missing)}")
        self.ctx.progress(
            f"metrics: {'parsed' if scrape.parsed else scrape.problem}"
            + (f"; missing {', '.join(missing)}" if missing else "")
        )

    # -- one fault -----------------------------------------------------------------------

    def _fault(self, index: int) -> _FaultTimeline:
        settings = self.settings
        case = settings.faults[index]
        t = _FaultTimeline(index, settings.fault_name(index), case, settings.counters_of(index))
        t.description = describe_fault(expand_fault(case.fault, self.ctx.expand))
        try:
            try:
                t.healthy_before = self._observe(t, "before", settings.before)
                if t.healthy_before:
                    self._inject(t)
                    if t.active is not None and t.active.applied:
                        self._during(t)
            finally:
                self._remove(t)
            if t.applied:
                self._recover(t)
        except BaseException:  # Ctrl-C, the check's timeout: keep what this fault's endpoints said
            with contextlib.suppress(Exception):
                self._store_timeline(t)
            raise
        self._record(t)
        return t

    def _observe(self, t: _FaultTimeline, phase: str, seconds: float) -> bool:
        """Read the endpoints every `poll` for `seconds` (at least once); True if health said healthy
        every time."""
        end = time.monotonic() + seconds
        healthy = True
        while True:
            answer = self._round(t, phase)
            healthy = healthy and answer.verdict == "healthy"
            if not self._wait(answer, end):
                return healthy

    def _wait(self, answer: HealthAnswer, end: float) -> bool:
        """Sleep until the next round; False when `end` has come."""
        now = time.monotonic()
        if now >= end:
            return False
        time.sleep(max(0.0, min(answer.at + self.settings.poll, end) - now))
        return True

    def _round(self, t: _FaultTimeline, phase: str) -> HealthAnswer:
        answer = read_health(self.client, self.health_url, self.settings)
        t.answers.append((phase, answer))
        if self.metrics is not None and t.counters:
            t.scrapes.append((phase, self.metrics.scrape()))
        said = f"{answer.status}" if answer.status is not None else answer.why
        self.ctx.progress(f"{t.name}: {phase}: health {answer.verdict} ({said})")
        return answer

    def _inject(self, t: _FaultTimeline) -> None:
        case = t.case
        env = FaultEnvironment(
            targets=self.ctx.fault_targets,
            expand=self.ctx.expand,
            work_dir=self.ctx.work_dir,
            fault_window=case.detect_within + case.hold,
            name=f"{self.ctx.check_name}-{t.index}",
            by=f"observability check {self.ctx.check_name}",
        )
        self.ctx.progress(f"{t.name}: injecting {t.description}")
        t.injected = time.monotonic()
        try:
            t.active = apply_fault(expand_fault(case.fault, self.ctx.expand), env)
        except FaultNotSupported as error:
            t.problem = f"not supported here: {error}"
        except FaultError as error:
            t.problem = f"could not be applied: {error}"
        else:
            if not t.active.applied:
                t.problem = f"was not applied: {t.active.detail}"

    def _during(self, t: _FaultTimeline) -> None:
        assert t.injected is not None
        case = t.case
        if case.expect == "healthy":
            self._observe(t, "during", case.detect_within)
            return
        deadline = t.injected + case.detect_within
        while True:
            answer = self._round(t, "during")
            if answer.verdict == "unhealthy":
                t.detected = answer.at + answer.latency  # when it said so
                break
            if not self._wait(answer, deadline):
                return
        if case.hold > 0:
            time.sleep(min(self.settings.poll, case.hold))
            self._observe(t, "during", max(0.0, case.hold - self.settings.poll))

    def _remove(self, t: _FaultTimeline) -> None:
        if t.active is None:
            return
        t.removed = time.monotonic()
        try:
            t.active.remove()
        except Exception as error:  # the next faults still run; the removal's failure is reported
            t.removal_problem = str(error)
        # Some faults are verified by what they did, known once removed (a toxic that never acted).
        t.applied = t.active.applied and t.problem is None
        if not t.active.applied and t.problem is None:
            t.problem = f"was not applied: {t.active.detail}"

    def _recover(self, t: _FaultTimeline) -> None:
        assert t.removed is not None
        deadline = t.removed + t.case.recover_within
        sustain = self.settings.sustain
        # A streak that began during the fault (a killed service already back) counts from its start.
        streak: float | None = None
        for answer in t.phase("during") if t.instant else []:  # a lasting fault recovers once removed
            streak = (streak or answer.at) if answer.verdict == "healthy" else None
        while True:
            answer = self._round(t, "recovery")
            streak = (streak or answer.at) if answer.verdict == "healthy" else None
            now = time.monotonic()
            if streak is not None and now - max(streak, t.removed) >= sustain:
                t.recovered = streak
                return
            if not self._wait(answer, deadline):
                return

    # -- figures -------------------------------------------------------------------------

    def _metric(self, name: str, value: float, unit: Unit, source: str, artifact: ArtifactRef) -> None:
        self.ctx.record_metric(name, value, unit, dimension=_DIMENSION, source=source, artifact=artifact)

    def _store_timeline(self, t: _FaultTimeline) -> ArtifactRef:
        return self.ctx.store_artifact(
            json.dumps(self._timeline_evidence(t), indent=2).encode(),
            name=f"{self.ctx.check_name}-{t.name}-timeline.json",
            media_type="application/json",
        )

    def _record(self, t: _FaultTimeline) -> None:
        evidence = self._store_timeline(t)
        every = format_value(self.settings.poll, "seconds")
        source = f"{self.ctx.check_name}-{t.name}-timeline.json: {self.health_url} read every {every}"
        name = t.name
        self._metric(f"{name}.healthy_before", 1.0 if t.healthy_before else 0.0, "number", source, evidence)
        if t.injected is None:
            return
        self._metric(f"{name}.fault_applied", 1.0 if t.applied else 0.0, "number", source, evidence)
        if not t.applied:
            return
        if t.case.expect == "unhealthy":
            self._metric(
                f"{name}.detected", 1.0 if t.detected is not None else 0.0, "number", source, evidence
            )
            if t.detected is not None:
                self._metric(f"{name}.time_to_detect", t.detected - t.injected, "seconds", source, evidence)
            if (held := t.unhealthy_after_detection()) is not None:
                self._metric(f"{name}.unhealthy_during", held, "ratio", source, evidence)
        elif (share := t.healthy_during()) is not None:
            self._metric(f"{name}.healthy_during", share, "ratio", source, evidence)
        self._metric(f"{name}.recovered", 1.0 if t.recovered is not None else 0.0, "number", source, evidence)
        if (recovery := t.time_to_recover()) is not None:
            self._metric(f"{name}.time_to_recover", recovery, "seconds", source, evidence)
        if t.counters and (increase := t.error_counter_rise()) is not None:
            counters = ", ".join(map(str, t.counters))
            self._metric(
                f"{name}.error_counter_rise",
                increase,
                "count",
                f"{self.ctx.check_name}-{t.name}-timeline.json: {counters} at the metrics endpoint, "
                "from the last reading before the fault to the last during it",
                evidence,
            )

    def _timeline_evidence(self, t: _FaultTimeline) -> dict[str, Any]:
        def at(moment: float | None) -> str | None:
            return self.wall(moment).isoformat() if moment is not None else None

        def since(moment: float) -> float | None:
            return round(moment - t.injected, 3) if t.injected is not None else None

        active = t.active
        return {
            "fault": t.name,
            "description": t.description,
            "expect": t.case.expect,
            "health": self.health_url,
            "applied": t.applied,
            "problem": t.problem,
            "detail": active.detail if active is not None else None,
            "evidence": active.evidence if active is not None else None,
            "removal_problem": t.removal_problem,
            "moments": {
                "injected": at(t.injected),
                "detected": at(t.detected),
                "removed": at(t.removed),
                "recovered": at(t.recovered),
            },
            "truthful": t.truthful(),
            "health_answers": [
                {
                    "phase": phase,
                    "at": at(a.at),
                    "since_fault": since(a.at),
                    "verdict": a.verdict,
                    "status": a.status,
                    "why": a.why,
                    "body": a.body,
                    "latency": round(a.latency, 4),
                }
                for phase, a in t.answers
            ],
            "metrics_readings": [
                {"phase": phase, "at": at(s.at), "since_fault": since(s.at), **s.summary(t.counters)}
                for phase, s in t.scrapes
            ],
        }

    # -- what the check says ---------------------------------------------------------------

    def _outcome(self, timelines: list[_FaultTimeline]) -> CheckOutcome:
        parts = [f"health truthful after {sum(t.truthful() for t in timelines)} of {len(timelines)} faults"]
        details = list(self.details)
        for t in timelines:
            parts.append(self._summary(t))
            if t.removal_problem:
                details.append(f"{t.name}: the fault's removal failed: {t.removal_problem}")
        not_applied = [t for t in timelines if t.healthy_before and not t.applied]
        if not_applied:
            return CheckOutcome(
                "error",
                "; ".join(f"{t.name}: {t.description}: {t.problem}" for t in not_applied),
                parts[1:] + details,
            )
        return CheckOutcome("completed", "; ".join(parts), details)

    def _summary(self, t: _FaultTimeline) -> str:
        def last(phase: str) -> str:
            answers = t.phase(phase)
            if not answers:
                return "no answer"
            a = answers[-1]
            return f"{a.status} {a.body!r}" if a.status is not None else a.why

        if not t.healthy_before:
            before = last("before")
            return f"{t.name}: health did not say healthy before the fault (last: {before}): not applied"
        if not t.applied:
            return f"{t.name}: {t.description}: {t.problem}"
        if t.case.expect == "unhealthy":
            if t.detected is not None and t.injected is not None:
                said = f"unhealthy {format_value(t.detected - t.injected, 'seconds')} after {t.description}"
                held = t.unhealthy_after_detection()
                if held is not None and held < HELD_UNHEALTHY:
                    said += (
                        f", then healthy again while it lasted ({format_value(1 - held, 'ratio')} of answers)"
                    )
            else:
                window = format_value(t.case.detect_within, "seconds")
                said = f"health still not unhealthy {window} after {t.description} (last: {last('during')})"
        else:
            share = t.healthy_during()
            said = f"healthy in {format_value(share or 0.0, 'ratio')} of answers during {t.description}"
        recovery = t.time_to_recover()
        if recovery is not None:
            since = "the fault" if t.instant else "its removal"
            said += f", healthy again {format_value(recovery, 'seconds')} after {since}"
        else:
            within = format_value(t.case.recover_within, "seconds")
            said += f", not healthy again within {within} of its removal (last: {last('recovery')})"
        if t.counters and (increase := t.error_counter_rise()) is not None:
            said += f", error counters rose by {increase:g}"
        return f"{t.name}: {said}"


def _url(
    target: str, base_url: str | None, no_base: str | None, ctx: CheckContext, field_name: str
) -> tuple[str, str | None]:
    """`target` as a URL: a path joined to the base URL, or the URL with the run's values."""
    if target.startswith("/"):
        if base_url is None:
            return "", f"{field_name} is the path {target}, which needs a base URL: {no_base}"
        return base_url + target, None
    return ctx.expand(target), None
