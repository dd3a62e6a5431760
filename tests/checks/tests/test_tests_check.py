"""The `tests` check end to end: real commands, real reports, a recording context."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from gonogo.checks.tests import TestsCheck, TestsSettings

if TYPE_CHECKING:  # only the `ctx` fixture (tests/checks/tests/conftest.py) is used at run time
    from recording_context import RecordingContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SAMPLE = FIXTURES / "sample_project"
TEST_METRICS = {"total", "passed", "failed", "errors", "skipped", "flaky", "pass_rate", "duration"}


def run(ctx: RecordingContext, **settings: Any) -> Any:
    return TestsCheck().run(TestsSettings(**settings), ctx)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_real_pytest_run_with_coverage(ctx: RecordingContext) -> None:
    outcome = run(
        ctx,
        command=[
            sys.executable,
            "-m",
            "pytest",
            "check_sample.py",
            "-p",
            "no:cacheprovider",
            "--junitxml={work_dir}/junit.xml",
            "--cov=calc",
            "--cov-branch",
            "--cov-report=xml:{work_dir}/coverage.xml",
        ],
        cwd=str(SAMPLE),
        # Keep the fixture folder clean: coverage data and bytecode go elsewhere.
        env={"COVERAGE_FILE": "{work_dir}/.coverage", "PYTHONDONTWRITEBYTECODE": "1"},
        timeout="2m",
        junit=["{work_dir}/junit.xml"],
        coverage={"file": "{work_dir}/coverage.xml", "critical": ["calc.py"]},
    )
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert {k: values[k] for k in ("total", "passed", "failed", "errors", "skipped", "flaky")} == {
        "total": 5,
        "passed": 3,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "flaky": 0,
    }
    assert values["pass_rate"] == pytest.approx(3 / 4)
    assert values["command.exit_code"] == 1  # a failing test, yet a measured run
    # calc.py: 8 statements, `raise` and `unused`'s return never run; `if b == 0` only false.
    assert values["coverage.lines"] == pytest.approx(6 / 8)
    assert values["coverage.branches"] == pytest.approx(1 / 2)
    assert values["coverage.critical.lines"] == pytest.approx(6 / 8)
    assert values["command.duration"] > 0
    assert values["duration"] >= 0

    junit_metric = ctx.metric("pass_rate")
    assert (junit_metric.unit, junit_metric.dimension) == ("ratio", "tests")
    assert junit_metric.artifact is not None
    assert b"test_wrong_on_purpose" in ctx.artifacts[junit_metric.artifact.sha256]
    assert "junit.xml written by" in junit_metric.source and "pytest" in junit_metric.source
    assert junit_metric.window is not None
    coverage_metric = ctx.metric("coverage.lines")
    assert (coverage_metric.unit, coverage_metric.dimension) == ("ratio", "coverage")
    assert coverage_metric.artifact is not None
    # Written into {work_dir}: stored under the same plain name every run.
    assert (junit_metric.artifact.name, coverage_metric.artifact.name) == ("junit.xml", "coverage.xml")
    assert ctx.metric("total").unit == "count"
    assert ctx.metric("command.exit_code").unit == "number"
    assert ctx.metric("command.duration").artifact == ctx.commands[0].output
    assert "failing: check_sample::test_wrong_on_purpose (failed): assert 4 == 5" in outcome.details
    assert sorted(p.name for p in SAMPLE.iterdir()) == ["calc.py", "check_sample.py", "pytest.ini"]


def test_command_that_does_not_exist(ctx: RecordingContext) -> None:
    outcome = run(ctx, command=["gonogo-no-such-test-runner", "--all"], junit=["junit.xml"])
    assert outcome.status == "error"
    assert "could not be started" in outcome.message
    assert "gonogo-no-such-test-runner" in outcome.message
    assert ctx.metrics == {}


def test_command_that_writes_no_report(ctx: RecordingContext) -> None:
    outcome = run(ctx, command=python("print('all good, honest')"), junit=["reports/*.xml"])
    assert outcome.status == "error"
    assert "the command wrote no JUnit report" in outcome.message
    assert "reports/*.xml" in outcome.message
    assert set(ctx.values()) == {"command.duration", "command.exit_code"}
    assert not TEST_METRICS & set(ctx.values())


def test_a_report_left_by_an_earlier_run_is_ignored(ctx: RecordingContext) -> None:
    stale = ctx.plan_dir / "junit.xml"
    shutil.copy(FIXTURES / "junit" / "pytest.xml", stale)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    outcome = run(ctx, command=python("pass"), junit=["junit.xml"])
    assert outcome.status == "error"
    assert "pass_rate" not in ctx.values()
    assert any("left by an earlier run" in note and "junit.xml" in note for note in outcome.details)
    assert stale.exists()  # ignored, never deleted


def test_a_report_rewritten_by_the_command_counts(ctx: RecordingContext) -> None:
    report = ctx.plan_dir / "junit.xml"
    shutil.copy(FIXTURES / "junit" / "empty_suite.xml", report)
    source = FIXTURES / "junit" / "nested.xml"
    outcome = run(
        ctx,
        command=python(f"import shutil; shutil.copy({str(source)!r}, 'junit.xml')"),
        junit=["junit.xml"],
    )
    assert outcome.status == "completed", outcome
    assert ctx.values()["total"] == 5


def test_ingest_only_several_files(ctx: RecordingContext) -> None:
    outcome = run(ctx, junit=[str(FIXTURES / "junit" / "surefire" / "TEST-*.xml")])
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert {k: values[k] for k in ("total", "passed", "failed", "errors", "skipped", "flaky")} == {
        "total": 11,
        "passed": 7,
        "failed": 2,
        "errors": 1,
        "skipped": 1,
        "flaky": 2,
    }
    assert values["pass_rate"] == pytest.approx(7 / 10)
    assert "command.exit_code" not in values
    # Several files: the metrics point at a manifest listing each stored report.
    artifact = ctx.metric("total").artifact
    assert artifact is not None and artifact.name == "junit-reports.json"
    manifest = json.loads(ctx.artifacts[artifact.sha256])
    assert [entry["total"] for entry in manifest["reports"]] == [7, 4]
    assert all(entry["sha256"] in ctx.artifacts for entry in manifest["reports"])
    assert ctx.metric("total").window is None
    assert any("flaky: com.acme.docs.OrderServiceTest::retriesPaymentTimeout" in d for d in outcome.details)


def test_a_hostile_report_is_an_error_with_no_counts(ctx: RecordingContext) -> None:
    shutil.copy(FIXTURES / "junit" / "pytest.xml", ctx.plan_dir / "a.xml")
    shutil.copy(FIXTURES / "junit" / "hostile" / "billion_laughs.xml", ctx.plan_dir / "b.xml")
    outcome = run(ctx, junit=["*.xml"])
    assert outcome.status == "error"
    assert "b.xml:2: refused" in outcome.message
    assert ctx.metrics == {}
    assert len(ctx.artifacts) == 2  # both kept as evidence


def test_a_truncated_report_written_by_the_command(ctx: RecordingContext) -> None:
    outcome = run(
        ctx,
        command=python("open('out.xml', 'w').write('<testsuite><testcase name=\"a\">')"),
        junit=["out.xml"],
    )
    assert outcome.status == "error"
    assert "out.xml:1: the XML ends before the document is complete" in outcome.message
    assert "pass_rate" not in ctx.values()
    assert ctx.values()["command.exit_code"] == 0


def test_timeout_is_not_measured(ctx: RecordingContext) -> None:
    outcome = run(ctx, command=python("import time; time.sleep(30)"), timeout="300ms", junit=["x.xml"])
    assert outcome.status == "error"
    assert "timed out" in outcome.message
    assert set(ctx.values()) == {"command.duration"}


def test_nonzero_exit_with_failures_is_a_normal_run(ctx: RecordingContext) -> None:
    source = FIXTURES / "junit" / "nested.xml"
    code = f"import shutil, sys; shutil.copy({str(source)!r}, 'r.xml'); sys.exit(3)"
    outcome = run(ctx, command=python(code), junit=["r.xml"])
    assert outcome.status == "completed"
    assert ctx.values()["command.exit_code"] == 3
    assert ctx.values()["failed"] == 1
    assert not any("although" in d for d in outcome.details)


def test_nonzero_exit_without_failures_is_flagged(ctx: RecordingContext) -> None:
    report = '<testsuite><testcase name="a"/></testsuite>'
    code = f"import sys; open('clean.xml', 'w').write({report!r}); sys.exit(2)"
    outcome = run(ctx, command=python(code), junit=["clean.xml"])
    assert outcome.status == "completed"
    assert ctx.values()["pass_rate"] == 1.0
    assert any("exited 2 although its reports show no failure" in d for d in outcome.details)


def test_no_test_ran_records_counts_but_no_pass_rate(ctx: RecordingContext) -> None:
    outcome = run(ctx, junit=[str(FIXTURES / "junit" / "empty_suite.xml")])
    assert outcome.status == "completed"
    assert ctx.values()["total"] == 0
    assert "pass_rate" not in ctx.values()
    assert any("pass_rate not recorded: no test ran" in d for d in outcome.details)


def test_critical_globs_matching_nothing_say_so(ctx: RecordingContext) -> None:
    outcome = run(
        ctx,
        coverage={
            "file": str(FIXTURES / "coverage" / "coverage.json"),
            "critical": ["src/billing/**"],
        },
    )
    assert outcome.status == "completed"
    values = ctx.values()
    assert values["coverage.lines"] == pytest.approx(13 / 16)
    assert values["coverage.branches"] == pytest.approx(4 / 6)
    assert "coverage.critical.lines" not in values
    [note] = [d for d in outcome.details if "coverage.critical.lines not recorded" in d]
    assert "src/billing/**" in note and "src/docsvc/api.py" in note


def test_coverage_without_branch_data_records_no_branch_metric(ctx: RecordingContext) -> None:
    report = ctx.plan_dir / "cov.json"
    report.write_text(json.dumps({"files": {"a.py": {"summary": {"covered_lines": 1, "num_statements": 2}}}}))
    outcome = run(ctx, coverage={"file": "cov.json", "format": "coveragepy"})
    assert outcome.status == "completed"
    assert set(ctx.values()) == {"coverage.lines"}
    assert any("coverage.branches not recorded" in d for d in outcome.details)


def test_missing_coverage_report_is_an_error_but_tests_still_count(ctx: RecordingContext) -> None:
    outcome = run(
        ctx,
        junit=[str(FIXTURES / "junit" / "nested.xml")],
        coverage={"file": "coverage/lcov.info"},
    )
    assert outcome.status == "error"
    assert "no coverage report found" in outcome.message
    assert ctx.values()["total"] == 5
    assert "coverage.lines" not in ctx.values()


def test_shell_command_and_cwd(ctx: RecordingContext) -> None:
    sub = ctx.plan_dir / "svc"
    sub.mkdir()
    source = FIXTURES / "junit" / "go-junit-report.xml"
    outcome = run(
        ctx, command=f"cp '{source}' report.xml && exit 1", shell=True, cwd="svc", junit="report.xml"
    )
    assert outcome.status == "completed", outcome
    assert ctx.values()["failed"] == 2
    assert ctx.values()["command.exit_code"] == 1


def test_string_command_keeps_expanded_paths_with_spaces_whole(ctx: RecordingContext) -> None:
    spaced = ctx.work_dir / "with space"
    spaced.mkdir()
    shutil.copy(FIXTURES / "junit" / "nested.xml", spaced / "src.xml")
    code = "import shutil, sys; shutil.copy(sys.argv[1], 'out.xml')"
    outcome = run(
        ctx, command=f'"{sys.executable}" -c "{code}" "{{work_dir}}/with space/src.xml"', junit="out.xml"
    )
    assert outcome.status == "completed", outcome
    assert ctx.values()["total"] == 5


def test_missing_cwd(ctx: RecordingContext) -> None:
    outcome = run(ctx, command=python("pass"), cwd="nowhere", junit=["x.xml"])
    assert outcome.status == "error"
    assert "nowhere" in outcome.message


# -- settings -------------------------------------------------------------------------------


def test_settings_defaults_and_durations() -> None:
    settings = TestsSettings(junit="a.xml", timeout="10m")
    assert settings.junit == ["a.xml"]
    assert settings.timeout == 600.0
    assert settings.command is None and settings.shell is False and settings.env == {}
    assert TestsSettings(junit=["a"], timeout=30).timeout == 30.0


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "needs `junit`"),
        ({"junit": "a", "colour": "red"}, "Extra inputs are not permitted"),
        ({"junit": "a", "timeout": "soon"}, "not a duration"),
        ({"junit": "a", "command": []}, "must not be empty"),
        ({"junit": "a", "command": "pytest 'unclosed"}, "cannot be split into words"),
        ({"coverage": {"file": "c", "format": "jacoco"}}, "cobertura"),
        ({"coverage": {"file": "c", "treshold": 1}}, "Extra inputs"),
        ({"coverage": {"file": "c", "max_json_size": "5s"}}, "not a size"),
    ],
)
def test_bad_settings(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        TestsSettings(**settings)


def test_max_json_size_accepts_units() -> None:
    settings = TestsSettings(coverage={"file": "c.json", "max_json_size": "1GiB"})
    assert settings.coverage is not None and settings.coverage.max_json_size == 1024**3


def test_registered_as_an_entry_point() -> None:
    from gonogo.plugins import load_kind

    assert load_kind("tests") is TestsCheck
    assert TestsCheck.kind == "tests" and TestsCheck.Settings is TestsSettings


def test_coverage_split_across_reports_is_merged(ctx: RecordingContext) -> None:
    (ctx.plan_dir / "cov").mkdir()
    (ctx.plan_dir / "cov" / "web.info").write_text("SF:web/a.js\nDA:1,1\nDA:2,0\nend_of_record\n")
    (ctx.plan_dir / "cov" / "api.info").write_text("SF:api/b.js\nDA:1,1\nDA:2,1\nend_of_record\n")
    outcome = run(ctx, coverage={"file": "cov/*.info", "critical": ["api/**"]})
    assert outcome.status == "completed", outcome
    assert ctx.values()["coverage.lines"] == pytest.approx(3 / 4)
    assert ctx.values()["coverage.critical.lines"] == 1.0
    artifact = ctx.metric("coverage.lines").artifact
    assert artifact is not None and artifact.name == "coverage-reports.json"
    listed = json.loads(ctx.artifacts[artifact.sha256])["reports"]
    assert [entry["file"] for entry in listed] == ["cov/api.info", "cov/web.info"]


def test_a_hostile_coverage_report_is_an_error_and_kept(ctx: RecordingContext) -> None:
    shutil.copy(FIXTURES / "coverage" / "hostile" / "cobertura_bomb.xml", ctx.plan_dir / "coverage.xml")
    outcome = run(ctx, coverage={"file": "coverage.xml"})
    assert outcome.status == "error"
    assert "coverage.xml:2: refused" in outcome.message
    assert ctx.metrics == {}
    assert ctx.artifact_names == ["coverage.xml"]


def test_a_report_that_contradicts_itself_is_named_in_the_details(ctx: RecordingContext) -> None:
    # The suite's header says tests=6 but it lists no testcase: counted from the header.
    report = FIXTURES / "junit" / "corpus" / "other" / "header-only-pytest.xml"
    outcome = run(ctx, junit=[str(report)])
    assert outcome.status == "completed", outcome
    assert ctx.values()["total"] == 6
    [note] = [detail for detail in outcome.details if "lists no testcase" in detail]
    assert note.startswith(f'{report}: <testsuite name="pytest"> lists no testcase')
