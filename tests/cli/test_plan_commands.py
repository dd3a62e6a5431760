"""`gonogo init` and `gonogo validate`: exit 2 with file, line and field for a bad plan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_support import gonogo, write_plan

from gonogo import cli
from gonogo.report import FORMATS


def test_init_writes_a_starter_plan_that_validates(tmp_path: Path) -> None:
    created = gonogo("init", cwd=tmp_path)
    assert created.code == 0, created.text
    assert (tmp_path / "gonogo.yaml").read_text().startswith("# gonogo plan for ")
    valid = gonogo("validate", cwd=tmp_path)
    assert valid.code == 0, valid.text
    assert "is a valid plan" in valid.out
    again = gonogo("init", cwd=tmp_path)
    assert again.code == 2 and "already exists" in again.err


def test_a_typo_exits_2_naming_line_field_and_the_right_key(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        system:
          services:
            api:
              command: [sleep, "1"]
              redy: {tcp: "127.0.0.1:1"}
        """,
    )
    result = gonogo("validate", cwd=tmp_path)
    assert result.code == 2
    assert f"{plan}:5:7: system.services.api.redy: unknown key 'redy'; did you mean 'ready'?" in result.err
    assert "Traceback" not in result.text


def test_a_wrong_type_exits_2_naming_line_and_field(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        system:
          services:
            api:
              command: [sleep, "1"]
              grace: forever
        """,
    )
    result = gonogo("validate", cwd=tmp_path)
    assert result.code == 2
    assert f"{plan}:5:14: system.services.api.grace: 'forever' is not a duration" in result.err
    assert "Traceback" not in result.text


def test_a_missing_field_exits_2_naming_the_field(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        checks:
          e2e:
            kind: journeys
            journeys:
              home:
                iterations: 2
        """,
    )
    result = gonogo("validate", cwd=tmp_path)
    assert result.code == 2
    assert f"{plan}:6:9: checks.e2e.journeys.home.steps: required field 'steps' is missing" in result.err


def test_run_refuses_a_bad_plan_with_exit_2_and_starts_nothing(tmp_path: Path) -> None:
    write_plan(tmp_path, "system: {services: {api: {command: [sleep, '60'], depends_on: [db]}}}\n")
    result = gonogo("run", cwd=tmp_path)
    assert result.code == 2
    assert "system.services.api.depends_on[0]: 'db' is not a service of this plan" in result.err
    assert not (tmp_path / ".gonogo").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert gonogo("frobnicate", cwd=tmp_path).code == 2
    assert gonogo("validate", "missing.yaml", cwd=tmp_path).code == 2


def test_a_gate_that_could_only_end_not_measured_exits_2_before_anything_runs(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        system: {base_url: "http://127.0.0.1:8080"}
        checks:
          load: {kind: load, rate: 10/s, duration: 5s, requests: [{name: health, path: /health}]}
        gates:
          load.endpoint.helth.latency.p95: "< 1s"
        """,
    )
    result = gonogo("validate", cwd=tmp_path)
    assert result.code == 2
    assert (
        f"{plan}:5:3: gates.load.endpoint.helth.latency.p95: check 'load' (load) records no metric "
        "'endpoint.helth.latency.p95' with its settings, so this gate could only end not measured; "
        "did you mean load.endpoint.health.latency.p95?"
    ) in result.err
    assert "Traceback" not in result.text


def test_validate_says_which_driver_runs_each_checks_journeys(tmp_path: Path) -> None:
    """Under a load or soak check with journeys, `validate` says whether the C engine runs them
    or the Python driver, with every reason (not only the first)."""
    upload = "{name: send, request: {method: POST, path: /f, multipart: {a: b}}}"
    write_plan(
        tmp_path,
        f"""
        system: {{base_url: "http://127.0.0.1:8080"}}
        checks:
          fast:
            kind: load
            model: closed
            users: 2
            duration: 1s
            journeys:
              browse:
                steps:
                  - {{name: me, request: {{path: /me, auth: {{basic: ["u-{{uuid}}", "pw-{{iteration}}"]}}}}}}
          slow:
            kind: load
            model: closed
            users: 2
            duration: 1s
            journeys:
              upload:
                steps:
                  - {upload}
                  - {{name: check, request: {{path: /}}, expect: {{text: {{matches: "o+k"}}}}}}
          long: {{kind: soak, rate: 5, duration: 1m, journeys: {{upload: {{steps: [{upload}]}}}}}}
          plain: {{kind: load, rate: 5, duration: 1s, requests: [{{name: home, path: /}}]}}
        """,
    )
    result = gonogo("validate", cwd=tmp_path, COLUMNS="300")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    under = {line.strip(): lines[number + 1].strip() for number, line in enumerate(lines) if "check " in line}
    assert under["check fast: load"] == "journeys on the C engine"
    assert under["check slow: load"] == (
        "journeys on the Python driver (2 features the C engine cannot run): journey upload, step send: "
        "multipart bodies; journey upload, step check: expect.text other than one `contains`"
    )
    assert under["check long: soak"] == (
        "journeys on the Python driver (1 feature the C engine cannot run): journey upload, step send: "
        "multipart bodies"
    )
    assert under["check plain: load"].endswith("minimum score 80")  # plain requests: nothing under it
    # the gates, one a line; the soak's own (the plan gates nothing of it) say so
    assert "    long.error_rate < 1% (the soak kind's own, as no gate names long)" in lines


def test_help_and_validate_load_neither_the_store_nor_the_runner(tmp_path: Path) -> None:
    """They start in a fraction of the time a run needs: SQLAlchemy, the system and the fault
    machinery are imported only by the commands that use them."""
    write_plan(tmp_path, "checks: {unit: {kind: tests, junit: [report.xml]}}\n")
    script = (
        "import sys\n"
        "from gonogo.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'gonogo.system', 'gonogo.faults', 'gonogo.run') "
        "if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    for args in (["--help"], ["validate", "gonogo.yaml"]):
        done = subprocess.run(
            [sys.executable, "-c", script, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert "heavy: []" in done.stdout, (args, done.stdout, done.stderr)


def test_the_report_command_offers_every_report_format() -> None:
    assert set(cli.REPORT_FORMATS) == set(FORMATS)


def test_the_runner_loads_scipy_only_to_fit_a_trend() -> None:
    """Importing scipy.stats takes a second: a run that fits no resource trend never pays it."""
    script = "import sys, gonogo.cli, gonogo.run; print('scipy.stats' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", (done.stdout, done.stderr)
