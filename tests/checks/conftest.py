"""What the tests of every check kind share: the `recording_context` fixture, and a check
that every metric a kind records in its tests is one it declares (`declarations_are_honest`).

The context itself is in recording_context.py, beside this file; pytest puts this folder
on sys.path when it loads this conftest, so the conftests and tests below can import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recording_context import MakeContext, RecordingContext

from gonogo import plugins
from gonogo.checks import CheckContext, CheckKind, CheckOutcome, PlanNames


@pytest.fixture
def recording_context(tmp_path: Path) -> MakeContext:
    """Make a RecordingContext; its plan and work directories default to tmp_path/plan and
    tmp_path/work, and are created if missing."""

    def make(
        *,
        check_name: str = "check",
        plan_dir: Path | None = None,
        work_dir: Path | None = None,
        base_url: str | None = None,
    ) -> RecordingContext:
        plan_dir = plan_dir or tmp_path / "plan"
        work_dir = work_dir or tmp_path / "work"
        plan_dir.mkdir(parents=True, exist_ok=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        return RecordingContext(
            plan_dir=plan_dir, work_dir=work_dir, check_name=check_name, base_url=base_url
        )

    return make


@pytest.fixture(autouse=True)
def declarations_are_honest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every registered kind's `run` tell a RecordingContext what the kind declares for
    its settings, so that recording an undeclared metric fails the kind's own tests."""
    for kind in plugins.available_kinds():
        kind_class: type[CheckKind[Any]] = plugins.load_kind(kind)
        monkeypatch.setattr(kind_class, "run", _declaring(kind_class, kind_class.run))


def _declaring(kind_class: type[CheckKind[Any]], run: Any) -> Any:
    def declaring_run(self: CheckKind[Any], settings: Any, ctx: CheckContext) -> CheckOutcome:
        if isinstance(ctx, RecordingContext):
            ctx.declared = kind_class.metric_names(settings, PlanNames())
            ctx.declared_by = kind_class.__name__
        outcome: CheckOutcome = run(self, settings, ctx)
        return outcome

    return declaring_run
