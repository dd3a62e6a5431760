"""The restore drill: backup → destroy → restore, and every acknowledged write read back.

1. Writes (the `integrity` journey) go on for `writes`, then stop: every one acknowledged is
   acknowledged before the backup starts, and must come back.
2. `backup`. If it fails, the drill stops here: nothing is destroyed without a backup.
3. Writes again for `writes_after_backup`: these are *expected lost*, never counted as lost.
   They tell whether the data after the restore is the backup's: if one of them comes back,
   the destroy destroyed nothing or the restore did not come from the backup.
4. `destroy`, then `restore` (also after a failed destroy, to leave the system usable).
5. Every write is read back, as the chaos check's integrity writes are (`gonogo.experiment.
   integrity`): intact, lost (not found, or unreadable until `read_timeout`) or corrupted.

The background load, if any, runs through steps 1 to 4: a backup is taken from a live service.
"""

from __future__ import annotations

__all__ = ["DrillOutcome", "RestoreDrill"]

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gonogo.checks.base import ArtifactRef, CheckContext
from gonogo.checks.operation.actions import ActionResult, run_action
from gonogo.checks.operation.settings import RestoreCheck
from gonogo.experiment.integrity import IntegrityReport, IntegrityWriter
from gonogo.experiment.traffic import BackgroundTraffic
from gonogo.journey.once import upload_files
from gonogo.journey.settings import JourneysSettings
from gonogo.units import Unit, format_value

DIMENSION = "operations"
STEPS = ("backup", "destroy", "restore")

StartTraffic = Callable[[float], BackgroundTraffic | str | None]


@dataclass
class DrillOutcome:
    message: str = ""
    details: list[str] = field(default_factory=list)
    problem: str | None = None  # why the drill could not be measured


@dataclass
class _Writes:
    """One batch of integrity writes, and what reading them back found."""

    writer: IntegrityWriter
    started: float
    ended: float = 0.0
    report: IntegrityReport | None = None


class RestoreDrill:
    def __init__(
        self,
        drill: RestoreCheck,
        journeys: JourneysSettings,
        ctx: CheckContext,
        base_url: str,
        variables: dict[str, Any],
        start_traffic: StartTraffic,
    ) -> None:
        self.drill = drill
        self.journeys = journeys
        self.ctx = ctx
        self.base_url = base_url
        self.variables = variables
        self.start_traffic = start_traffic
        self.steps: dict[str, ActionResult] = {}
        self.load: dict[str, dict[str, Any]] = {}  # step → the background load's figures meanwhile
        self.before_backup: _Writes | None = None
        self.after_backup: _Writes | None = None

    def run(self) -> DrillOutcome:
        files, missing = upload_files(self.journeys, self.ctx)
        if missing:
            return DrillOutcome(problem="the restore_check writes cannot run: " + "; ".join(missing))
        bound = self.drill.writes + self.drill.writes_after_backup + 3 * 300 + 60
        traffic = self.start_traffic(bound)
        if isinstance(traffic, str):
            return DrillOutcome(problem=traffic)
        try:
            problem = self._steps(files)
        finally:
            load_problem = self._stop(traffic)
        if problem:
            return DrillOutcome(problem=problem, details=[load_problem] if load_problem else [])
        self._verify()
        outcome = self._record()
        if load_problem:
            outcome.details.append(load_problem)
        return outcome

    # -- the drill ----------------------------------------------------------------

    def _steps(self, files: dict[str, Any]) -> str | None:
        self.before_backup = self._write(files, self.drill.writes, "before the backup")
        if self.before_backup.writer.acknowledged == 0:
            return (
                f"no write was acknowledged in {format_value(self.drill.writes, 'seconds')} before the "
                f"backup, so the restore could show nothing{self._writer_error(self.before_backup)}"
            )
        if not self._step("backup"):
            return None  # recorded: not verified, and nothing destroyed
        if self.drill.writes_after_backup > 0:
            self.after_backup = self._write(files, self.drill.writes_after_backup, "after the backup")
        self._step("destroy")
        self._step("restore")
        return None

    def _write(self, files: dict[str, Any], seconds: float, when: str) -> _Writes:
        integrity = self.drill.integrity
        writer = IntegrityWriter(
            integrity,
            self.journeys,
            self.base_url,
            files=files,
            expand=self.ctx.expand,
            variables=self.variables,
        )
        self.ctx.progress(f"restore drill: writing for {format_value(seconds, 'seconds')} {when}")
        writes = _Writes(writer, time.monotonic())
        writer.start()
        try:
            time.sleep(seconds)
        finally:
            writer.stop()  # waits for the writes in flight: all are answered before the next step
        writes.ended = time.monotonic()
        self.ctx.progress(f"restore drill: {writer.acknowledged} writes acknowledged {when}")
        return writes

    def _step(self, step: str) -> bool:
        self.ctx.progress(f"restore drill: {step}")
        action = getattr(self.drill, step)
        result = run_action(action, self.ctx, name=f"{self.ctx.check_name}-restore-{step}")
        self.steps[step] = result
        self.ctx.progress(f"restore drill: {step} {'done' if result.ok else 'FAILED'}: {result.detail}")
        return result.ok

    def _stop(self, traffic: BackgroundTraffic | None) -> str | None:
        if traffic is None:
            return None
        try:
            traffic.stop()
        except RuntimeError as error:
            return str(error)
        for step, result in self.steps.items():
            # The load counts by the second: every second the step overlapped.
            figures = traffic.window(result.started - 0.5, result.ended + 0.5)
            self.load[step] = {"requests": figures.attempted, "failed_requests": figures.errors}
        return None

    def _verify(self) -> None:
        if "restore" not in self.steps:
            return  # the backup failed: nothing was destroyed, nothing is to be read back
        for writes in (self.before_backup, self.after_backup):
            if writes is not None:
                self.ctx.progress(f"restore drill: reading back {writes.writer.acknowledged} writes")
                writes.report = writes.writer.verify()

    @staticmethod
    def _writer_error(writes: _Writes) -> str:
        error = writes.writer.error
        return f" (the writes failed: {error})" if error is not None else ""

    # -- figures ------------------------------------------------------------------

    def _verified(self) -> tuple[bool, str]:
        """Whether the drill shows the data came back from the backup, and if not, why."""
        failed = [step for step in STEPS if step in self.steps and not self.steps[step].ok]
        if failed:
            return False, f"{', '.join(failed)} failed"
        if "restore" not in self.steps:
            return False, "the drill did not reach the restore"
        after = self.after_backup
        if after is None or after.report is None:
            return True, ""  # writes_after_backup: 0, as for a point-in-time restore
        if after.report.acknowledged == 0:
            return False, "no write was acknowledged after the backup, so nothing shows the restore used it"
        if after.report.intact:
            return False, (
                f"{after.report.intact} of {after.report.acknowledged} writes made after the backup came "
                "back: the data after the restore is not the backup's (did the destroy destroy anything?)"
            )
        return True, ""

    def _record(self) -> DrillOutcome:
        before = self.before_backup
        assert before is not None
        verified, why = self._verified()
        report = before.report
        evidence = self._evidence(verified, why)
        name = f"{self.ctx.check_name}-restore.json"
        artifact = self.ctx.store_artifact(
            json.dumps(evidence, indent=2, default=str).encode(), name=name, media_type="application/json"
        )
        metric = _Recorder(self.ctx, artifact, name)
        metric("restore.writes", before.writer.acknowledged, "count", "writes acknowledged before the backup")
        if report is not None:
            lost = report.acknowledged - report.intact
            metric(
                "restore.lost_writes",
                lost,
                "count",
                "writes acknowledged before the backup, not read back intact",
            )
        proof = "backup, destroy and restore succeeded, and no write made after the backup came back"
        metric("restore.verified", 1.0 if verified else 0.0, "number", proof)
        restore = self.steps.get("restore")
        if restore is not None and restore.ok:
            metric("restore.duration", restore.duration, "seconds", f"the restore step ({restore.detail})")
        return self._outcome(verified, why)

    def _outcome(self, verified: bool, why: str) -> DrillOutcome:
        before = self.before_backup
        assert before is not None
        parts = [f"restore: {before.writer.acknowledged} writes before the backup"]
        details: list[str] = []
        if before.report is not None:
            r = before.report
            parts.append(
                f"{r.acknowledged - r.intact} not read back intact ({r.lost} lost, {r.corrupted} corrupted)"
            )
            details += [
                f"restore: {p['verdict']}: {p.get('write')} {p.get('why', '')}" for p in r.problems[:5]
            ]
        after = self.after_backup
        if after is not None and after.report is not None:
            came_back = after.report.intact
            if came_back:
                parts.append(f"{came_back} of the writes made after the backup came back")
            else:
                parts.append(
                    f"the {after.report.acknowledged} writes made after the backup gone, as expected"
                )
        parts.append("verified" if verified else f"not verified: {why}")
        for step, result in self.steps.items():
            if not result.ok:
                details.append(f"restore drill {step}: {result.detail}")
                details += [f"  {line}" for line in result.output_tail[-5:]]
        return DrillOutcome(", ".join(parts), details)

    def _evidence(self, verified: bool, why: str) -> dict[str, Any]:
        def writes(batch: _Writes | None, meaning: str) -> dict[str, Any] | None:
            if batch is None:
                return None
            report = batch.report
            return {
                "meaning": meaning,
                "seconds": round(batch.ended - batch.started, 3),
                "attempted": report.attempted if report else None,
                "acknowledged": batch.writer.acknowledged,
                "read_back": report.summary()
                if report
                else "not read back (the drill stopped before the restore)",
                "problems": report.problems if report else [],
                "error": str(batch.writer.error) if batch.writer.error else None,
            }

        return {
            "steps": {
                step: {**result.evidence(), "load_in_the_seconds_it_overlapped": self.load.get(step)}
                for step, result in self.steps.items()
            },
            "writes_before_backup": writes(
                self.before_backup, "acknowledged before the backup: must all come back"
            ),
            "writes_after_backup": writes(
                self.after_backup,
                "acknowledged after the backup: expected lost, not counted; any intact one "
                "means the data after the restore is not the backup's",
            ),
            "verified": verified,
            "not_verified_because": why or None,
        }


class _Recorder:
    def __init__(self, ctx: CheckContext, artifact: ArtifactRef, name: str) -> None:
        self.ctx, self.artifact, self.name = ctx, artifact, name

    def __call__(self, metric: str, value: float, unit: Unit, source: str) -> None:
        self.ctx.record_metric(
            metric, value, unit, dimension=DIMENSION, source=f"{source} ({self.name})", artifact=self.artifact
        )
