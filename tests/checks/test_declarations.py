"""The kinds' own tests fail when a kind records a metric it does not declare."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from recording_context import MakeContext

from gonogo.checks.tests import TestsCheck, TestsSettings
from gonogo.plan.names import PlanNames

JUNIT = Path(__file__).resolve().parents[1] / "fixtures" / "junit" / "pytest.xml"


def test_a_metric_the_kind_does_not_declare_fails_its_test(
    recording_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = recording_context()
    shutil.copy(JUNIT, ctx.plan_dir / "report.xml")
    settings = TestsSettings(junit=["report.xml"], cwd=str(ctx.plan_dir))
    assert "pass_rate" in TestsCheck.metric_names(settings, PlanNames())
    monkeypatch.setattr(TestsCheck, "metric_names", classmethod(lambda cls, settings, plan: ["total"]))

    undeclared = r"passed recorded, but TestsCheck\.metric_names does not declare"
    with pytest.raises(AssertionError, match=undeclared):
        TestsCheck().run(settings, ctx)
