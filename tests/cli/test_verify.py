"""`gonogo verify` and `gonogo approve` on a real small run, as a user would run them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest
from cli_support import JUNIT_FIXTURE, Result, gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")


def tiny_plan(directory: Path, extra: str = "") -> Path:
    """A run with no services: one JUnit report (stored as an artifact) and two gates."""
    shutil.copy(JUNIT_FIXTURE, directory / "junit.xml")
    return write_plan(
        directory,
        textwrap.dedent("""
        name: tiny
        checks:
          unit:
            kind: tests
            needs_system: false
            junit: [junit.xml]
        gates:
          unit.total: "== 9"
          unit.failed: "<= 2"
        """)
        + extra,
    )


def run_once(plan: Path, expected_code: int = 0) -> Path:
    """Run the plan; returns the run's folder."""
    result = gonogo("run", cwd=plan.parent)
    assert result.code == expected_code, result.text
    (run_dir,) = (plan.parent / ".gonogo" / "runs").iterdir()
    return run_dir


def verify(plan: Path, *args: str) -> Result:
    return gonogo("verify", *args, cwd=plan.parent)


def mismatches(result: Result) -> list[str]:
    return [line.strip()[2:] for line in result.out.splitlines() if line.strip().startswith("✗")]


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return tiny_plan(tmp_path)


def test_an_untouched_run_verifies(plan: Path) -> None:
    run_dir = run_once(plan)
    result = verify(plan)
    assert result.code == 0, result.text
    assert "verified" in result.out and not mismatches(result)
    for line in ("verdict recomputed from", "artifact files (3)", "plan file gonogo.yaml: unchanged",
                 "report.json: matches", "summary.md: matches", "gates.junit.xml: matches"):  # fmt: skip
        assert line in result.out, result.out
    assert verify(plan, str(run_dir / "report.json")).code == 0
    assert verify(plan, str(run_dir / "gates.junit.xml")).code == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["integrity"]["plan_sha256"] == report["run"]["plan_hash"]
    assert len(report["integrity"]["evidence_sha256"]) == 64
    assert verify(plan, "nope").code == 2
    missing = verify(plan, "elsewhere/report.json")
    assert missing.code == 2 and "no such report file" in missing.err


def test_an_edited_number_in_report_json_is_named(plan: Path) -> None:
    run_dir = run_once(plan)
    path = run_dir / "report.json"
    report = json.loads(path.read_text())
    index = next(i for i, m in enumerate(report["metrics"]) if m["full_name"] == "unit.failed")
    report["metrics"][index]["value"] = 0.0
    path.write_text(json.dumps(report, indent=2))
    for result in (verify(plan), verify(plan, str(path))):
        assert result.code == 1, result.text
        assert mismatches(result) == [
            f"report.json: metrics[{index}] unit.failed value 0.0, the evidence says 2.0"
        ]


def test_a_changed_artifact_file_is_named(plan: Path) -> None:
    run_once(plan)
    junit = (plan.parent / "junit.xml").read_bytes()
    (stored,) = [p for p in (plan.parent / ".gonogo" / "artifacts").glob("??/*") if p.read_bytes() == junit]
    stored.chmod(0o644)
    content = bytearray(stored.read_bytes())
    content[10] ^= 1
    stored.write_bytes(bytes(content))
    result = verify(plan)
    assert result.code == 1, result.text
    (found,) = mismatches(result)
    assert found.startswith(
        f"artifact junit.xml (sha256 {stored.name[:12]}…): the file's content no longer matches"
    )
    # ... and `gonogo artifacts` refuses to hand the altered file out as the evidence
    out = plan.parent / "out.xml"
    refused = gonogo("artifacts", "latest", "junit.xml", "-o", str(out), cwd=plan.parent)
    assert refused.code == 3 and "was altered" in refused.err and not out.exists()
    stored.unlink()
    assert "the file is missing" in mismatches(verify(plan))[0]


def test_a_report_is_verified_from_any_folder_and_reading_never_creates_a_store(
    plan: Path, tmp_path: Path
) -> None:
    run_dir = run_once(plan)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for report in ("report.json", "summary.md"):
        result = gonogo("verify", str(run_dir / report), cwd=elsewhere)
        assert result.code == 0, result.text
    copied = elsewhere / "report.json"  # outside its run folder: found through its plan_path
    shutil.copy(run_dir / "report.json", copied)
    assert gonogo("verify", str(copied), cwd=elsewhere).code == 0
    for command in (["history"], ["show", "latest"], ["artifacts", "latest"], ["verify", "latest"]):
        result = gonogo(*command, cwd=elsewhere)
        assert result.code == 2 and "no evidence store in this folder" in result.err, (command, result.text)
        assert "--plan PATH" in result.err
    assert not (elsewhere / ".gonogo").exists()


def test_an_edited_summary_is_caught(plan: Path) -> None:
    run_dir = run_once(plan)
    summary = run_dir / "summary.md"
    summary.write_text(summary.read_text().replace("**Score 100.0**", "**Score 99.0**"))
    result = verify(plan)
    assert result.code == 1, result.text
    (found,) = mismatches(result)
    assert found.startswith("summary.md: the file was edited")
    assert "'**Score 99.0** (minimum 80)', the evidence gives '**Score 100.0** (minimum 80)'" in found
    assert verify(plan, str(summary)).code == 1


def test_a_changed_or_missing_plan_file(plan: Path, tmp_path: Path) -> None:
    run_once(plan)
    original = plan.read_text()
    plan.write_text(original.replace('"<= 2"', '"<= 1"'))
    result = verify(plan)
    assert result.code == 1, result.text
    (found,) = mismatches(result)
    assert found.startswith("the plan file gonogo.yaml changed since the run (sha256")
    # On another machine there is no plan file: a warning, and --plan compares a copy.
    plan.unlink()
    result = verify(plan)
    assert result.code == 0, result.text
    assert "is not here: the plan stored with the run was used" in result.out
    copy = tmp_path / "copy.yaml"
    copy.write_text(original)
    assert (
        verify(
            plan, "latest", "--plan", str(copy), "--store", f"sqlite:///{plan.parent}/.gonogo/gonogo.db"
        ).code
        == 0
    )


def test_evidence_altered_in_the_store_is_named(plan: Path) -> None:
    run_once(plan)
    with sqlite3.connect(plan.parent / ".gonogo" / "gonogo.db") as db:
        db.execute("UPDATE metrics SET value = 3 WHERE name = 'failed'")
    result = verify(plan)
    assert result.code == 1, result.text
    found = mismatches(result)
    assert "gate unit.failed <= 2: stored verdict says pass, recomputed fail" in found
    assert "verdict: stored verdict says GO, recomputed NO-GO" in found
    assert any(line.startswith("report.json: integrity.evidence_sha256 ") for line in found)
    edited = "unit.failed value 2.0, the evidence says 3.0"
    assert any(line.startswith("report.json: metrics[") and edited in line for line in found)


def test_a_report_written_with_o_is_recorded(plan: Path, tmp_path: Path) -> None:
    run_once(plan)
    exported = tmp_path / "exported.md"
    assert gonogo("report", "latest", "--format", "md", "-o", str(exported), cwd=plan.parent).code == 0
    assert verify(plan, str(exported)).code == 0
    exported.write_text(exported.read_text() + "\nall good, trust me\n")
    assert verify(plan, str(exported)).code == 1


SIGNOFF = """
signoff:
  roles: [qa, security]
  min_confidence: 8
"""


def approve(plan: Path, role: str, confidence: int, note: str = "") -> Result:
    return gonogo("approve", "latest", "--role", role, "--confidence", str(confidence), "--note", note,
                  cwd=plan.parent)  # fmt: skip


def test_sign_off_flow(tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, SIGNOFF)
    result = gonogo("run", cwd=plan.parent)
    assert result.code == 4, result.text  # GO, pending sign-off
    assert "GO, pending sign-off (missing: qa, security)" in result.out
    (run_dir,) = (plan.parent / ".gonogo" / "runs").iterdir()

    refused = approve(plan, "dev", 9)
    assert refused.code == 2 and "does not require the role 'dev'; it requires: qa, security" in refused.err
    assert approve(plan, "qa", 9, "read every failure").code == 0
    assert "GO, pending sign-off (missing: security)" in gonogo("show", "latest", cwd=plan.parent).out
    assert "GO, pending sign-off (missing: security)" in gonogo("history", cwd=plan.parent).out
    low = approve(plan, "security", 6)
    assert low.code == 0 and "does not count: confidence 6 is below the minimum 8" in low.out
    assert "GO, pending sign-off (missing: security)" in low.out
    done = approve(plan, "security", 9, "scanned")
    assert done.code == 0 and done.out.splitlines()[1].endswith(": GO"), done.out

    # The run's reports are written again with the sign-offs, and still verify.
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"]["decision"] == "GO" and report["verdict"]["outcome"] == "GO"
    signoff = report["signoff"]
    assert (
        signoff["complete"] and signoff["pending"] == [] and signoff["required_roles"] == ["qa", "security"]
    )
    assert [(s["role"], s["confidence"], s["counts"]) for s in signoff["signoffs"]] == [
        ("qa", 9, True), ("security", 6, False), ("security", 9, True),
    ]  # fmt: skip
    assert all(s["evidence_digest"] == report["integrity"]["evidence_sha256"] for s in signoff["signoffs"])
    summary = (run_dir / "summary.md").read_text()
    assert summary.startswith("# gonogo: tiny — **GO**") and "## Sign-offs" in summary
    assert "| qa |" in summary and "read every failure" in summary
    junit = (run_dir / "gates.junit.xml").read_text()
    assert 'name="sign-off security"' in junit and "<skipped" not in junit
    verified = verify(plan)
    assert verified.code == 0, verified.text
    assert "qa: " in verified.out and "security: " in verified.out
    assert "pending" not in gonogo("history", cwd=plan.parent).out


def test_a_report_from_before_a_sign_off_still_verifies(tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, SIGNOFF)
    run_dir = run_once(plan, expected_code=4)
    before = tmp_path / "before.json"
    shutil.copy(run_dir / "report.json", before)
    assert approve(plan, "qa", 9).code == 0
    result = verify(plan, str(before))
    assert result.code == 0, result.text
    assert "written before 1 later sign-off(s)" in result.out


def test_a_no_go_run_cannot_be_signed_off(tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, SIGNOFF)
    plan.write_text(plan.read_text().replace('"<= 2"', '"== 0"'))
    run_once(plan, expected_code=1)
    refused = approve(plan, "qa", 10)
    assert refused.code == 2 and "is NO-GO: a sign-off cannot release it" in refused.err


def test_reports_of_an_older_gonogo_are_checked_on_what_they_have(plan: Path) -> None:
    """A run from before gonogo recorded its reports (and put `integrity` in report.json): its
    reports render differently now, which is said as such; a value both have must still agree."""
    run_dir = run_once(plan)
    with sqlite3.connect(plan.parent / ".gonogo" / "gonogo.db") as db:
        db.execute("DELETE FROM report_files")
    report = json.loads((run_dir / "report.json").read_text())
    for key in ("integrity", "signoff"):
        del report[key]
    (run_dir / "report.json").write_text(json.dumps(report))
    (run_dir / "summary.md").write_text("# gonogo: tiny — **GO**\n\nas an older gonogo wrote it\n")
    result = verify(plan)
    assert result.code == 0, result.text
    assert "report.json: as gonogo wrote it, with 2 field(s) another gonogo version renders" in result.out
    assert "summary.md: written by an older gonogo, which recorded no hash of it" in result.out
    report["metrics"][1]["value"] = 5
    (run_dir / "report.json").write_text(json.dumps(report))
    assert mismatches(verify(plan)) == ["report.json: metrics[1] unit.passed value 5, the evidence says 4.0"]
