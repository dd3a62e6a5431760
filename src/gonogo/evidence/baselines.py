"""Choosing a run's baseline: the run pinned with `gonogo baseline set`, else the last N
passing runs of the plan (GO and completed), else none. The comparison itself is the verdict's
(verdict/baseline.py); the plan's `baseline: {runs: N}` says N."""

from __future__ import annotations

__all__ = ["choose_baseline"]

from gonogo.errors import UserError
from gonogo.evidence.records import BaselineChoice
from gonogo.evidence.store import Store

# plan runs read at once while looking for passing ones; most runs of a plan pass
_SCAN_FACTOR = 20


def choose_baseline(store: Store, plan_name: str, runs: int, *, before: str | None = None) -> BaselineChoice:
    """What a run of plan `plan_name` compares with: the pinned run, else the last `runs` passing
    ones; `before`: the run being judged (only runs that started before it count), None for the
    next run."""
    setting = store.baseline_setting(plan_name)
    if setting is not None and setting.run_id is not None:
        when = f"{setting.set_at:%Y-%m-%d %H:%M} UTC"
        try:
            store.resolve_run(setting.run_id)
        except UserError:
            return BaselineChoice(
                "none",
                [],
                f"run {setting.run_id}, pinned by {setting.set_by} at {when}, is no longer in the store",
            )
        return BaselineChoice(
            "pinned", [setting.run_id], f"run {setting.run_id}, pinned by {setting.set_by} at {when}"
        )
    candidates = store.plan_runs(plan_name, before=before, limit=runs * _SCAN_FACTOR)
    passing = [run.id for run in candidates if run.status == "completed" and run.decision == "GO"]
    chosen = passing[:runs]
    if not chosen:
        return BaselineChoice(
            "none",
            [],
            f"no run is pinned and no earlier run of plan {plan_name!r} passed (GO, completed)",
        )
    wanted = f"the last {runs} passing runs" if runs > 1 else "the last passing run"
    short = f" (only {len(chosen)} so far)" if len(chosen) < runs else ""
    return BaselineChoice("recent", chosen, f"{wanted} of plan {plan_name!r}{short}: no run is pinned")
