"""The `chaostoolkit` check kind: a Chaos Toolkit experiment as evidence.

With `experiment:`, the file is checked first (every mistake located by file, line and JSON
path; see experiment.py), then run with `chaos run` from gonogo's own Python environment,
tracked by the context so it is killed on timeout, Ctrl-C or gonogo's death. With `journal:`,
the journal of a run made elsewhere is read. Either way the journal is stored as an artifact
and these metrics are recorded (names relative to the check; dimension reliability):

- `completed` — 1 when the journal's status is "completed", else 0 (failed, aborted, interrupted);
- `deviated` — 1 when the steady state was met before the method and not after it;
- `steady_state.before.met`, `steady_state.after.met` — 1 or 0; not measured when not checked;
- `activities`, `activities.failed`, `probes.failed`, `actions.failed` — the method's activities;
- `rollbacks`, `rollbacks.failed`;
- `duration` (seconds) and `activity.<name>.duration`, `rollback.<name>.duration` per activity.

A `chaos run` that cannot start, times out or writes no journal, and a journal that is
missing, truncated or not a journal, give an `error` outcome with none of these metrics.
"""

from __future__ import annotations

__all__ = ["ChaosToolkitCheck"]

import importlib.util
import os
import shlex
import signal
import sys
from pathlib import Path

from gonogo.checks.base import (
    ArtifactRef,
    CheckContext,
    CheckKind,
    CheckOutcome,
    CommandResult,
    MetricPatterns,
    PlanNames,
)
from gonogo.checks.chaostoolkit.experiment import Experiment, load_experiment
from gonogo.checks.chaostoolkit.journal import (
    ActivityRun,
    JournalSummary,
    SteadyState,
    parse_journal_data,
    read_journal,
)
from gonogo.checks.chaostoolkit.settings import DEFAULT_TIMEOUT, ChaosToolkitSettings
from gonogo.errors import InputFileError
from gonogo.inputs import unique_keys
from gonogo.units import Unit, format_value

_DIMENSION = "reliability"
_LISTED_FAILURES = 10
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ChaosToolkitCheck(CheckKind[ChaosToolkitSettings]):
    """Run a Chaos Toolkit experiment (or read the journal of one) and record what it found."""

    kind = "chaostoolkit"
    series_metrics = frozenset[str]()
    live_metrics = frozenset[str]()  # nothing followed while it runs
    Settings = ChaosToolkitSettings

    @classmethod
    def metric_names(cls, settings: ChaosToolkitSettings, plan: PlanNames) -> MetricPatterns:
        # Activities are named in the experiment file, which is only read when the check runs.
        return [
            "completed",
            "deviated",
            "steady_state.before.met",
            "steady_state.after.met",
            "activities",
            "activities.failed",
            "probes.failed",
            "actions.failed",
            "rollbacks",
            "rollbacks.failed",
            "duration",
            "activity.*.duration",
            "rollback.*.duration",
        ]

    def run(self, settings: ChaosToolkitSettings, ctx: CheckContext) -> CheckOutcome:
        return _Run(settings, ctx).run()


class _Run:
    """One execution of the check."""

    def __init__(self, settings: ChaosToolkitSettings, ctx: CheckContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.command: CommandResult | None = None
        self.command_text: str | None = None

    def run(self) -> CheckOutcome:
        if self.settings.journal is not None:
            return self._ingest(self.ctx.plan_dir / self.ctx.expand(self.settings.journal))
        assert self.settings.experiment is not None  # the settings require one of the two
        return self._run_experiment(self.ctx.plan_dir / self.ctx.expand(self.settings.experiment))

    # -- running an experiment -----------------------------------------------------------------

    def _run_experiment(self, path: Path) -> CheckOutcome:
        ctx, settings = self.ctx, self.settings
        try:
            experiment = load_experiment(path)
        except InputFileError as error:
            if path.is_file():  # what was refused is evidence too
                ctx.store_artifact(path, name=path.name, media_type=_media_type(path))
            first, *issues = str(error).splitlines()
            return CheckOutcome("error", first, [issue.strip() for issue in issues])
        ctx.store_artifact(path, name=path.name, media_type=_media_type(path))
        if importlib.util.find_spec("chaostoolkit") is None:
            return CheckOutcome(
                "error",
                f"Chaos Toolkit is not installed in gonogo's Python environment ({sys.executable}); "
                f"install it with: {sys.executable} -m pip install chaostoolkit",
            )
        cwd = ctx.plan_dir / ctx.expand(settings.cwd) if settings.cwd else path.parent
        if not cwd.is_dir():
            return CheckOutcome("error", f"the check's cwd {cwd} is not a directory")
        var_files = [ctx.plan_dir / ctx.expand(name) for name in settings.var_files]
        for var_file in var_files:
            if not var_file.is_file():
                return CheckOutcome("error", f"var_file {var_file}: no such file")
        journal_path = ctx.work_dir / "journal.json"
        log_path = ctx.work_dir / "chaostoolkit.log"
        for stale in (journal_path, log_path):
            stale.unlink(missing_ok=True)

        argv = [sys.executable, "-m", "chaostoolkit", "--no-version-check", "--log-file", str(log_path)]
        argv += ["run", "--journal-path", str(journal_path)]
        if settings.rollback_strategy is not None:
            argv += ["--rollback-strategy", settings.rollback_strategy]
        for key, value in settings.configuration.items():
            argv += ["--var", f"{key}={ctx.expand(value)}"]
        for var_file in var_files:
            argv += ["--var-file", str(var_file)]
        argv.append(str(path))
        self.command_text = shlex.join(["chaos", *argv[3:]])
        ctx.progress(f"running Chaos Toolkit experiment '{experiment.title}' ({path.name})")
        result = ctx.run_command(
            argv,
            cwd=cwd,
            env=_environment(),
            timeout=settings.timeout or DEFAULT_TIMEOUT,
            name="chaos-run",
        )
        self.command = result
        if log_path.is_file():
            ctx.store_artifact(log_path, name="chaostoolkit.log", media_type="text/plain")
        if result.start_error is not None or (result.returncode is None and not result.timed_out):
            why = result.start_error or "it ended without an exit status"
            return CheckOutcome("error", f"chaos run could not be started: {why} ({self.command_text})")
        if result.timed_out or result.returncode is None:
            return self._error(
                f"chaos run timed out after {result.duration:.1f} s and was stopped; chaos writes its "
                "journal only at the end, so nothing was measured"
            )
        if not journal_path.is_file():
            return self._error(
                f"chaos run {_ended(result.returncode)} without writing a journal"
                + _chaos_errors(result.output_tail)
            )
        return self._ingest(journal_path, experiment)

    # -- reading a journal ---------------------------------------------------------------------

    def _ingest(self, path: Path, experiment: Experiment | None = None) -> CheckOutcome:
        ctx = self.ctx
        ctx.progress(f"reading Chaos Toolkit journal {path.name}")
        try:
            data = read_journal(path)
        except InputFileError as error:
            return self._error(str(error))
        # Stored before parsing: a journal we refuse is evidence too.
        artifact = ctx.store_artifact(data, name=path.name, media_type="application/json")
        try:
            journal = parse_journal_data(data, str(path))
        except InputFileError as error:
            return self._error(str(error))
        source = f"{path.name} (Chaos Toolkit journal of experiment '{journal.title}')"
        if self.command_text is not None:
            source += f" written by `{self.command_text}`"
        self._record(journal, source, artifact)
        details = _failures(journal)
        if (
            self.command is not None
            and self.command.returncode not in (0, None)
            and journal.status == "completed"
            and not journal.deviated
        ):
            details.append(f"chaos run exited {self.command.returncode}")
        return CheckOutcome("completed", _describe(journal), details)

    def _record(self, journal: JournalSummary, source: str, artifact: ArtifactRef) -> None:
        window = journal.window
        if window is None and self.command is not None:
            window = (self.command.started_at, self.command.ended_at)

        def record(name: str, value: float, unit: Unit, labels: dict[str, str] | None = None) -> None:
            self.ctx.record_metric(
                name,
                float(value),
                unit,
                dimension=_DIMENSION,
                source=source,
                artifact=artifact,
                window=window,
                labels=labels,
            )

        record("completed", journal.status == "completed", "number")
        record("deviated", journal.deviated, "number")
        for moment, state in (("before", journal.before), ("after", journal.after)):
            if state is not None:
                record(f"steady_state.{moment}.met", state.met, "number")
        failed = journal.failed_activities
        record("activities", len(journal.method), "count")
        record("activities.failed", len(failed), "count")
        record("probes.failed", sum(1 for run in failed if run.type == "probe"), "count")
        record("actions.failed", sum(1 for run in failed if run.type == "action"), "count")
        record("rollbacks", len(journal.rollbacks), "count")
        record("rollbacks.failed", len(journal.failed_rollbacks), "count")
        if journal.duration is not None:
            record("duration", journal.duration, "seconds")
        for prefix, runs in (("activity", journal.method), ("rollback", journal.rollbacks)):
            keys, _ = unique_keys(run.name for run in runs)  # an activity run twice gets `_2`
            for key, run in zip(keys, runs, strict=True):
                if run.duration is not None:
                    labels = {"activity": run.name, "type": run.type, "status": run.status}
                    record(f"{prefix}.{key}.duration", run.duration, "seconds", labels)

    def _error(self, message: str) -> CheckOutcome:
        details: list[str] = []
        if self.command is not None and self.command.output_tail:
            details.append("last output of chaos run: " + " ⏎ ".join(self.command.output_tail))
        return CheckOutcome("error", message, details)


def _environment() -> dict[str, str]:
    """Loopback traffic of the experiment (its probes, the fault proxy's API) never goes through
    an HTTP proxy set in the environment; chaos's output is not held in a buffer."""
    no_proxy = [
        part for part in os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",") if part
    ]
    no_proxy += [host for host in _LOOPBACK if host not in no_proxy]
    joined = ",".join(no_proxy)
    return {"NO_PROXY": joined, "no_proxy": joined, "PYTHONUNBUFFERED": "1"}


def _ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited {returncode}"


def _chaos_errors(tail: list[str]) -> str:
    """chaos's own ERROR lines (an invalid experiment, a module that does not import), for the message."""
    errors = [line.split("ERROR]", 1)[1].strip() for line in tail if "ERROR]" in line]
    return ": " + "; ".join(errors[-3:]) if errors else ""


def _describe(journal: JournalSummary) -> str:
    outcome = "deviated" if journal.deviated else journal.status
    parts = [f"experiment '{journal.title}' {outcome}", _steady_states(journal.before, journal.after)]
    activities = f"{len(journal.method)} activit{'y' if len(journal.method) == 1 else 'ies'}"
    parts.append(f"{activities}, {len(journal.failed_activities)} failed")
    if journal.rollbacks:
        rollbacks = f"{len(journal.rollbacks)} rollback{'' if len(journal.rollbacks) == 1 else 's'}"
        parts.append(f"{rollbacks}, {len(journal.failed_rollbacks)} failed")
    if journal.duration is not None:
        parts.append(f"in {format_value(journal.duration, 'seconds')}")
    return ", ".join(parts)


def _steady_states(before: SteadyState | None, after: SteadyState | None) -> str:
    if before is None and after is None:
        return "steady state not checked"
    if before is not None and not before.met:
        return "steady state not met before the method, so the method was not run"
    if before is not None and after is not None:
        return "steady state met before and after" if after.met else "steady state met before, not after"
    if before is not None:
        return "steady state met before, not checked after"
    assert after is not None
    return f"steady state {'met' if after.met else 'not met'} after (not checked before)"


def _failures(journal: JournalSummary) -> list[str]:
    details: list[str] = []
    for moment, state in (("before", journal.before), ("after", journal.after)):
        if state is None:
            continue
        for probe in state.probes:
            if probe.failed:
                details.append(f"steady-state probe '{probe.name}' {moment} the method failed: {probe.error}")
            elif probe.tolerance_met is False:
                details.append(f"steady-state probe '{probe.name}' {moment} the method: not within tolerance")
    details += [_failure("activity", run) for run in journal.failed_activities]
    details += [_failure("rollback", run) for run in journal.failed_rollbacks]
    if len(details) > _LISTED_FAILURES:
        details = [*details[:_LISTED_FAILURES], f"... and {len(details) - _LISTED_FAILURES} more"]
    return details


def _failure(what: str, run: ActivityRun) -> str:
    return f"{what} '{run.name}' ({run.type}) {run.status}: {run.error or 'no error given'}"


def _media_type(path: Path) -> str:
    return "application/json" if path.suffix.lower() == ".json" else "application/yaml"
