"""`gonogo run` on small real systems, and reading its evidence back."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from cli_support import JUNIT_FIXTURE, gonogo, gonogo_env, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")


def latest_report(plan_dir: Path) -> dict:  # type: ignore[type-arg]
    (run_dir,) = sorted((plan_dir / ".gonogo" / "runs").iterdir())[-1:]
    return json.loads((run_dir / "report.json").read_text())


def test_a_passing_run_is_go_with_four_reports(web_plan: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    result = gonogo("run", cwd=web_plan.parent, GITHUB_STEP_SUMMARY=str(summary))
    assert result.code == 0, result.text
    # progress, the gate table and the verdict
    assert "web  ready after" in result.out
    assert "smoke.success_rate" in result.out and "GO" in result.out
    report = latest_report(web_plan.parent)
    assert report["schema"] == "gonogo.report/1"
    assert report["run"]["status"] == "completed" and report["verdict"]["decision"] == "GO"
    gates = {g["metric"]: g for g in report["gates"]}
    assert gates["smoke.success_rate"]["status"] == "pass"
    assert gates["smoke.success_rate"]["value"] == 1.0
    assert gates["smoke.home.index.latency.p95"]["source"].startswith("journey home")
    metrics = {m["full_name"]: m for m in report["metrics"]}
    # the ingested JUnit file: 9 tests, 4 passed, 2 skipped
    assert metrics["unit.total"]["value"] == 9 and metrics["unit.passed"]["value"] == 4
    assert metrics["unit.total"]["artifact_sha256"]
    assert {"web.log", "journey-home.json", str(JUNIT_FIXTURE)} <= {a["name"] for a in report["artifacts"]}
    resources = {(r["labels"]["service"], r["name"]): r for r in report["resources"]}
    assert resources[("web", "rss")]["maximum"] > 1_000_000  # a real Python process
    assert resources[("web", "threads")]["samples"] >= 1
    assert any(e["source"] == "web" and e["kind"] == "ready" for e in report["events"])
    run_dir = web_plan.parent / ".gonogo" / "runs" / report["run"]["id"]
    written = {p.name for p in run_dir.iterdir()}
    assert written >= {"report.json", "summary.md", "gates.junit.xml", "report.html"}
    assert "# gonogo: web — **GO**" in summary.read_text()
    suite = ElementTree.parse(run_dir / "gates.junit.xml").getroot().find("testsuite")
    # the plan's 2 gates, the web service's own (no unplanned exit, a clean stop), and no flaky test
    assert suite is not None and suite.get("tests") == "5" and suite.get("failures") == "0"
    names = {case.get("name", "") for case in suite.iter("testcase")}
    assert {"service.web.exits.unplanned == 0", "service.web.shutdown.clean == 1"} <= names


def test_reports_regenerate_from_the_store(web_plan: Path) -> None:
    assert gonogo("run", cwd=web_plan.parent).code == 0
    report = latest_report(web_plan.parent)
    run_id = report["run"]["id"]
    run_dir = web_plan.parent / ".gonogo" / "runs" / run_id
    again = gonogo("report", run_id[:15], "--format", "json", cwd=web_plan.parent)
    assert again.code == 0, again.text
    assert again.out == (run_dir / "report.json").read_text()
    markdown = gonogo("report", "latest", "--format", "md", cwd=web_plan.parent)
    assert markdown.out == (run_dir / "summary.md").read_text()
    history = gonogo("history", cwd=web_plan.parent)
    assert run_id in history.out and "completed" in history.out and "GO" in history.out
    shown = gonogo("show", run_id, cwd=web_plan.parent)
    assert "smoke.home.index.latency.p95" in shown.out and "unit.pass_rate" in shown.out
    assert gonogo("show", "nope", cwd=web_plan.parent).code == 2


def test_a_failing_must_gate_is_no_go_with_the_reason(web_plan: Path) -> None:
    text = web_plan.read_text().replace('smoke.success_rate: ">= 100%"', 'unit.pass_rate: ">= 99%"')
    web_plan.write_text(text)
    result = gonogo("run", cwd=web_plan.parent)
    assert result.code == 1, result.text
    report = latest_report(web_plan.parent)
    assert report["verdict"]["decision"] == "NO-GO"
    assert any(r.startswith("unit.pass_rate = 57.14% fails >= 99%") for r in report["verdict"]["reasons"])


def test_a_journey_step_answering_an_error_is_no_go_naming_the_step(web_plan: Path) -> None:
    web_plan.write_text(web_plan.read_text().replace("path: /index.html", "path: /missing.html"))
    result = gonogo("run", cwd=web_plan.parent)
    assert result.code == 1, result.text
    report = latest_report(web_plan.parent)
    assert "smoke.success_rate = 0% fails >= 100%" in " ".join(report["verdict"]["reasons"])
    smoke = next(c for c in report["checks"] if c["name"] == "smoke")
    assert "home #1 step index: GET http://127.0.0.1:" in smoke["message"]
    assert "/missing.html → 404: expected status 200, got 404" in smoke["message"]


def test_a_service_that_never_gets_ready_exits_3_with_its_last_log_lines(tmp_path: Path) -> None:
    write_plan(
        tmp_path,
        """
        system:
          services:
            stuck:
              command:
                - python
                - -c
                - "import time; print('warming up the flux capacitor', flush=True); time.sleep(60)"
              ready: {tcp: "127.0.0.1:{port.stuck}", timeout: 2s}
        checks:
          smoke:
            kind: journeys
            base_url: "http://127.0.0.1:{port.stuck}"
            journeys: {home: {steps: [{name: home, request: {path: /}}]}}
        gates:
          smoke.success_rate: ">= 100%"
        """,
    )
    result = gonogo("run", cwd=tmp_path)
    assert result.code == 3, result.text
    assert "stuck" in result.out and "warming up the flux capacitor" in result.out
    report = latest_report(tmp_path)
    assert report["run"]["status"] == "failed"
    assert report["verdict"]["decision"] == "NO-GO"
    assert report["checks"][0]["status"] == "not_run"
    assert report["gates"][0]["status"] == "not_measured"


def test_a_test_command_that_cannot_start_is_not_measured(tmp_path: Path) -> None:
    write_plan(
        tmp_path,
        """
        checks:
          unit:
            kind: tests
            command: [no-such-test-runner, --all]
            junit: [report.xml]
        gates:
          unit.pass_rate: ">= 99%"
        """,
    )
    result = gonogo("run", cwd=tmp_path)
    assert result.code == 1, result.text
    report = latest_report(tmp_path)
    gates = {gate["metric"]: gate for gate in report["gates"]}
    assert gates["unit.pass_rate"]["status"] == "not_measured"
    # no report read, no per-test outcomes: the default gate on flaky tests is not measured either
    assert gates["history.flaky_tests"]["status"] == "not_measured"
    assert gates["history.flaky_tests"]["source"].startswith("no check of this run stored per-test outcomes")
    assert report["checks"][0]["status"] == "error"


@pytest.fixture
def running_site(tmp_path: Path) -> Iterator[int]:
    """An environment that is already running, started by the test, not by gonogo."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("ok\n")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
            import http.server, functools, sys
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
            ),
            str(site),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=gonogo_env(),
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()


def test_a_plan_with_only_a_base_url_starts_nothing(tmp_path: Path, running_site: int) -> None:
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    write_plan(
        plan_dir,
        f"""
        system:
          base_url: "http://127.0.0.1:{running_site}"
        checks:
          smoke:
            kind: journeys
            journeys: {{home: {{steps: [{{name: home, request: {{path: /index.html}}}}]}}}}
        gates:
          smoke.success_rate: ">= 100%"
        """,
    )
    result = gonogo("run", cwd=plan_dir)
    assert result.code == 0, result.text
    assert "starting" not in result.out
    report = latest_report(plan_dir)
    assert not [a for a in report["artifacts"] if a["name"].endswith(".log") and a["check"] is None]


@pytest.mark.postgresql
def test_a_team_store_on_postgresql(web_plan: Path, postgres_url: str) -> None:
    result = gonogo("run", "--store", postgres_url, cwd=web_plan.parent)
    assert result.code == 0, result.text
    history = gonogo("history", "--store", postgres_url, cwd=web_plan.parent)
    assert "web" in history.out and "GO" in history.out
    assert not (web_plan.parent / ".gonogo" / "gonogo.db").exists()
    assert JUNIT_FIXTURE.exists()


def test_an_abort_on_fail_gate_stops_a_failing_load_early(web_plan: Path) -> None:
    text = web_plan.read_text().replace(
        "gates:\n",
        "  burst:\n"
        "    kind: load\n"
        "    rate: 40/s\n"
        "    duration: 30s\n"
        "    requests: [{name: missing, path: /missing.html}]\n"
        "  mixed:\n"
        "    kind: load\n"
        "    rate: 40/s\n"
        "    duration: 30s\n"
        "    requests: [{name: home, path: /index.html, weight: 3}, {name: missing, path: /missing.html}]\n"
        "gates:\n"
        "  burst.error_rate: {expr: '< 1%', abort_on_fail: true}\n"
        # one endpoint's per-second series: the whole load's error rate (25%) holds its gate
        "  mixed.error_rate: {expr: '< 50%', abort_on_fail: true}\n"
        "  mixed.endpoint.missing.error_rate: {expr: '< 1% for 2s', abort_on_fail: true}\n",
    )
    web_plan.write_text(text)
    result = gonogo("run", cwd=web_plan.parent)
    assert result.code == 1, result.text
    report = latest_report(web_plan.parent)
    burst = next(c for c in report["checks"] if c["name"] == "burst")
    assert burst["message"].startswith("stopped early: gate burst.error_rate < 1% failed while running")
    sent = next(m for m in report["metrics"] if m["full_name"] == "burst.requests")
    assert sent["value"] < 40 * 10  # far less than the 30 s planned
    (gate,) = [g for g in report["gates"] if g["metric"] == "burst.error_rate"]
    assert gate["status"] == "fail" and gate["value"] == 1.0
    mixed = next(c for c in report["checks"] if c["name"] == "mixed")
    assert mixed["message"].startswith(
        "stopped early: gate mixed.endpoint.missing.error_rate < 1% for 2s failed while running"
    ), mixed
    sent = next(m for m in report["metrics"] if m["full_name"] == "mixed.requests")
    assert sent["value"] < 40 * 10
    statuses = {g["metric"]: g["status"] for g in report["gates"] if g["metric"].startswith("mixed.")}
    assert statuses == {"mixed.error_rate": "pass", "mixed.endpoint.missing.error_rate": "fail"}, statuses


def test_a_reader_that_goes_away_does_not_cut_the_run_short(web_plan: Path) -> None:
    """`gonogo run | head -1`: the run goes on quietly, keeps its verdict and exits with its code
    (not 1, which would read as NO-GO)."""

    process = subprocess.Popen(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=web_plan.parent,
        env=gonogo_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert "started" in process.stdout.readline()
        process.stdout.close()  # like `head -1` exiting
        errors = process.stderr.read()
        assert process.wait(timeout=120) == 0, errors
        assert "Traceback" not in errors
    finally:
        if process.poll() is None:  # a failed assertion must not leave the run going
            process.terminate()
            process.wait(timeout=60)
    report = latest_report(web_plan.parent)
    assert report["run"]["status"] == "completed" and report["verdict"]["decision"] == "GO"


def test_a_bug_exits_3_with_its_traceback_never_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gonogo import cli
    from gonogo.evidence import Store

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the store")

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gonogo").mkdir()
    (tmp_path / ".gonogo" / "gonogo.db").touch()  # a store is there; opening it goes wrong
    monkeypatch.setattr(Store, "open", broken)
    with pytest.raises(SystemExit) as exited:
        cli.main(["history"])
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert "RuntimeError: a bug in the store" in err and "gonogo failed unexpectedly" in err


def test_same_named_artifacts_of_many_checks_are_all_kept_and_retrievable(tmp_path: Path) -> None:
    """Two test checks write `tests.log`, two journey checks write `journey-home.json`: every
    metric's artifact is in report.json and comes back out of the store byte for byte."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hello</h1>\n")
    checks: dict[str, object] = {}
    for letter in "ab":
        copy = f"import shutil; print('suite {letter}'); shutil.copy('{JUNIT_FIXTURE}', 'junit-{letter}.xml')"
        checks[f"unit_{letter}"] = {
            "kind": "tests",
            "command": ["python", "-c", copy],
            "junit": [f"junit-{letter}.xml"],
        }
    for letter, iterations in (("a", 1), ("b", 2)):
        steps = [
            {"name": "index", "request": {"path": "/index.html"}, "expect": {"status": 200}},
            {"name": "missing", "request": {"path": f"/nothing-{letter}"}, "expect": {"status": 200}},
        ]
        checks[f"e2e_{letter}"] = {
            "kind": "journeys",
            "journeys": {"home": {"iterations": iterations, "steps": steps}},
        }
    web = {
        "command": [
            "python",
            "-m",
            "http.server",
            "{port.web}",
            "--bind",
            "127.0.0.1",
            "--directory",
            "site",
        ],
        "ready": {"http": "http://127.0.0.1:{port.web}/", "timeout": "20s"},
        "grace": "2s",
    }
    plan = {
        "name": "many",
        "system": {"services": {"web": web}, "base_url": "http://127.0.0.1:{port.web}"},
        "checks": checks,
        "gates": {"unit_a.pass_rate": ">= 0%"},
        "score": {"minimum": 0},
    }
    (tmp_path / "gonogo.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    assert gonogo("run", cwd=tmp_path).code == 0
    report = latest_report(tmp_path)
    run_id = report["run"]["id"]
    stored = {(a["check"], a["name"]): a for a in report["artifacts"]}
    for check in ("unit_a", "unit_b"):
        assert (check, "tests.log") in stored
    for check in ("e2e_a", "e2e_b"):
        assert (check, "journey-home.json") in stored and (check, "journey-failures.json") in stored
    assert stored[("unit_a", "tests.log")]["sha256"] != stored[("unit_b", "tests.log")]["sha256"]
    homes = [stored[(check, "journey-home.json")]["sha256"] for check in ("e2e_a", "e2e_b")]
    assert homes[0] != homes[1]
    with_artifact = [m for m in report["metrics"] if m["artifact_sha256"]]
    assert {m["check"] for m in with_artifact} >= {"unit_a", "unit_b", "e2e_a", "e2e_b"}
    retrieved: dict[tuple[str, str], str] = {}  # each artifact written out once: a process each
    for metric in with_artifact:
        where = (metric["artifact"]["check"], metric["artifact"]["name"])
        entry = stored[where]
        assert entry["sha256"] == metric["artifact_sha256"]
        if where not in retrieved:
            out = tmp_path / "out.bin"
            got = gonogo(*shlex.split(entry["retrieve"])[1:-2], "-o", str(out), cwd=tmp_path)
            assert got.code == 0, got.text
            retrieved[where] = hashlib.sha256(out.read_bytes()).hexdigest()
        assert retrieved[where] == metric["artifact_sha256"]
    # Without --check, a name two checks used is refused with the choices; the listing shows both.
    ambiguous = gonogo("artifacts", run_id, "tests.log", cwd=tmp_path)
    assert ambiguous.code == 2 and "--check unit_a" in ambiguous.err and "--check unit_b" in ambiguous.err
    listing = gonogo("artifacts", run_id, cwd=tmp_path)
    assert listing.code == 0 and listing.out.count("tests.log") == 2
    log = gonogo("artifacts", run_id, "tests.log", "--check", "unit_b", cwd=tmp_path)
    assert log.code == 0 and "suite b" in log.out
    typo = gonogo("artifacts", run_id, "test.log", "--check", "unit_b", cwd=tmp_path)
    assert typo.code == 2 and "did you mean 'tests.log'?" in typo.err
    summary = (tmp_path / ".gonogo" / "runs" / run_id / "summary.md").read_text()
    assert f"gonogo artifacts {run_id} tests.log --check unit_b -o tests.log" in summary
