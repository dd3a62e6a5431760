"""The `load_results` check end to end: real commands writing real result files, a recording
context (tests/checks/recording_context.py), and a plan that uses the kind."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from gonogo.checks.base import CheckOutcome
from gonogo.checks.load_results import LoadResultsCheck, LoadResultsSettings
from gonogo.errors import PlanError
from gonogo.plan import parse_plan
from gonogo.plugins import load_kind

if TYPE_CHECKING:  # only the `ctx` fixture (conftest.py beside this file) is used at run time
    from recording_context import RecordingContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "load_results"
K6_DATA = FIXTURES / "k6-handle-summary.json"
K6_EXPORT = FIXTURES / "k6-summary-export.json"
LOCUST_JSON = FIXTURES / "locust.json"
LOCUST_CSV = FIXTURES / "locust_stats.csv"
LOAD_METRICS = {"requests", "rps", "errors", "error_rate", "latency.p95"}

approx = pytest.approx


def run(ctx: RecordingContext, **settings: Any) -> CheckOutcome:
    return LoadResultsCheck().run(LoadResultsSettings(**settings), ctx)


def copy_to(target: str, source: Path, exit_code: int = 0) -> list[str]:
    """A command that writes `source`'s content to `target` (a placeholder is fine), as a load
    tool writes its summary at the end of a run."""
    code = (
        f"import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2]); print('done'); sys.exit({exit_code})"
    )
    return [sys.executable, "-c", code, str(source), target]


def test_k6_run_by_its_command(ctx: RecordingContext) -> None:
    outcome = run(ctx, command=copy_to("{work_dir}/summary.json", K6_DATA), file="{work_dir}/summary.json")
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert values["requests"] == 2400
    assert values["rps"] == approx(79.95788884520819)
    assert (values["errors"], values["error_rate"]) == (12, approx(0.005))
    assert values["duration"] == approx(30.0158)
    assert values["latency.p95"] == approx(0.1317739)
    assert values["latency.p99"] == approx(0.4025518)
    assert values["latency.p99_9"] == approx(1.2033391)
    assert values["checks.pass_rate"] == approx(0.995)
    assert values["endpoint.GET_api_items.latency.p50"] == approx(0.0229003)
    assert values["endpoint.api_orders.error_rate"] == approx(0.005)
    assert values["endpoint.api_orders.requests"] == 600
    # thresholds: one per k6 metric (both of http_req_duration's must hold), and all of them
    assert values["thresholds.http_req_duration.ok"] == 0  # p(99.9)<1000 failed
    assert values["thresholds.http_req_failed.ok"] == 1
    assert values["thresholds.http_req_duration_url_http_127_0_0_1_8080_api_orders.ok"] == 0
    assert values["thresholds.checks.ok"] == 1
    assert values["thresholds.ok"] == 0
    assert values["command.exit_code"] == 0
    assert values["command.duration"] > 0

    p95 = ctx.metric("latency.p95")
    assert (p95.unit, p95.dimension) == ("seconds", "performance")
    assert p95.artifact is not None and ctx.artifacts[p95.artifact.sha256] == K6_DATA.read_bytes()
    assert p95.source.startswith(f"{ctx.work_dir}/summary.json (k6 summary) written by `")
    assert "k6 trend statistics" in p95.source
    assert p95.window == (ctx.commands[0].started_at, ctx.commands[0].ended_at)
    assert (ctx.metric("error_rate").unit, ctx.metric("error_rate").dimension) == ("ratio", "reliability")
    assert (ctx.metric("errors").unit, ctx.metric("requests").unit) == ("count", "count")
    assert (ctx.metric("rps").unit, ctx.metric("rps").dimension) == ("per_second", "performance")
    assert ctx.metric("checks.pass_rate").dimension == "reliability"
    assert ctx.metric("thresholds.http_req_failed.ok").dimension == "reliability"
    assert ctx.metric("thresholds.http_req_duration.ok").labels == {
        "k6_metric": "http_req_duration",
        "thresholds": "p(95)<200; p(99.9)<1000",
    }
    assert ctx.metric("endpoint.api_orders.rps").labels == {"endpoint": "http://127.0.0.1:8080/api/orders"}
    assert ctx.metric("command.duration").artifact == ctx.commands[0].output

    assert outcome.message == (
        "command exited 0 in "
        f"{ctx.commands[0].duration:.1f} s; k6 summary {ctx.work_dir}/summary.json: 2400 requests, "
        "0.50% errors, p95 131.8 ms, 80.0/s, k6 thresholds: 9 of 11 held"
    )
    assert "k6 threshold failed: http_req_duration p(99.9)<1000" in outcome.details
    assert ctx.progress_messages[0].startswith("running ")


def test_k6_summary_export_already_there(ctx: RecordingContext) -> None:
    shutil.copy(K6_EXPORT, ctx.plan_dir / "k6-summary.json")
    outcome = run(ctx, file="k6-*.json", format="k6")
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert values["requests"] == 1200
    assert values["latency.p50"] == approx(0.0613)
    assert "latency.p99" not in values  # not measured, never zero
    assert "duration" not in values
    assert values["endpoint.login.requests"] == 300
    assert "endpoint.login.error_rate" not in values
    assert values["thresholds.http_req_failed.ok"] == 0
    assert ctx.metric("requests").window is None  # neither a command nor the file gives one
    assert ctx.metric("requests").source == "k6-summary.json (k6 summary)"
    assert any("p(99), p(99.9) not in the summary" in note for note in outcome.details)
    assert ctx.commands == []


def test_locust_json_with_per_second_series(ctx: RecordingContext) -> None:
    (ctx.plan_dir / "results").mkdir()
    shutil.copy(LOCUST_JSON, ctx.plan_dir / "results" / "stats.json")
    outcome = run(ctx, file="results/*.json")
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert (values["requests"], values["errors"], values["error_rate"]) == (40, 3, approx(0.075))
    assert values["duration"] == approx(9.85)
    assert values["latency.p50"] == approx(0.040)
    assert values["latency.p99"] == approx(1.3872)
    assert values["endpoint.GET_api_items_id.latency.max"] == approx(0.0224)
    assert values["endpoint.POST_api_login.error_rate"] == approx(0.1)
    assert not any(name.startswith(("checks.", "thresholds.")) for name in values)
    metric = ctx.metric("latency.p95")
    assert "Locust's rounded response-time buckets" in metric.source
    assert metric.window is not None and metric.window[0].timestamp() == approx(1700000000.1)
    assert ctx.metric("endpoint.GET_api_items.requests").labels == {
        "endpoint": "GET /api/items",
        "method": "GET",
    }
    assert [count for _, count in ctx.series["rps"]] == [3, 4, 4, 4, 4, 5, 5, 4, 4, 3]
    assert [rate for _, rate in ctx.series["error_rate"]] == approx(
        [0, 0, 0, 1 / 4, 0, 1 / 5, 0, 1 / 4, 0, 0]
    )
    assert ctx.artifact_names == ["results/stats.json"]
    assert ctx.stored[0].media_type == "application/json"
    assert "Locust JSON stats results/stats.json: 40 requests, 7.50% errors, p95 310.0 ms" in outcome.message


def test_locust_csv_without_endpoints(ctx: RecordingContext) -> None:
    shutil.copy(LOCUST_CSV, ctx.plan_dir / "run_stats.csv")
    outcome = run(ctx, file="run_stats.csv", endpoints=False)
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert values["rps"] == approx(4.020100483246901)
    assert values["latency.mean"] == approx(0.08623025)
    assert not any(name.startswith("endpoint.") for name in values)
    assert ctx.stored[0].media_type == "text/csv"
    assert any("duration not recorded" in note for note in outcome.details)


def test_cwd_env_and_a_failing_exit_code(ctx: RecordingContext) -> None:
    """k6 exits 99 when a threshold fails: the results still count, and the exit code is kept."""
    (ctx.plan_dir / "load").mkdir()
    code = "import os, shutil, sys; shutil.copyfile(sys.argv[1], os.environ['OUT']); sys.exit(99)"
    outcome = run(
        ctx,
        command=[sys.executable, "-c", code, str(K6_DATA)],
        cwd="load",
        env={"OUT": "{work_dir}/../plan/load/out.json"},
        file="out.json",
    )
    assert outcome.status == "completed", outcome
    assert ctx.value("command.exit_code") == 99
    assert ctx.value("requests") == 2400
    assert any("the command exited 99" in note for note in outcome.details)
    assert ctx.metric("requests").source.startswith("out.json (k6 summary) written by `")


def test_a_shell_command(ctx: RecordingContext) -> None:
    outcome = run(
        ctx,
        command=f"cp '{LOCUST_JSON}' \"$DEST\"",
        shell=True,
        env={"DEST": "{work_dir}/l.json"},
        file="{work_dir}/l.json",
    )
    assert outcome.status == "completed", outcome
    assert ctx.value("requests") == 40


def test_a_file_left_by_an_earlier_run_is_ignored(ctx: RecordingContext) -> None:
    stale = ctx.plan_dir / "summary.json"
    shutil.copy(K6_DATA, stale)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    outcome = run(
        ctx, command=[sys.executable, "-c", "print('k6 crashed before its summary')"], file="summary.json"
    )
    assert outcome.status == "error"
    assert "the command wrote no results file: nothing new matches summary.json" in outcome.message
    assert any("left by an earlier run" in note and "summary.json" in note for note in outcome.details)
    assert any("k6 crashed before its summary" in detail for detail in outcome.details)
    assert set(ctx.values()) == {"command.duration", "command.exit_code"}
    assert stale.exists()  # ignored, never deleted


def test_the_fresh_file_is_chosen_among_stale_ones(ctx: RecordingContext) -> None:
    for name in ("a.json", "b.json"):
        shutil.copy(K6_EXPORT, ctx.plan_dir / name)
        os.utime(ctx.plan_dir / name, (time.time() - 3600,) * 2)
    outcome = run(ctx, command=copy_to("c.json", K6_DATA), file="*.json")
    assert outcome.status == "completed", outcome
    assert ctx.value("requests") == 2400  # c.json, the one this command wrote
    assert any("ignored 2 results file(s)" in note for note in outcome.details)


def test_command_that_does_not_exist(ctx: RecordingContext) -> None:
    outcome = run(ctx, command="gonogo-no-such-load-tool run script.js", file="summary.json")
    assert outcome.status == "error"
    assert "could not be started" in outcome.message and "gonogo-no-such-load-tool" in outcome.message
    assert ctx.metrics == {}


def test_command_that_times_out(ctx: RecordingContext) -> None:
    started = time.monotonic()
    outcome = run(
        ctx,
        command=[sys.executable, "-c", "import time; open('s.json', 'w').write('{'); time.sleep(30)"],
        file="s.json",
        timeout="500ms",
    )
    assert time.monotonic() - started < 10
    assert outcome.status == "error"
    assert "timed out" in outcome.message
    assert set(ctx.values()) == {"command.duration"}


def test_several_files_match(ctx: RecordingContext) -> None:
    for name in ("one_stats.csv", "two_stats.csv"):
        shutil.copy(LOCUST_CSV, ctx.plan_dir / name)
    outcome = run(ctx, file="*_stats.csv")
    assert outcome.status == "error"
    assert "2 results files match *_stats.csv: one_stats.csv, two_stats.csv" in outcome.message
    assert ctx.metrics == {}


def test_no_file(ctx: RecordingContext) -> None:
    outcome = run(ctx, file="results/summary.json")
    assert outcome.status == "error"
    assert outcome.message == f"no results file: nothing matches results/summary.json in {ctx.plan_dir}"


def test_a_truncated_file_is_kept_as_evidence_and_measures_nothing(ctx: RecordingContext) -> None:
    data = LOCUST_JSON.read_bytes()
    (ctx.plan_dir / "stats.json").write_bytes(data[: len(data) // 2])
    outcome = run(ctx, file="stats.json")
    assert outcome.status == "error"
    assert str(ctx.plan_dir / "stats.json") in outcome.message and "truncated" in outcome.message
    assert ctx.metrics == {}
    assert ctx.artifact_names == ["stats.json"]


def test_a_file_of_the_wrong_format(ctx: RecordingContext) -> None:
    shutil.copy(LOCUST_JSON, ctx.plan_dir / "summary.json")
    outcome = run(ctx, file="summary.json", format="k6")
    assert outcome.status == "error"
    assert "a JSON list; expected a k6 end-of-test summary" in outcome.message
    assert ctx.metrics == {}


def test_a_huge_file_is_refused_and_not_stored(ctx: RecordingContext) -> None:
    with (ctx.plan_dir / "huge.json").open("wb") as handle:
        handle.truncate(300 * 2**20)  # sparse
    outcome = run(ctx, file="huge.json")
    assert outcome.status == "error"
    assert "refused" in outcome.message and "300 MiB" in outcome.message
    assert ctx.stored == [] and ctx.metrics == {}


def test_cwd_that_is_not_a_directory(ctx: RecordingContext) -> None:
    outcome = run(ctx, cwd="nowhere", file="x.json")
    assert outcome.status == "error" and "is not a directory" in outcome.message


# -- settings and plans ----------------------------------------------------------------------------


def test_the_kind_is_registered() -> None:
    assert load_kind("load_results") is LoadResultsCheck
    assert LoadResultsCheck.kind == "load_results"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "file"),
        ({"file": "  "}, "file must name the results file"),
        ({"file": "a.json", "format": "jmeter"}, "'auto', 'k6', 'locust-json' or 'locust-csv'"),
        ({"file": "a.json", "timeout": 0}, "a timeout of 0"),
        ({"file": "a.json", "command": ""}, "a command must not be empty"),
        ({"file": "a.json", "command": "k6 run 'script.js"}, "cannot be split into words"),
        ({"file": "a.json", "endpoint": False}, "Extra inputs are not permitted"),
    ],
)
def test_settings_errors(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        LoadResultsSettings(**settings)


def test_settings_defaults() -> None:
    settings = LoadResultsSettings(file="summary.json", timeout="10m")
    assert (settings.format, settings.endpoints, settings.command, settings.timeout) == (
        "auto",
        True,
        None,
        600.0,
    )


PLAN = """
name: shop
system:
  base_url: http://127.0.0.1:8080
checks:
  k6:
    kind: load_results
    command: k6 run --summary-export={work_dir}/summary.json load/script.js
    file: "{work_dir}/summary.json"
    format: k6
    timeout: 15m
    env: {BASE_URL: "{base_url}"}
  locust:
    kind: load_results
    file: results/run_stats.csv
    endpoints: false
    needs_system: false
gates:
  k6.latency.p95: "< 500ms"
  k6.error_rate: "< 1%"
  k6.thresholds.ok: "== 1"
  "*.rps": {expr: ">= 50/s", severity: should}
  locust.latency.p99: "< 2s"
"""


def test_a_plan_using_the_kind_validates(tmp_path: Path) -> None:
    plan = parse_plan(PLAN, tmp_path / "gonogo.yaml")
    k6 = plan.checks["k6"]
    assert k6.kind == "load_results"
    assert isinstance(k6.settings, LoadResultsSettings)
    assert k6.settings.timeout == 900.0 and k6.timeout is None  # the kind applies its own timeout
    assert k6.settings.env == {"BASE_URL": "{base_url}"}
    locust = plan.checks["locust"]
    assert isinstance(locust.settings, LoadResultsSettings)
    assert (locust.settings.endpoints, locust.needs_system) == (False, False)
    assert [gate.metric for gate in plan.gates] == [
        "k6.latency.p95",
        "k6.error_rate",
        "k6.thresholds.ok",
        "*.rps",
        "locust.latency.p99",
    ]


def test_a_plan_with_a_mistake_names_the_field(tmp_path: Path) -> None:
    text = PLAN.replace("    format: k6\n", "    format: gatling\n").replace(
        "endpoints: false", "endpionts: false"
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, tmp_path / "gonogo.yaml")
    issues = [str(issue) for issue in caught.value.issues]
    assert any("checks.k6.format" in issue and "gatling" in issue for issue in issues), issues
    assert any("endpionts" in issue and "endpoints" in issue for issue in issues), issues
