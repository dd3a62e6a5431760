"""`gonogo baseline` and relative gates on two real runs of a small web service, as a user would:
the first has nothing to compare with, the second compares with the first once it is pinned,
and its report shows the statistics; `gonogo verify` recomputes the same verdict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_support import gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hello</h1>\n")
    return write_plan(
        tmp_path,
        """
        name: web
        system:
          services:
            web:
              command: [python, -m, http.server, "{port.web}", --bind, 127.0.0.1, --directory, site]
              ready: {http: "http://127.0.0.1:{port.web}/", timeout: 20s}
              grace: 2s
          base_url: "http://127.0.0.1:{port.web}"
        checks:
          smoke:
            kind: journeys
            journeys:
              home:
                iterations: 30
                concurrency: 2
                steps:
                  - name: index
                    request: {path: /index.html}
                    expect: {status: 200}
        gates:
          smoke.success_rate: ">= -1% baseline"
          smoke.home.index.latency.p50: {expr: "<= +50% baseline", severity: should}
        baseline:
          runs: 3
        score:
          minimum: 50
        """,
    )


def run_id_of(output: str) -> str:
    match = re.search(r"run (\d{8}-\d{6}-[0-9a-f]{6}) of plan", output)
    assert match, output
    return match.group(1)


def test_a_pinned_run_is_what_the_next_run_compares_with(plan: Path) -> None:
    first = gonogo("run", cwd=plan.parent)
    assert first.code == 1, first.text  # a must gate with nothing to compare with: not measured
    assert "no baseline (no run is pinned and no earlier run of plan 'web' passed" in first.out
    flowing = re.sub(r"[\s│]+", " ", first.out)  # the table's cells as they read
    assert "pin a run with gonogo baseline set RUN (until there is a baseline this must gate" in flowing
    first_id = run_id_of(first.out)
    pinned = gonogo("baseline", "set", first_id[:15], cwd=plan.parent)
    assert pinned.code == 0 and f"run {first_id} (NO-GO" in pinned.out, pinned.text

    second = gonogo("run", cwd=plan.parent)
    assert second.code == 0, second.text
    second_id = run_id_of(second.out)
    summary = gonogo("report", second_id, "--format", "md", cwd=plan.parent)
    assert summary.code == 0, summary.text
    gates, baseline = summary.out.split("## Gates", 1)[1].split("## Baseline", 1)
    baseline = baseline.split("\n## ", 1)[0]
    assert f"run {first_id}, pinned by" in baseline and "p-value" in baseline
    (latency,) = [line for line in baseline.splitlines() if "latency.p50" in line]
    cells = [cell.strip() for cell in latency.split("|")[1:-1]]
    assert re.fullmatch(r"[0-9.e+-]+", cells[4]) and "CI [" in cells[5], latency  # p-value, shift (CI)
    (rate,) = [line for line in baseline.splitlines() if "success_rate" in line]
    assert "✅ pass" in rate and "100%" in rate
    (latency_gate,) = [line for line in gates.splitlines() if "latency.p50" in line]
    said = (
        f"the distribution smoke.home.index.latency against baseline run {first_id} (pinned): "
        "Mann-Whitney U p = "
    )
    assert said in latency_gate, latency_gate
    assert "(+50% of the baseline median " in latency_gate  # the threshold column: the limit

    page = gonogo("report", second_id, "--format", "html", cwd=plan.parent)
    assert page.code == 0, page.text
    section = page.out.split('<section id="baseline">', 1)[1].split("</section>", 1)[0]
    assert first_id in section and "p-value" in section and "CI [" in section

    verified = gonogo("verify", second_id, cwd=plan.parent)
    assert verified.code == 0, verified.text
    said = f"relative gates recomputed against baseline run {first_id} (pinned)"
    assert said in re.sub(r"\s+", " ", verified.out), verified.out

    cleared = gonogo("baseline", "clear", cwd=plan.parent)
    assert cleared.code == 0 and f"(was run {first_id})" in cleared.out
    shown = gonogo("baseline", "show", cwd=plan.parent)
    assert "the last 3 passing runs of plan 'web' (only 1 so far)" in shown.out and second_id in shown.out
    assert f"pinned run {first_id}" in shown.out  # the history of settings
