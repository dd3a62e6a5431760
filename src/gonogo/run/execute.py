"""Carrying out one readiness run.

Evidence is written as it is produced; whatever happens (a check crashing, a service
dying, Ctrl-C, SIGTERM) the services are stopped, the run is closed with the right
status, and a verdict is computed from what was measured.
"""

from __future__ import annotations

__all__ = ["RunOutcome", "execute"]

import contextlib
import hashlib
import os
import platform
import secrets
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from gonogo import __version__, plugins
from gonogo._git import git_output
from gonogo.checks.base import CheckKind
from gonogo.errors import GonogoError, ServiceFailed
from gonogo.evidence import Store, VerdictRecord
from gonogo.evidence.baselines import choose_baseline
from gonogo.evidence.records import RunStatus
from gonogo.plan import CheckSpec, Plan
from gonogo.report import RunReport, collect
from gonogo.report.recorded import write_recorded_reports
from gonogo.run.context import CheckRunContext, RunContext
from gonogo.run.fault_setup import FaultSetup, FaultSetupFailed
from gonogo.run.history import record_flaky_tests
from gonogo.run.progress import Progress
from gonogo.run.service_metrics import record_service_metrics
from gonogo.system import Reaper, System, allocate_ports
from gonogo.verdict import check_series, decide, evaluate_gates
from gonogo.verdict.baseline import (
    COMPARISON_ARTIFACT,
    COMPARISON_MEDIA_TYPE,
    Baseline,
    BaselineComparison,
    BaselineRow,
    gather_baseline,
    run_distributions,
)


@dataclass
class RunOutcome:
    run_id: str
    status: RunStatus
    verdict: VerdictRecord
    report: RunReport  # everything stored about the run, as the reports show it
    reports: dict[str, Path]
    problems: list[str] = field(default_factory=list)


class CheckTimedOut(GonogoError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that every cleanup runs."""


def execute(
    plan: Plan,
    store: Store,
    *,
    store_url: str,
    state_dir: Path,
    progress: Progress,
    keep_scratch: bool = False,
) -> RunOutcome:
    run_id = store.begin_run(
        name=plan.name,
        plan_path=str(plan.path),
        plan_hash=hashlib.sha256(plan.text.encode()).hexdigest(),
        plan_text=plan.text,
        git_commit=_git_commit(plan.directory),
        host=socket.gethostname(),
        tool_versions=_tool_versions(),
        owner_pid=os.getpid(),
    )
    run_dir = state_dir / "runs" / run_id
    scratch_dir = run_dir / "scratch"
    scratch_dir.mkdir(parents=True, exist_ok=True)
    # If gonogo is killed outright, the reaper kills what we started and closes the run.
    reaper = Reaper.start(
        secrets.token_hex(12),
        on_death_argv=[
            sys.executable,
            "-m",
            "gonogo",
            "mark-aborted",
            run_id,
            "--store",
            store_url,
            "--artifacts",
            str(state_dir / "artifacts"),
        ],
        log_path=run_dir / "reaper.log",
    )
    ctx = RunContext(
        plan=plan,
        store=store,
        run_id=run_id,
        ports=allocate_ports(plan.port_names()),
        scratch_dir=scratch_dir,
        reaper=reaper,
        progress=progress,
    )
    progress.milestone("run", f"run {run_id} of plan {plan.name} ({plan.path.name}) started")
    status: RunStatus = "completed"
    problems: list[str] = []
    system: System | None = None
    faults = FaultSetup(plan, ctx)
    try:
        with _sigterm_as_interrupt():
            early = [(n, s) for n, s in plan.checks.items() if not s.needs_system]
            late = [(n, s) for n, s in plan.checks.items() if s.needs_system]
            for name, spec in early:
                problems += _run_check(ctx, name, spec)
            if plan.system.services or plan.system.proxies:
                try:
                    ctx.fault_targets = faults.start()
                    system = System(
                        plan.system,
                        plan_dir=plan.directory,
                        expand=ctx.expand,
                        log_dir=run_dir / "logs",
                        reaper=reaper,
                        observer=ctx,
                        extra_env=faults.service_env,
                    )
                    ctx.fault_targets.services = system
                    system.start()
                except FaultSetupFailed as failure:
                    status = "failed"
                    problems.append(f"the fault proxies could not be set up: {failure}")
                    progress.milestone("faults", str(failure))
                    for name, _ in late:
                        _record_not_run(ctx, name, plan.checks[name], "the fault proxies could not be set up")
                    late = []
                except ServiceFailed as failure:
                    status = "failed"
                    problems.append(
                        f"the system under test did not start: {failure.service} {failure.reason}"
                    )
                    progress.milestone(failure.service, str(failure))
                    for name, _ in late:
                        _record_not_run(ctx, name, plan.checks[name], "the system under test did not start")
                    late = []
            for index, (name, spec) in enumerate(late):
                problems += _run_check(ctx, name, spec)
                if system is not None:
                    try:
                        system.check_alive()
                    except ServiceFailed as failure:
                        status = "failed"
                        problems.append(f"service {failure.service} {failure.reason} during check {name}")
                        progress.milestone(failure.service, str(failure))
                        for later_name, later_spec in late[index + 1 :]:
                            _record_not_run(ctx, later_name, later_spec, f"service {failure.service} died")
                        break
    except KeyboardInterrupt as interrupt:
        status = "aborted"
        why = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"
        problems.append(f"the run was {why} before it completed")
        progress.milestone("run", f"{why}: stopping the system, keeping what was measured")
    except Exception as error:  # a bug or a broken environment: still close the run properly
        status = "failed"
        problems.append(f"the run could not go on: {type(error).__name__}: {error}")
        with contextlib.suppress(Exception):
            store.add_artifact(
                run_id, traceback.format_exc().encode(), name="run-traceback.txt", media_type="text/plain"
            )
        progress.milestone("run", f"error: {type(error).__name__}: {error}; stopping the system")
    finally:
        with _signals_ignored():
            if system is not None:
                system.stop()
            faults.close()
            if system is not None:
                for service, log in system.log_files().items():
                    if log.exists():
                        store.add_artifact(run_id, log, name=f"{service}.log", media_type="text/plain")
            ctx.flush_samples()
            if system is not None:
                try:
                    record_service_metrics(ctx, system)
                except Exception as error:  # what the checks measured must still reach a verdict
                    problems.append(f"the services' run-level metrics could not be recorded: {error}")
                    with contextlib.suppress(Exception):
                        store.add_artifact(
                            run_id,
                            traceback.format_exc().encode(),
                            name="service-metrics-traceback.txt",
                            media_type="text/plain",
                        )
            reaper.close()
            if not keep_scratch:
                shutil.rmtree(scratch_dir, ignore_errors=True)

    with _signals_ignored():
        baseline: Baseline | None = None
        distributions = None
        try:
            baseline = _baseline(plan, store, run_id)
            distributions = run_distributions(store, run_id) if baseline and baseline.runs else None
        except Exception as error:  # what the checks measured must still reach a verdict
            problems.append(f"the baseline could not be read: {error}")
            with contextlib.suppress(Exception):
                trace = traceback.format_exc().encode()
                store.add_artifact(run_id, trace, name="baseline-traceback.txt", media_type="text/plain")
        comparisons: list[BaselineRow] = []
        try:
            record_flaky_tests(store, run_id, plan.name, plan.history.runs)
        except Exception as error:  # what the checks measured must still reach a verdict
            problems.append(f"the history of flaky tests could not be computed: {error}")
            with contextlib.suppress(Exception):
                trace = traceback.format_exc().encode()
                store.add_artifact(run_id, trace, name="history-traceback.txt", media_type="text/plain")
        gates = evaluate_gates(
            plan.gates,
            store.metrics(run_id),
            check_series(store.samples(run_id)),
            store.checks(run_id),
            baseline=baseline,
            distributions=distributions,
            comparisons=comparisons,
        )
        if baseline is not None:
            _store_comparison(store, run_id, baseline, comparisons)
        verdict = decide(
            gates,
            plan.score,
            run_problems=problems,
            signoff=plan.signoff,
            baseline=None if baseline is None else baseline.choice,
        )
        store.save_verdict(run_id, verdict)
        store.finish_run(run_id, status, "; ".join(problems))
        report = collect(store, run_id)
        reports = write_recorded_reports(store, report, run_dir)
    return RunOutcome(run_id, status, verdict, report, reports, problems)


def _baseline(plan: Plan, store: Store, run_id: str) -> Baseline | None:
    """The earlier runs the plan's relative gates compare with; None when it has none."""
    if not plan.has_relative_gates:
        return None
    choice = choose_baseline(store, plan.name, plan.baseline.runs, before=run_id)
    return gather_baseline(store, choice, plan.baseline.confidence, store.resolve_run(run_id).plan_hash)


def _store_comparison(store: Store, run_id: str, baseline: Baseline, rows: list[BaselineRow]) -> None:
    choice = baseline.choice
    comparison = BaselineComparison(choice.how, choice.runs, baseline.detail, baseline.confidence, rows)
    store.add_artifact(run_id, comparison.dumps(), name=COMPARISON_ARTIFACT, media_type=COMPARISON_MEDIA_TYPE)


def _run_check(ctx: RunContext, name: str, spec: CheckSpec) -> list[str]:
    """Run one check; a crash is recorded as evidence and never stops the run."""
    kind: CheckKind[object] = plugins.load_kind(spec.kind)()  # type: ignore[type-var]
    check_id = ctx.store.begin_check(ctx.run_id, name, spec.kind)
    check_ctx = CheckRunContext(ctx, name)
    ctx.progress.milestone(name, f"check {name} ({spec.kind}) started")
    started = time.monotonic()
    try:
        with _time_limit(spec.timeout):
            outcome = kind.run(spec.settings, check_ctx)
    except CheckTimedOut:
        message = f"stopped after its timeout of {spec.timeout:g}s"
        ctx.store.end_check(check_id, "error", message)
        ctx.progress.milestone(name, f"error: {message}")
        return [f"check {name} {message}"]
    except KeyboardInterrupt:
        ctx.store.end_check(check_id, "aborted", "interrupted")
        raise
    except Exception as error:  # a bug in a check must not lose the rest of the run
        trace = traceback.format_exc()
        ctx.store.add_artifact(
            ctx.run_id, trace.encode(), name=f"{name}-traceback.txt", media_type="text/plain", check=name
        )
        message = f"crashed: {type(error).__name__}: {error}"
        ctx.store.end_check(check_id, "error", message)
        ctx.progress.milestone(name, f"error: {message}")
        return [f"check {name} {message}"]
    text = outcome.message or outcome.status
    if outcome.details:
        text += " — " + "; ".join(outcome.details[:5])
    ctx.store.end_check(check_id, outcome.status, text)
    ctx.progress.milestone(
        name,
        f"{outcome.status} in {time.monotonic() - started:.1f}s, "
        f"{check_ctx.metrics_recorded} metrics" + (f": {outcome.message}" if outcome.message else ""),
    )
    if outcome.status == "error":
        for detail in outcome.details[:5]:
            ctx.progress.milestone(name, f"  {detail}")
    return [f"check {name} could not measure: {outcome.message}"] if outcome.status == "error" else []


def _record_not_run(ctx: RunContext, name: str, spec: CheckSpec, why: str) -> None:
    check_id = ctx.store.begin_check(ctx.run_id, name, spec.kind)
    ctx.store.end_check(check_id, "not_run", why)


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CheckTimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Cleanup must finish even if the user presses Ctrl-C again."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _git_commit(directory: Path) -> str | None:
    return git_output(directory, "rev-parse", "HEAD")


def _tool_versions() -> dict[str, str]:
    return {
        "gonogo": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
