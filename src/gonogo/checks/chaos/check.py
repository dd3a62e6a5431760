"""The `chaos` check kind: one experiment under background load, measured for its users.

Phases (every one checks the steady-state hypothesis each `hypothesis.interval`):

1. *before* — background load and integrity writes start; the hypothesis must hold
   throughout, or no fault is injected (the system was not steady to begin with).
2. *during* — every fault is applied and verified, one after the other (a restart: until the
   service is ready again) unless `concurrent_faults`; then the fault window lasts `duration`.
3. rollback — every fault is removed; this also runs when anything fails or on Ctrl-C.
4. *recovery* — until the hypothesis has held for `recovery.sustain` without a break, at
   most `recovery.timeout`, and until the background load has answered for `sustain` only
   requests sent after the removal. Those last seconds are the *after* window.
5. kill moments — with integrity writes and a kill fault, once recovered and with the load
   and writes stopped: bursts of writes each followed by a kill at a chosen offset
   (moments.py), where mixed traffic would have hidden a loss.
6. integrity — every acknowledged write is read back.

Figures (docs/metrics.md): availability (during, overall), error_rate / latency p95, p99
(before, during, after), time_to_detect, time_to_recover, fault_applied, recovered, and the
integrity counts. A fault that could not be applied, or is not supported on this machine,
makes the check an error: not measured is never a pass.
"""

from __future__ import annotations

__all__ = ["ChaosCheck"]

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gonogo.checks.base import (
    ArtifactRef,
    CheckContext,
    CheckKind,
    CheckOutcome,
    MetricPatterns,
    PlanNames,
    Reference,
)
from gonogo.checks.chaos.moments import MomentRecord, try_kill_moments
from gonogo.checks.chaos.settings import ChaosSettings
from gonogo.experiment.faults import FaultEnvironment, apply_fault, describe_fault, expand_fault
from gonogo.experiment.integrity import IntegrityReport, IntegrityWriter
from gonogo.experiment.probes import HypothesisChecker, Round
from gonogo.experiment.references import fault_references
from gonogo.experiment.settings import (
    KillFault,
    RestartFault,
)
from gonogo.experiment.traffic import BackgroundTraffic, WindowFigures, start_background_traffic
from gonogo.experiment.wall import Wall
from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported
from gonogo.journey.once import resolve_base_url, run_setup, upload_files
from gonogo.units import Unit, format_value

_DIMENSION = "reliability"


@dataclass
class Timeline:
    """The experiment's moments, on time.monotonic(), and every probe round."""

    started: float = 0.0
    injected: float | None = None
    removed: float | None = None
    recovered: float | None = None  # start of the sustained period in which the hypothesis held
    ended: float = 0.0
    rounds: list[tuple[str, Round]] = field(default_factory=list)  # (phase, round)

    def first_failure(self, after: float) -> float | None:
        return next((r.at for _, r in self.rounds if r.at >= after and not r.ok), None)

    def time_to_recover(self, instant: bool) -> tuple[float, str] | None:
        """Seconds from the fault to the start of the sustained period in which the hypothesis
        held again, and what they count from: "the fault" (its injection) for a kill or a
        restart (`instant`), and for a lasting fault the system came back under; "its removal"
        for a lasting fault it came back from only once removed. (0, "") when the hypothesis
        never broke; None when it never recovered."""
        if self.recovered is None or self.injected is None:
            return None
        if self.first_failure(self.injected) is None:
            return 0.0, ""
        if instant or self.removed is None or self.recovered < self.removed:
            return max(0.0, self.recovered - self.injected), "the fault"
        return self.recovered - self.removed, "its removal"


class ChaosCheck(CheckKind[ChaosSettings]):
    kind = "chaos"
    series_metrics = frozenset({"availability"})
    live_metrics = frozenset[str]()  # nothing followed while it runs
    Settings = ChaosSettings

    @classmethod
    def metric_names(cls, settings: ChaosSettings, plan: PlanNames) -> MetricPatterns:
        names = [*_EXPERIMENT_FIGURES, *(f"service.{name}.time_to_ready" for name in _restarted(settings))]
        for name in _process_killed(settings):
            names += [f"service.{name}.process.replaced", f"service.{name}.process.time_to_replace"]
        if settings.load is not None:
            names += [*_TRAFFIC_FIGURES, *(f"{figure}.{w}" for figure in _WINDOW_FIGURES for w in _WINDOWS)]
        if settings.integrity is not None:
            names += [f"integrity.{name}" for name in _INTEGRITY_FIGURES]
            names += ["integrity.stuck"] if settings.integrity.settled is not None else []
        if settings.moments is not None:
            names += ["integrity.moments"]
            names += [
                f"integrity.moment.{label}.{n}" for label in settings.moments.labels for n in _MOMENT_FIGURES
            ]
        return names

    @classmethod
    def default_gates(cls, settings: ChaosSettings) -> dict[str, str]:
        """An experiment the plan gates nothing of must have run as planned, and the system
        must have recovered without losing what it acknowledged."""
        gates = {
            "hypothesis.before": "== 1",
            "fault_applied": "== 1",
            "rollback.clean": "== 1",
            "recovered": "== 1",
        }
        if settings.integrity is not None:
            gates |= {f"integrity.{name}": "== 0" for name in ("lost", "corrupted", "duplicated")}
            if settings.integrity.settled is not None:
                gates["integrity.stuck"] = "== 0"
        if settings.moments is not None:
            gates["integrity.moments"] = f"== {len(settings.moments.labels)}"
        return gates

    @classmethod
    def references(cls, settings: ChaosSettings) -> list[Reference]:
        return [
            reference
            for index, fault in enumerate(settings.faults)
            for reference in fault_references(fault, ("faults", index))
        ]

    def run(self, settings: ChaosSettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        if problem and (settings.load is not None or settings.integrity is not None):
            return CheckOutcome("error", problem)
        return _Experiment(settings, ctx, base_url).run()


_EXPERIMENT_FIGURES = (
    "hypothesis.before",
    "fault_applied",
    "rollback.clean",
    "hypothesis.during.failed_rounds",
    "recovered",
    "time_to_detect",
    "time_to_recover",
)
_TRAFFIC_FIGURES = ("availability.during", "availability.overall", "requests")
_WINDOW_FIGURES = ("requests", "error_rate", "latency.p95", "latency.p99")
_WINDOWS = ("before", "during", "after")
_INTEGRITY_FIGURES = ("attempted", "acknowledged", "lost", "corrupted", "duplicated")
_MOMENT_FIGURES = ("acknowledged", "lost")


def _restarted(settings: ChaosSettings) -> set[str]:
    """The services a fault kills whole or restarts: each gets a `time_to_ready`."""
    names = {f.kill for f in settings.faults if isinstance(f, KillFault) and f.process is None}
    return names | {f.restart for f in settings.faults if isinstance(f, RestartFault)}


def _process_killed(settings: ChaosSettings) -> set[str]:
    """The services one process of which a fault kills: each gets `process.replaced`."""
    return {f.kill for f in settings.faults if isinstance(f, KillFault) and f.process is not None}


class _Experiment:
    def __init__(self, settings: ChaosSettings, ctx: CheckContext, base_url: str | None) -> None:
        self.settings = settings
        self.ctx = ctx
        self.base_url = base_url
        self.timeline = Timeline()
        self.faults: list[ActiveFault] = []
        self.rollback_problems: list[str] = []
        self.traffic: BackgroundTraffic | None = None
        self.writer: IntegrityWriter | None = None
        self.moments: list[MomentRecord] = []
        self.moments_not_tried: str | None = None

    # -- the experiment -------------------------------------------------------------

    def run(self) -> CheckOutcome:
        variables, problem = self._setup()
        if problem:
            return CheckOutcome("error", problem)
        checker = HypothesisChecker(
            self.settings.hypothesis,
            base_url=self.base_url,
            cwd=self.ctx.plan_dir,
            expand=self.ctx.expand,
            variables=variables,
            load_window=lambda seconds: self.traffic.recent(seconds) if self.traffic else None,
        )
        not_applied: str | None = None
        steady_before = False
        interrupted: BaseException | None = None
        try:
            problem = self._start_traffic(variables)
            if problem:
                return CheckOutcome("error", problem)
            self.timeline.started = time.monotonic()
            steady_before = self._observe(checker, "before", self.settings.before)
            if not steady_before:
                not_applied = (
                    "the steady-state hypothesis did not hold before the fault, so none was injected"
                )
            else:
                not_applied = self._inject(checker)
                if not_applied is None:
                    self._observe(checker, "during", self.settings.duration)
            self._rollback()
            if steady_before and not_applied is None:
                self._recover(checker)
        except BaseException as interrupt:  # Ctrl-C, the check's timeout, a bug: roll back, keep figures
            interrupted = interrupt
        finally:
            self._rollback()  # again, idempotent: after an error or Ctrl-C above
            checker.close()
            self.timeline.ended = time.monotonic()
            self._stop_traffic()
        if interrupted is None:
            try:
                self._kill_moments(applied=steady_before and not_applied is None)
            except BaseException as interrupt:  # as above: the figures of the experiment are kept
                interrupted = interrupt
        if interrupted is not None:
            # Keep what was measured (the figures, what each fault did and how it was removed),
            # but do not make the user wait for the read-back of every write.
            with contextlib.suppress(Exception):
                self._record(steady_before, None, None)
            raise interrupted
        integrity = self._verify_integrity()
        return self._record(steady_before, not_applied, integrity)

    def _setup(self) -> tuple[dict[str, Any], str | None]:
        load = self.settings.load
        if load is None or load.setup is None or self.base_url is None:
            return {}, None
        return run_setup(load.setup, load.request_timeout, self.base_url, self.ctx)

    def _start_traffic(self, variables: dict[str, Any]) -> str | None:
        load = self.settings.load
        if load is not None:
            assert self.base_url is not None
            traffic = start_background_traffic(load, self.base_url, variables, self.ctx, self._longest())
            if isinstance(traffic, str):
                return traffic
            self.traffic = traffic
        integrity = self.settings.integrity
        journeys = self.settings.integrity_journeys
        if integrity is not None and journeys is not None:
            assert self.base_url is not None
            files, missing = upload_files(journeys, self.ctx)
            if missing:
                return "the integrity writes cannot run: " + "; ".join(missing)
            self.writer = IntegrityWriter(
                integrity, journeys, self.base_url, files=files, expand=self.ctx.expand, variables=variables
            )
            self.writer.start()
        return None

    def _longest(self) -> float:
        s = self.settings
        return s.before + s.duration + s.recovery.timeout + s.recovery.sustain + 30

    def _observe(self, checker: HypothesisChecker, phase: str, seconds: float) -> bool:
        """Check the hypothesis every interval for `seconds` (at least once); True if it always held."""
        end = time.monotonic() + seconds
        held = True
        while True:
            round_ = checker.check()
            self.timeline.rounds.append((phase, round_))
            held = held and round_.ok
            self._progress(phase, round_, end)
            if time.monotonic() >= end:
                return held
            time.sleep(max(0.0, min(self.settings.hypothesis.interval, end - time.monotonic())))

    def _inject(self, checker: HypothesisChecker) -> str | None:
        """Apply every fault, in the order listed, each once the one before has taken effect
        (a restart: the service is ready again) unless the plan says `concurrent_faults`; the
        hypothesis is checked meanwhile. Why the experiment cannot go on, if a fault could not
        be applied."""
        self.timeline.injected = time.monotonic()
        for index, planned in enumerate(self.settings.faults):
            if self.faults and not self.settings.concurrent_faults:
                self._await_settled(checker, self.faults[-1])
            fault = expand_fault(planned, self.ctx.expand)
            env = FaultEnvironment(
                targets=self.ctx.fault_targets,
                expand=self.ctx.expand,
                work_dir=self.ctx.work_dir,
                fault_window=self.settings.duration,
                name=f"{self.ctx.check_name}-{index}",
                by=f"experiment {self.ctx.check_name}",
            )
            self.ctx.progress(f"injecting: {describe_fault(fault)}")
            try:
                active = apply_fault(fault, env)
            except FaultNotSupported as error:
                return f"not supported here: {describe_fault(fault)}: {error}"
            except FaultError as error:
                return f"could not apply {describe_fault(fault)}: {error}"
            self.faults.append(active)
            if not active.applied:
                return f"{describe_fault(fault)} was not applied: {active.detail}"
        return None

    def _await_settled(self, checker: HypothesisChecker, fault: ActiveFault) -> None:
        """Check the hypothesis (phase *during*) until `fault` has taken effect, at most
        `recovery.timeout`: a restart that never comes back does not hold the rest forever."""
        end = time.monotonic() + self.settings.recovery.timeout
        while fault.settling() and time.monotonic() < end:
            round_ = checker.check()
            self.timeline.rounds.append(("during", round_))
            self._progress("during", round_, end, waiting=fault.description)
            next_round = time.monotonic() + self.settings.hypothesis.interval
            while fault.settling() and time.monotonic() < min(next_round, end):
                time.sleep(0.05)

    def _rollback(self) -> None:
        if self.timeline.injected is not None and self.timeline.removed is None:
            self.timeline.removed = time.monotonic()
        for fault in reversed(self.faults):
            try:
                fault.remove()
            except Exception as error:  # one rollback failing must not keep the others from running
                self.rollback_problems.append(f"{fault.description}: {error}")

    def _recover(self, checker: HypothesisChecker) -> None:
        recovery = self.settings.recovery
        deadline = time.monotonic() + recovery.timeout
        # A hypothesis that already holds again at the end of the fault window counts from then.
        holding_since: float | None = None
        for phase, round_ in self.timeline.rounds:
            if phase == "during":
                holding_since = (holding_since or round_.at) if round_.ok else None
        while True:
            round_ = checker.check()
            self.timeline.rounds.append(("after", round_))
            holding_since = (holding_since or round_.at) if round_.ok else None
            now = time.monotonic()
            # It must hold for `sustain` after the removal too: those seconds are the after window,
            # which the background load fills once the requests sent during the fault are answered.
            removed = self.timeline.removed or now
            if holding_since is not None and now - max(holding_since, removed) >= recovery.sustain:
                clean = self.traffic.answered_after(removed) if self.traffic is not None else removed
                if (clean is not None and now - clean >= recovery.sustain) or now >= deadline:
                    self.timeline.recovered = holding_since
                    return
            if now >= deadline:
                return
            self._progress("recovery", round_, deadline)
            time.sleep(max(0.0, min(self.settings.hypothesis.interval, deadline - now)))

    def _progress(self, phase: str, round_: Round, end: float, waiting: str = "") -> None:
        left = max(0.0, end - time.monotonic())
        # While waiting for a fault to take effect, `end` is only a bound: not a time left.
        when = f"{phase}, until {waiting} is done" if waiting else f"{phase} ({left:.0f}s left)"
        state = "hypothesis holds" if round_.ok else f"hypothesis broken: {round_.failures()}"
        load = ""
        if self.traffic is not None and (snap := self.traffic.latest()) is not None:
            load = f"; load {snap.rps:.0f} responses/s, {snap.errors} errors"
        writes = f"; {self.writer.acknowledged} writes acknowledged" if self.writer else ""
        self.ctx.progress(f"{when}: {state}{load}{writes}")

    def _stop_traffic(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.traffic is not None:
            self.traffic.stop()

    def _kill_moments(self, applied: bool) -> None:
        """Bursts of writes, each followed by a kill (moments.py), once the system has recovered
        and the load and steady writes are stopped."""
        moments = self.settings.moments
        services = self.ctx.fault_targets.services
        if moments is None or self.writer is None:
            return
        if not applied or services is None:
            self.moments_not_tried = "the experiment did not get as far as its fault"
            return
        if self.timeline.recovered is None:
            self.moments_not_tried = "the system did not recover from the experiment's fault"
            return
        try_kill_moments(
            moments,
            targets=self.settings.kill_targets,
            writer=self.writer,
            services=services,
            by=f"experiment {self.ctx.check_name}",
            ready_timeout=self.settings.recovery.timeout,
            progress=self.ctx.progress,
            records=self.moments,
        )

    def _verify_integrity(self) -> IntegrityReport | None:
        if self.writer is None:
            return None
        self.ctx.progress(f"reading back {self.writer.acknowledged} acknowledged writes")
        return self.writer.verify()

    # -- figures --------------------------------------------------------------------

    def _metric(self, name: str, value: float | None, unit: Unit, source: str, **extra: Any) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        self.ctx.record_metric(name, value, unit, dimension=_DIMENSION, source=source, **extra)

    def _record(
        self, steady_before: bool, not_applied: str | None, integrity: IntegrityReport | None
    ) -> CheckOutcome:
        t = self.timeline
        evidence = self.ctx.store_artifact(
            json.dumps(self._evidence(integrity), indent=2, default=str).encode(),
            name=f"{self.ctx.check_name}-experiment.json",
            media_type="application/json",
        )
        source = f"{self.ctx.check_name}-experiment.json"
        self._metric("hypothesis.before", 1.0 if steady_before else 0.0, "number", source, artifact=evidence)
        applied = not_applied is None and bool(self.faults) and all(f.applied for f in self.faults)
        if steady_before:
            self._metric("fault_applied", 1.0 if applied else 0.0, "number", source, artifact=evidence)
        self._metric(
            "rollback.clean", 0.0 if self.rollback_problems else 1.0, "number", source, artifact=evidence
        )
        injected, removed = t.injected, t.removed
        if applied and injected is not None and removed is not None:
            failed_rounds = sum(1 for phase, r in t.rounds if phase == "during" and not r.ok)
            self._metric("hypothesis.during.failed_rounds", failed_rounds, "count", source, artifact=evidence)
            self._metric(
                "recovered", 1.0 if t.recovered is not None else 0.0, "number", source, artifact=evidence
            )
            detected = [
                x for x in (t.first_failure(injected), self._first_load_error(injected)) if x is not None
            ]
            if detected:
                self._metric("time_to_detect", min(detected) - injected, "seconds", source, artifact=evidence)
            recovery = t.time_to_recover(self._instant())
            if recovery is not None:
                self._metric("time_to_recover", recovery[0], "seconds", source, artifact=evidence)
            self._record_services(evidence, source)
        self._record_traffic(applied)
        if integrity is not None:
            self._record_integrity(integrity)
        return self._outcome(steady_before, not_applied, applied, integrity)

    def _record_services(self, evidence: ArtifactRef, source: str) -> None:
        """For each service killed or restarted: how long until it was ready again (its history)."""
        services = self.ctx.fault_targets.services
        injected = self.timeline.injected
        if services is None or injected is None:
            return
        names = _restarted(self.settings)
        since = Wall(self.timeline.started)(injected)
        for name in sorted(names):
            events = [e for e in services.history(name) if e.at >= since]
            ready = next((e for e in events if e.kind in ("ready", "restarted")), None)
            if ready is not None:
                seconds = (ready.at - since).total_seconds()
                self._metric(f"service.{name}.time_to_ready", seconds, "seconds", source, artifact=evidence)
        for spec, active in zip(self.settings.faults, self.faults, strict=False):
            if isinstance(spec, KillFault) and spec.process is not None:
                self._record_replacement(spec.kill, active.evidence.get("kills", []), evidence, source)

    def _record_replacement(
        self, service: str, kills: list[dict[str, Any]], evidence: ArtifactRef, source: str
    ) -> None:
        """Whether the service replaced every process killed inside it within the fault
        window, and the longest it took."""
        killed = [kill for kill in kills if kill["ok"]]
        if not killed:
            return
        waits = [kill["replaced_after"] for kill in killed]
        replaced = all(wait is not None for wait in waits)
        name = f"service.{service}.process"
        self._metric(f"{name}.replaced", 1.0 if replaced else 0.0, "number", source, artifact=evidence)
        if replaced:
            self._metric(f"{name}.time_to_replace", max(waits), "seconds", source, artifact=evidence)

    def _instant(self) -> bool:
        """Whether every fault is over once applied (a kill, a restart): nothing to remove."""
        return all(
            isinstance(f, RestartFault) or (isinstance(f, KillFault) and f.repeat == 1)
            for f in self.settings.faults
        )

    def _first_load_error(self, after: float) -> float | None:
        return self.traffic.first_error_after(after) if self.traffic is not None else None

    def _windows(self) -> dict[str, tuple[float, float]]:
        t = self.timeline
        windows = {"before": (t.started, t.injected or t.ended)}
        if t.injected is not None and t.removed is not None:
            windows["during"] = (t.injected, t.removed)
            if t.recovered is not None:  # it may have held since before the removal: after is after
                answered = self.traffic.answered_after(t.removed) if self.traffic is not None else None
                start = max(t.recovered, t.removed, t.ended if answered is None else answered)
                windows["after"] = (start, t.ended)
        return windows

    def _record_traffic(self, applied: bool) -> None:
        if self.traffic is None or self.traffic.result is None:
            return
        source = "background load"
        wall = Wall(self.traffic.started_at)
        for phase, (start, end) in self._windows().items():
            figures = self.traffic.window(start, end)
            window = (wall(start), wall(end))
            self._window_metrics(phase, figures, source, window)
            if phase == "during" and applied:
                self._metric("availability.during", figures.availability, "ratio", source, window=window)
        overall = self.traffic.overall()
        self._metric("availability.overall", overall.availability, "ratio", source)
        self._metric("requests", overall.attempted, "count", source)
        self.ctx.record_series(
            "availability",
            "ratio",
            [
                (
                    wall(self.traffic.started_at + s.second),
                    (s.requests - s.error_total) / (s.requests + s.dropped),
                )
                for s in self.traffic.result.series
                if s.requests + s.dropped
            ],
        )

    def _window_metrics(
        self, phase: str, figures: WindowFigures, source: str, window: tuple[datetime, datetime]
    ) -> None:
        self._metric(f"requests.{phase}", figures.attempted, "count", source, window=window)
        self._metric(f"error_rate.{phase}", figures.error_rate, "ratio", source, window=window)
        self._metric(f"latency.p95.{phase}", figures.p95, "seconds", source, window=window)
        self._metric(f"latency.p99.{phase}", figures.p99, "seconds", source, window=window)

    def _record_integrity(self, report: IntegrityReport) -> None:
        problems = self.ctx.store_artifact(
            json.dumps(report.problems, indent=2, default=str).encode(),
            name=f"{self.ctx.check_name}-integrity.json",
            media_type="application/json",
        )
        source = f"{self.ctx.check_name}-integrity.json"
        for name in ("attempted", "acknowledged", "lost", "corrupted", "duplicated"):
            self._metric(f"integrity.{name}", getattr(report, name), "count", source, artifact=problems)
        if self.settings.integrity is not None and self.settings.integrity.settled is not None:
            self._metric("integrity.stuck", report.stuck, "count", source, artifact=problems)
        if self.settings.moments is not None:
            self._record_moments(report)

    def _record_moments(self, report: IntegrityReport) -> None:
        """Per kill moment: the writes at risk and those lost; the moments tried."""
        for moment in self.moments:
            moment.read_back(report)
        evidence = self.ctx.store_artifact(
            json.dumps(self._moments_evidence(report), indent=2, default=str).encode(),
            name=f"{self.ctx.check_name}-kill-moments.json",
            media_type="application/json",
        )
        source = f"{self.ctx.check_name}-kill-moments.json"
        tried = [moment for moment in self.moments if moment.tried]
        self._metric("integrity.moments", len(tried), "count", source, artifact=evidence)
        for moment in tried:
            name = f"integrity.moment.{moment.label}"
            self._metric(f"{name}.acknowledged", moment.acknowledged, "count", source, artifact=evidence)
            self._metric(f"{name}.lost", moment.lost, "count", source, artifact=evidence)

    def _moments_evidence(self, report: IntegrityReport | None) -> dict[str, Any]:
        """The kill moments as the evidence artifact tells them, with the steady writes (made
        under the experiment's mixed traffic) for comparison."""
        evidence: dict[str, Any] = {
            "killed": [{"service": name, "signal": signum} for name, signum in self.settings.kill_targets],
            "not_tried": self.moments_not_tried,
            "moments": [moment.as_evidence() for moment in self.moments],
        }
        if report is not None:
            groups = report.groups.values()
            evidence["steady_writes"] = {
                "acknowledged": report.acknowledged - sum(g.acknowledged for g in groups),
                "lost": report.lost - sum(g.lost for g in groups),
            }
        return evidence

    def _evidence(self, integrity: IntegrityReport | None) -> dict[str, Any]:
        t = self.timeline
        wall = Wall(t.started)

        def at(moment: float | None) -> str | None:
            return wall(moment).isoformat() if moment is not None else None

        return {
            "timeline": {
                "started": at(t.started),
                "injected": at(t.injected),
                "removed": at(t.removed),
                "recovered": at(t.recovered),
                "ended": at(t.ended),
            },
            "faults": [
                {
                    "kind": f.kind,
                    "description": f.description,
                    "applied": f.applied,
                    "detail": f.detail,
                    "evidence": f.evidence,
                }
                for f in self.faults
            ],
            "rollback_problems": self.rollback_problems,
            "rounds": [
                {"phase": phase, "at": at(r.at), "ok": r.ok, "probes": [vars(p) for p in r.results]}
                for phase, r in t.rounds
            ],
            "integrity": integrity.summary() if integrity is not None else None,
            "kill_moments": self._moments_evidence(integrity) if self.settings.moments is not None else None,
        }

    def _outcome(
        self, steady_before: bool, not_applied: str | None, applied: bool, integrity: IntegrityReport | None
    ) -> CheckOutcome:
        details = [f"rollback: {problem}" for problem in self.rollback_problems]
        if not steady_before:
            failed = next((r for phase, r in self.timeline.rounds if phase == "before" and not r.ok), None)
            details.append(f"before the fault: {failed.failures() if failed else 'no probe round'}")
            return CheckOutcome("error", not_applied or "not steady before the fault", details)
        if not applied:
            unverified = [f"{f.description}: {f.detail}" for f in self.faults if not f.applied]
            return CheckOutcome("error", not_applied or "a fault was not verified", details + unverified)
        t = self.timeline
        parts = [", ".join(f.description for f in self.faults)]
        during = [r for phase, r in t.rounds if phase == "during"]
        broken = sum(1 for r in during if not r.ok)
        parts.append(f"hypothesis broken in {broken} of {len(during)} rounds during the fault")
        recovery = t.time_to_recover(self._instant())
        if recovery is not None:
            seconds, since = recovery
            if not since:  # as time_to_recover says: 0, nothing to recover from
                parts.append("the hypothesis never broke: nothing to recover from")
            else:
                parts.append(f"recovered {format_value(seconds, 'seconds')} after {since}")
        else:
            parts.append(f"not recovered within {format_value(self.settings.recovery.timeout, 'seconds')}")
            last = next((r for phase, r in reversed(t.rounds) if not r.ok), None)
            if last is not None:
                details.append(f"still failing: {last.failures()}")
        if self.traffic is not None and t.injected is not None and t.removed is not None:
            availability = self.traffic.window(t.injected, t.removed).availability
            if availability is not None:
                parts.append(f"availability during the fault {format_value(availability, 'ratio')}")
        if integrity is not None:
            parts.append(integrity.summary())
            if self.settings.moments is not None:
                parts.append(self._moments_summary())
            details += [
                f"{p['verdict']}{_moment_of(p)}: {p.get('write')} {p.get('why', '')}"
                for p in integrity.problems[:5]
            ]
        return CheckOutcome("completed", "; ".join(parts), details)

    def _moments_summary(self) -> str:
        if not self.moments:
            return f"kill moments not tried: {self.moments_not_tried}"
        return "kill moments: " + "; ".join(moment.summary() for moment in self.moments)


def _moment_of(problem: dict[str, Any]) -> str:
    return f" (kill moment {problem['group']})" if "group" in problem else ""
