"""Plans load into typed models; every mistake names file, line, field and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gonogo.errors import PlanError, UserError
from gonogo.plan import load_plan, parse_plan


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return [str(issue) for issue in caught.value.issues]


VALID = """
name: shop
system:
  services:
    db:
      command: [sleep, "600"]
      ready: {tcp: "127.0.0.1:{port.db}", timeout: 5s}
    api:
      command: "python -m http.server {port.api}"
      env: {DB_PORT: "{port.db}"}
      depends_on: [db]
      ready: {http: "http://127.0.0.1:{port.api}/", status: [200, 204], timeout: 1m}
      stop_signal: INT
      grace: 500ms
  base_url: "http://127.0.0.1:{port.api}"
checks:
  unit:
    kind: tests
    command: [pytest]
    junit: [reports/*.xml]
  smoke:
    kind: journeys
    journeys:
      home:
        steps:
          - name: home
            request: {method: GET, path: /}
gates:
  unit.pass_rate: ">= 99%"
  "*.success_rate": {expr: ">= 100%", severity: should}
  smoke.home.home.latency.p95: ["< 2s", {expr: "< 500ms", severity: should}]
score:
  minimum: 75
  weights: {tests: 2}
"""


def test_a_valid_plan_loads_into_typed_models(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, VALID))
    api = plan.system.services["api"]
    assert api.depends_on == ["db"]
    assert api.grace == 0.5
    assert api.stop_signal == 2
    assert api.ready is not None and api.ready.statuses == [200, 204] and api.ready.timeout == 60
    assert plan.port_names() == ["db", "api"]
    assert set(plan.checks) == {"unit", "smoke"}
    assert plan.checks["unit"].kind == "tests"
    assert [
        (g.metric, g.expr.text, g.severity) for g in plan.gates if g.metric not in plan.default_gate_metrics
    ] == [
        ("unit.pass_rate", ">= 99%", "must"),
        ("*.success_rate", ">= 100%", "should"),
        ("smoke.home.home.latency.p95", "< 2s", "must"),
        ("smoke.home.home.latency.p95", "< 500ms", "should"),
    ]
    assert plan.gates[0].expr.value == pytest.approx(0.99)
    assert plan.score.minimum == 75


def test_a_directory_means_its_gonogo_yaml(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    assert load_plan(tmp_path).name == "shop"


def test_a_typo_names_line_field_and_suggests_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              comand: [sleep, "1"]
        """,
    )
    found = issues_of(path)
    assert any(
        f"{path}:4:7: system.services.api.comand: unknown key 'comand'; did you mean 'command'?" in i
        for i in found
    ), found


def test_a_wrong_type_names_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              command: [sleep, "1"]
              depends_on: 7
        """,
    )
    (issue,) = issues_of(path)
    assert issue == f"{path}:5:19: system.services.api.depends_on: expected a list (got 7)"


def test_a_missing_field_names_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              env: {A: "1"}
        """,
    )
    (issue,) = issues_of(path)
    assert issue.startswith(f"{path}:4:7: system.services.api.command:")
    assert "required field 'command' is missing" in issue


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        nmae: x
        checks:
          unit: {kind: tsts}
        gates:
          unit.pass_rate: "about 99"
        score: {minimum: 120}
        """,
    )
    found = issues_of(path)
    assert any(":1:1: nmae: unknown key 'nmae'; did you mean 'name'?" in i for i in found)
    assert any(
        ":3:16: checks.unit.kind: unknown check kind 'tsts'; did you mean 'tests'?" in i for i in found
    )
    assert any(":5:19: gates.unit.pass_rate: 'about 99' is not a threshold" in i for i in found)
    assert any(":6:18: score.minimum:" in i and "less than or equal to 100" in i for i in found)


def test_bad_values_say_what_was_expected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              command: [x]
              stop_signal: SIGNOPE
              ready: {http: "http://x/", tcp: "x:1"}
              grace: 10 parsecs
        """,
    )
    found = "\n".join(issues_of(path))
    assert "system.services.api.stop_signal: 'SIGNOPE' is not a signal name" in found
    assert "exactly one of http (a URL), tcp (host:port) or command; got http, tcp" in found
    assert "system.services.api.grace: '10 parsecs' is not a duration; expected e.g. 500ms, 2s" in found


def test_dependency_problems_point_at_the_dependency(tmp_path: Path) -> None:
    unknown = write(
        tmp_path,
        """
        system:
          services:
            api: {command: [x]}
            worker:
              command: [x]
              depends_on: [api, apii, 3]
        """,
    )
    assert issues_of(unknown) == [
        f"{unknown}:6:25: system.services.worker.depends_on[1]: 'apii' is not a service of this plan; "
        "did you mean 'api'?",
        f"{unknown}:6:31: system.services.worker.depends_on[2]: expected text; YAML read 3 as a number "
        "— put it in quotes",
    ]
    alone = write(tmp_path, "system: {services: {api: {command: [x], depends_on: [db]}}}\n")
    assert issues_of(alone) == [
        f"{alone}:1:54: system.services.api.depends_on[0]: 'db' is not a service of this plan; "
        "'api' is its only service"
    ]
    cycle = write(
        tmp_path,
        "system: {services: {a: {command: [x], depends_on: [b]}, b: {command: [x], depends_on: [a]}}}\n",
    )
    assert issues_of(cycle) == [
        f"{cycle}:1:51: system.services.a.depends_on: services depend on each other in a cycle: a -> b -> a"
    ]


def test_duplicate_gate_keys_are_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        checks: {unit: {kind: tests, junit: [a.xml]}}
        gates:
          unit.pass_rate: ">= 99%"
          unit.pass_rate: ">= 90%"
        """,
    )
    (issue,) = issues_of(path)
    assert ":4:3: gates.unit.pass_rate: duplicate key 'unit.pass_rate' (first at line 3)" in issue
    assert "use a list of thresholds" in issue


def test_a_gate_on_an_unknown_check(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        checks: {unit: {kind: tests, junit: [a.xml]}}
        gates:
          unti.pass_rate: ">= 99%"
        """,
    )
    (issue,) = issues_of(path)
    assert "no check named 'unti' in this plan; did you mean 'unit'?" in issue


def test_invalid_yaml_points_at_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "system:\n  services: [a\n")
    (issue,) = issues_of(path)
    assert issue.startswith(f"{path}:3:1:") and "invalid YAML" in issue


def test_empty_and_missing_plans(tmp_path: Path) -> None:
    assert "the plan is empty" in "\n".join(issues_of(write(tmp_path, "")))
    with pytest.raises(UserError, match="no such plan file"):
        load_plan(tmp_path / "nope.yaml")


def test_a_plan_with_only_a_base_url_starts_nothing(tmp_path: Path) -> None:
    plan = parse_plan("system: {base_url: 'http://127.0.0.1:8080'}\n", tmp_path / "p.yaml")
    assert plan.system.services == {}
    assert plan.system.base_url == "http://127.0.0.1:8080"


def test_the_starter_plan_is_valid(tmp_path: Path) -> None:
    from importlib.resources import files

    text = files("gonogo.plan").joinpath("starter.yaml").read_text().replace("{project}", "x")
    plan = parse_plan(text, tmp_path / "gonogo.yaml")
    assert "smoke" in plan.checks


def test_the_starter_plans_commented_examples_are_valid_once_uncommented(tmp_path: Path) -> None:
    import re
    from importlib.resources import files

    text = files("gonogo.plan").joinpath("starter.yaml").read_text().replace("{project}", "x")
    # the `unit` check and its gates, and the service's env (depends_on names a service to add)
    uncommented = re.sub(r"(?m)^(\s*)# (unit:|  \S|unit\.|env:)", r"\1\2", text)
    plan = parse_plan(uncommented, tmp_path / "gonogo.yaml")
    unit = plan.checks["unit"]
    assert unit.kind == "tests" and unit.needs_system is False
    assert {gate.metric for gate in plan.gates} >= {"unit.pass_rate", "unit.coverage.lines"}
    assert "DATABASE_URL" in plan.system.services["api"].env


def test_a_misspelt_dimension_in_weights_or_a_gate_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        checks: {unit: {kind: tests, junit: [a.xml]}}
        gates:
          unit.flaky: {expr: "== 0", dimension: relability}
        score:
          weights: {perfomance: 2, tests: 3, accessibility: 1}
        """,
    )
    found = issues_of(path)
    assert len(found) == 2, found
    assert found[0].startswith(
        f"{path}:3:41: gates.unit.flaky.dimension: unknown dimension 'relability'; "
        "did you mean 'reliability'?"
    )
    assert found[1].startswith(
        f"{path}:5:13: score.weights.perfomance: unknown dimension 'perfomance'; did you mean 'performance'?"
    )


def test_a_command_string_that_cannot_be_split_is_refused_before_the_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              command: "python -c 'print(1)"
              ready: {command: "test -e 'x"}
            shelled:
              command: "echo 'unbalanced but the shell says so"
              shell: true
        """,
    )
    assert issues_of(path) == [
        f'{path}:4:16: system.services.api.command: "python -c \'print(1)" cannot be split into words '
        "(No closing quotation); fix the quoting, give a list, or set shell: true",
        f'{path}:5:24: system.services.api.ready.command: "test -e \'x" cannot be split into words '
        "(No closing quotation); fix the quoting, or give a list",
    ]


def test_a_stop_signal_number_must_be_a_signal(tmp_path: Path) -> None:
    path = write(tmp_path, "system: {services: {api: {command: [x], stop_signal: 99}}}\n")
    assert issues_of(path) == [
        f"{path}:1:54: system.services.api.stop_signal: 99 is not a signal number; "
        "expected e.g. SIGTERM, SIGINT or 15"
    ]
    numbered = write(tmp_path, "system: {services: {api: {command: [x], stop_signal: 2}}}\n")
    assert load_plan(numbered).system.services["api"].stop_signal == 2


def test_wrong_types_say_what_was_expected_in_the_plans_words(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              command: 5
              shell: maybe
              ready: {http: "http://x/", status: [200, ok]}
            web:
              command: [x, 3]
        score: 80
        """,
    )
    assert issues_of(path) == [
        f"{path}:4:16: system.services.api.command: expected a list or text; YAML read 5 as a number "
        "— put it in quotes",
        f"{path}:5:14: system.services.api.shell: expected true or false (got 'maybe')",
        f"{path}:6:48: system.services.api.ready.status[1]: expected a whole number (got 'ok')",
        f"{path}:8:20: system.services.web.command[1]: expected text; YAML read 3 as a number "
        "— put it in quotes",
        f"{path}:9:8: score: expected a mapping (key: value pairs) (got 80)",
    ]


def test_urls_and_addresses_are_checked_before_the_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            api:
              command: [x, "{port.api}"]
              ready: {http: "127.0.0.1:{port.api}/health"}
            db:
              command: [x, "{port.db}"]
              ready: {tcp: "{port.db}"}
          base_url: "http://127.0.0.1:{prot.api}"
        checks:
          e2e:
            kind: journeys
            base_url: "{baseurl}/v1"
            journeys: {j: {steps: [{name: s, request: {path: /}}]}}
        """,
    )
    found = issues_of(path)
    assert len(found) == 4, found
    assert found[0].startswith(
        f"{path}:5:21: system.services.api.ready.http: expected an http:// or https:// URL with a host"
    )
    assert found[1].startswith(f"{path}:8:20: system.services.db.ready.tcp: expected host:port")
    assert found[2].startswith(
        f"{path}:9:13: system.base_url: {{prot.api}} is not a placeholder (they are {{port.NAME}}, "
    )
    assert "did you mean {port.api}?" in found[2]
    assert found[3].startswith(f"{path}:13:15: checks.e2e.base_url: {{baseurl}} is not a placeholder")
    assert "did you mean {base_url}?" in found[3]
    good = write(
        tmp_path,
        """
        system:
          services:
            api: {command: [x, "{port.api}"], ready: {http: "{base_url}/health"}}
            db: {command: [x, "{port.db}"], ready: {tcp: "localhost:{port.db}"}}
          base_url: "http://[::1]:{port.api}/v1"
        """,
    )
    assert load_plan(good).system.base_url == "http://[::1]:{port.api}/v1"


def test_a_port_only_a_client_mentions_has_no_listener(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            web:
              command: [python, -m, http.server, "{port.web}"]
              ready: {http: "http://127.0.0.1:{port.wbe}/"}
            metrics:
              command: [exporter, --port, "{port.metrics}"]  # listened on, used by no one: fine
          base_url: "http://127.0.0.1:{port.web}"
        """,
    )
    (issue,) = issues_of(path)
    assert issue == (
        f"{path}:5:21: system.services.web.ready.http: nothing listens on {{port.wbe}}: it appears "
        "nowhere else in the plan, and gonogo picks a fresh free port for every name, so no service "
        "was told to use it; did you mean {port.web}?"
    )


def test_a_timeframe_on_a_metric_without_a_per_second_series_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system: {base_url: "http://127.0.0.1:8080"}
        checks:
          load: {kind: load, rate: 10/s, duration: 5s, requests: [{name: home, path: /, component: web}]}
          unit: {kind: tests, command: [pytest], junit: [junit.xml]}
        gates:
          load.latency.p95: "< 500ms for 10s"
          "load.endpoint.*.latency.p95": "< 500ms for 10s"
          load.endpoint.home.latency.p95: "< 500ms for 10s"
          load.component.web.error_rate: "< 1% for 10s"
          load.endpoint.hom.latency.p95: "< 500ms for 10s"
          load.error_rte: {expr: "< 1% for 5s"}
          load.endpoint.home.latncy.p95: "< 500ms for 10s"
          load.latency.p90: "< 500ms for 10s"
          unit.pass_rate: ">= 99% for 3s"
          unit.duration: "< 60s"
        """,
    )
    assert issues_of(path) == [
        f"{path}:10:3: gates.load.endpoint.hom.latency.p95: check 'load' (load) records no metric "
        "'endpoint.hom.latency.p95' with its settings, so this gate could only end not measured; did you "
        "mean load.endpoint.home.latency.p95?",
        # a typo is said as one, even on a gate with a timeframe
        f"{path}:11:3: gates.load.error_rte: check 'load' (load) records no metric 'error_rte' with its "
        "settings, so this gate could only end not measured; did you mean load.error_rate?",
        f"{path}:12:3: gates.load.endpoint.home.latncy.p95: check 'load' (load) records no metric "
        "'endpoint.home.latncy.p95' with its settings, so this gate could only end not measured; did you "
        "mean load.endpoint.home.latency.p95?",
        # a metric it records, but with no per-second series
        f"{path}:13:21: gates.load.latency.p90: a timeframe ('< 500ms for 10s') applies the threshold to a "
        "per-second series, and a load check records one only for error_rate, latency.p95, latency.p99, "
        "rps (each also as component.*.<metric> and endpoint.*.<metric>); did you mean load.latency.p99?",
        f"{path}:14:19: gates.unit.pass_rate: a timeframe ('>= 99% for 3s') applies the threshold to a "
        "per-second series, and a tests check records one for none of its metrics",
    ]


def test_abort_on_fail_on_a_metric_its_check_cannot_follow_while_running_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system: {base_url: "http://127.0.0.1:8080"}
        checks:
          chat: {kind: load, rate: 10/s, duration: 5s, requests: [{name: c, path: /, stream: sse}]}
          unit: {kind: tests, command: [pytest], junit: [junit.xml]}
        gates:
          chat.endpoint.c.latency.p95: {expr: "< 1s for 5s", abort_on_fail: true}
          "chat.endpoint.*.error_rate": {expr: "< 5%", abort_on_fail: true}
          chat.stream.cut_rate: {expr: "< 0.1%", abort_on_fail: true}
          chat.requests: {expr: ">= 10", abort_on_fail: true}
          unit.pass_rate: {expr: ">= 99%", abort_on_fail: true}
        """,
    )
    followed = (
        "a load check follows only component.*.error_rate, component.*.latency.p95, "
        "component.*.latency.p99, endpoint.*.error_rate, endpoint.*.latency.p95, "
        "endpoint.*.latency.p99, error_rate, latency.p95, latency.p99 while it runs"
    )
    advice = ": this gate could never stop it (it is still judged after the run; drop abort_on_fail)"
    lead = "abort_on_fail stops a check when its gate fails while the check runs, and "
    assert issues_of(path) == [
        f"{path}:8:57: gates.chat.stream.cut_rate.abort_on_fail: {lead}{followed}{advice}",
        f"{path}:9:49: gates.chat.requests.abort_on_fail: {lead}{followed}{advice}",
        f"{path}:10:51: gates.unit.pass_rate.abort_on_fail: {lead}a tests check follows none of its "
        f"metrics while it runs{advice}",
    ]


GATED = """
system:
  base_url: "http://127.0.0.1:{port.web}"
  services:
    web: {command: "python -m http.server {port.web}", restart: on-failure}
    worker: {command: [sleep, "600"], clock: faketime}
  proxies:
    db: {listen: "127.0.0.1:{port.db_proxy}", upstream: "127.0.0.1:{port.db}"}
    api: {listen: "127.0.0.1:{port.api_proxy}", upstream: "127.0.0.1:{port.web}", protocol: http}
checks:
  load: {kind: load, rate: 10/s, duration: 5s, requests: [{name: health, path: /health}]}
  e2e:
    kind: journeys
    journeys:
      home:
        steps:
          - {name: index, request: {path: /}}
  k6: {kind: load_results, file: summary.json}
  crash:
    kind: chaos
    hypothesis: {probes: [{name: up, http: /health}]}
    faults:
      - {kill: web}
gates:
"""


def gated(tmp_path: Path, gates: str) -> Path:
    return write(tmp_path, GATED + textwrap.indent(textwrap.dedent(gates).strip(), "  ") + "\n")


def test_gates_on_metrics_every_kind_declares_are_accepted(tmp_path: Path) -> None:
    path = gated(
        tmp_path,
        """
        load.endpoint.health.latency.p95: "< 1s"
        load.component.default.error_rate: "< 1%"
        load.latency.p99_9: "< 2s"
        load.generator.valid: "== 1"
        e2e.home.index.latency.p95: "< 1s"
        e2e.home.duration.max: "< 5s"
        k6.endpoint.GET_api_items.latency.p95: "< 1s"
        k6.thresholds.http_req_duration.ok: "== 1"
        crash.service.web.time_to_ready: "< 10s"
        crash.time_to_recover: "< 10s"
        "*.error_rate": "< 1%"
        "e2e.*.success_rate": ">= 99%"
        """,
    )
    plan = load_plan(path)
    assert len([g for g in plan.gates if g.metric not in plan.default_gate_metrics]) == 12


def test_a_gate_on_a_metric_its_check_cannot_record_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    path = gated(
        tmp_path,
        """
        load.endpoint.helth.latency.p95: "< 1s"
        load.latency.p42: ["< 1s", {expr: "< 2s", severity: should}]
        e2e.home.indx.success_rate: ">= 99%"
        k6.endpoint.GET_api_items.latency.p42: "< 1s"
        crash.availability.during: ">= 99%"
        """,
    )
    not_measured = "with its settings, so this gate could only end not measured"
    assert issues_of(path) == [
        f"{path}:24:3: gates.load.endpoint.helth.latency.p95: check 'load' (load) records no metric "
        f"'endpoint.helth.latency.p95' {not_measured}; did you mean load.endpoint.health.latency.p95?",
        f"{path}:25:3: gates.load.latency.p42: check 'load' (load) records no metric 'latency.p42' "
        f"{not_measured}; did you mean load.latency.p99? (load.latency records max, mean, p50, p90, p95, "
        "p99, p99_9)",
        f"{path}:26:3: gates.e2e.home.indx.success_rate: check 'e2e' (journeys) records no metric "
        f"'home.indx.success_rate' {not_measured}; did you mean e2e.home.index.success_rate?",
        f"{path}:27:3: gates.k6.endpoint.GET_api_items.latency.p42: check 'k6' (load_results) records no "
        f"metric 'endpoint.GET_api_items.latency.p42' {not_measured}; did you mean "
        "k6.endpoint.GET_api_items.latency.p99? (k6.endpoint.GET_api_items.latency records max, mean, min, "
        "p50, p90, p95, p99, p99_9)",
        # no background load, so no availability: the experiment's own figures are suggested
        f"{path}:28:3: gates.crash.availability.during: check 'crash' (chaos) records no metric "
        f"'availability.during' {not_measured}; it records e.g. recovered, fault_applied, "
        "rollback.clean, time_to_detect, time_to_recover, hypothesis.before, "
        "service.web.time_to_ready, hypothesis.during.failed_rounds (see docs/metrics.md)",
    ]


def test_a_glob_that_matches_no_declared_metric_is_refused(tmp_path: Path) -> None:
    path = gated(
        tmp_path,
        """
        "*.error_rat": "< 1%"
        "e2e.*.latency.p90": "< 1s"
        "load.*.error_rate": "< 1%"
        """,
    )
    assert issues_of(path) == [
        f"{path}:24:3: gates.*.error_rat: the glob '*.error_rat' matches no metric that a check of this "
        "plan can record; the closest metric is k6.error_rate",
        f"{path}:25:3: gates.e2e.*.latency.p90: the glob 'e2e.*.latency.p90' matches no metric that a "
        "check of this plan can record; the closest metric is e2e.home.index.latency.p99",
    ]


def test_faults_naming_no_service_or_proxy_of_the_plan_are_refused_at_their_line(tmp_path: Path) -> None:
    faults = (
        "      - {kill: wbe}\n"
        "      - {pause: worker}\n"
        "      - {restart: db}\n"
        "      - {proxy: dbb, toxic: latency, attributes: {latency: 100}}\n"
        "      - {proxy: api, toxic: down}\n"
        "      - {http: db, status: 503}\n"
        "      - {clock: web, skew: +1h}\n"
    )
    path = gated(tmp_path, 'crash.service.wbe.time_to_ready: "< 10s"')
    path.write_text(path.read_text().replace("      - {kill: web}\n", faults))
    assert issues_of(path) == [
        f"{path}:22:16: checks.crash.faults[0].kill: 'wbe' is not a service of this plan; "
        "did you mean 'web'?",
        f"{path}:24:19: checks.crash.faults[2].restart: 'db' is not a service of this plan; expected one of: "
        "web, worker",
        f"{path}:25:17: checks.crash.faults[3].proxy: 'dbb' is not a proxy of this plan; did you mean 'db'?",
        f"{path}:26:17: checks.crash.faults[4].proxy: a toxic needs a proxy with protocol: tcp; 'api' has "
        "protocol: http (system.proxies.api)",
        f"{path}:27:16: checks.crash.faults[5].http: an http fault needs a proxy with protocol: http; 'db' "
        "has protocol: tcp (system.proxies.db)",
        f"{path}:28:17: checks.crash.faults[6].clock: a clock fault needs a service with clock: faketime; "
        "'web' has clock: real (system.services.web)",
        # the gate on the killed service's figure is the same mistake: no second message
    ]


def test_one_typo_in_a_check_gives_one_message_not_one_per_gate(tmp_path: Path) -> None:
    path = gated(
        tmp_path,
        """
        e2e.success_rate: ">= 99%"
        e2e.home.index.latency.p95: "< 1s"
        e2e.home.index.latency.p42: "< 1s"
        "e2e.*.nothing": "< 1s"
        """,
    )
    typo = path.read_text().replace("request: {path: /}}", "request: {path: /}, expct: {status: 200}}")
    path.write_text(typo)
    assert issues_of(path) == [
        f"{path}:16:47: checks.e2e.journeys.home.steps[0].expct: unknown key 'expct'; did you mean 'expect'?",
    ]


def test_text_that_yaml_reads_as_a_number_says_so_and_suggests_quotes(tmp_path: Path) -> None:
    checksum = "0" * 63 + "7"
    path = write(
        tmp_path,
        f"""
        system:
          services:
            api:
              command: [serve, --checksum, {checksum}]
              env: {{RELEASE: 1.10, DEBUG: yes, MODE: 0123}}
        """,
    )
    assert issues_of(path) == [
        f"{path}:4:36: system.services.api.command[2]: expected text; YAML read 00000000000000000000... "
        "as the number 7 — put it in quotes",
        f"{path}:5:22: system.services.api.env.RELEASE: expected text; YAML read 1.10 as the number 1.1 "
        "— put it in quotes",
        f"{path}:5:35: system.services.api.env.DEBUG: expected text; YAML read yes as the boolean true "
        "— put it in quotes",
        f"{path}:5:46: system.services.api.env.MODE: expected text; YAML read 0123 as the number 83 "
        "— put it in quotes",
    ]


def test_a_number_where_a_name_is_expected_says_what_yaml_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        checks:
          smoke:
            kind: journeys
            journeys:
              home:
                steps:
                  - {name: 0123, request: {path: /}}
        """,
    )
    (issue,) = issues_of(path)
    assert issue.endswith("steps[0].name: 83 is not a valid name; use letters, digits, '_' or '-' only; "
                          "YAML read 0123 as the number 83 — put it in quotes")  # fmt: skip


def test_a_duplicate_key_outside_the_gates_gets_no_advice_about_gates(tmp_path: Path) -> None:
    path = write(tmp_path, "system:\n  services:\n    a: {command: x}\n    a: {command: y}\n")
    (issue,) = issues_of(path)
    assert issue == f"{path}:4:5: system.services.a: duplicate key 'a' (first at line 3)"


def test_killing_a_whole_service_nobody_restarts_is_refused(tmp_path: Path) -> None:
    plan = GATED.replace(", restart: on-failure}", "}") + '  crash.fault_applied: "== 1"\n'
    path = write(tmp_path, plan)
    (issue,) = issues_of(path)
    assert ": checks.crash.faults[0].kill: killing the whole service needs a service with restart: " in issue
    assert (
        "on-failure or always; 'web' has restart: never (system.services.web): nothing else brings it back"
        in issue
    )
    one_process = plan.replace("{kill: web}", "{kill: web, process: newest}")
    assert one_process != plan
    write(tmp_path, one_process)
    assert load_plan(path).checks["crash"].kind == "chaos"  # a worker killed inside: the service lives on


def test_a_mistake_inside_a_fault_is_placed_at_its_value_with_the_closest_choice(tmp_path: Path) -> None:
    for fault, wrong, expected in [
        ("{kill: web, process: newst}", "newst", "faults[0].process.pick: expected one of newest, oldest, "
         "random (got 'newst'); did you mean 'newest'?"),
        ("{kill: web, signal: SIGKIL}", "SIGKIL", "faults[0].signal: 'SIGKIL' is not a signal name; did you "
         "mean SIGKILL?"),
    ]:  # fmt: skip
        path = write(tmp_path, GATED.replace("{kill: web}", fault))
        (line,) = [n for n, text in enumerate(path.read_text().splitlines(), 1) if wrong in text]
        column = path.read_text().splitlines()[line - 1].index(wrong) + 1
        (issue,) = issues_of(path)
        assert issue.startswith(f"{path}:{line}:{column}: checks.crash.") and issue.endswith(expected), issue


def test_an_unknown_variable_is_placed_at_the_step_that_uses_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        checks:
          e2e:
            kind: journeys
            journeys:
              echo:
                steps:
                  - name: login
                    request: {method: POST, path: /login}
                    extract: {token: "json:$.token"}
                  - name: me
                    request: {path: /me, auth: {bearer: "{tokn}"}}
        """,
    )
    assert issues_of(path) == [
        f"{path}:11:49: checks.e2e.journeys.echo.steps[1].request.auth.bearer: {{tokn}} is not a variable "
        "at this point of the journey; did you mean {token}? (defined here: iteration, journey, token, uuid; "
        "write {{tokn}} for a literal {tokn})"
    ]


def test_yaml_merge_keys_share_settings_and_the_own_keys_win(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        system:
          services:
            enricher: &python
              command: python -m http.server
              env: {PYTHONPATH: src}
              grace: 2s
            api:
              <<: *python
              grace: 5s
        checks:
          unit: {kind: tests, junit: [report.xml]}
        """,
    )
    api = load_plan(path).system.services["api"]
    assert api.grace == 5 and api.env == {"PYTHONPATH": "src"} and api.command == "python -m http.server"
