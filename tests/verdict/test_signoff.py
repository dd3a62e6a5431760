"""Sign-offs: which count, what is pending, and the digest they were given on."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gonogo.approval import approve
from gonogo.errors import UserError
from gonogo.evidence import MetricRecord, SignoffRecord, Store, VerdictRecord
from gonogo.plan.model import GateSpec, Score, Signoff
from gonogo.report import collect
from gonogo.threshold import parse_threshold
from gonogo.verdict import decide, evaluate_gates, outcome, signoff_status

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
DIGEST = "d" * 64


GATES = [GateSpec(metric="unit.pass_rate", expr=parse_threshold(">= 90%"))]


def signed(role: str, confidence: int, *, digest: str = DIGEST, minutes: int = 0) -> SignoffRecord:
    when = T0 + timedelta(minutes=minutes)
    return SignoffRecord(role, confidence, "", "alice", None, None, when, digest, "GO")


def go_verdict(roles: list[str], min_confidence: int = 8) -> VerdictRecord:
    metric = MetricRecord("unit", "pass_rate", 1.0, "ratio", "tests", "junit.xml", T0)
    gates = evaluate_gates(GATES, [metric])
    return decide(gates, Score(), signoff=Signoff(roles=roles, min_confidence=min_confidence))


def test_decide_keeps_the_required_signoffs_and_the_run_problems() -> None:
    verdict = go_verdict(["qa", "security"])
    assert verdict.decision == "GO"
    assert verdict.signoff is not None and verdict.signoff.roles == ["qa", "security"]
    assert decide(verdict.gates, Score()).signoff is None
    assert decide(verdict.gates, Score(), signoff=Signoff()).signoff is None  # no roles: none required
    no_go = decide(verdict.gates, Score(), run_problems=["check x crashed"])
    assert no_go.decision == "NO-GO" and no_go.run_problems == ["check x crashed"]


def test_pending_until_every_role_has_a_sign_off_that_counts() -> None:
    verdict = go_verdict(["qa", "security", "operations"])
    status = signoff_status(verdict, [], DIGEST)
    assert status is not None and status.pending == ["qa", "security", "operations"]
    assert outcome(verdict, status) == "GO, pending sign-off (missing: qa, security, operations)"
    given = [
        signed("qa", 9),
        signed("security", 7, minutes=1),  # below the minimum
        signed("operations", 10, digest="e" * 64, minutes=2),  # on other evidence
        signed("dev", 10, minutes=3),  # not a required role
    ]
    status = signoff_status(verdict, given, DIGEST)
    assert status is not None and status.pending == ["security", "operations"]
    why = {signoff.role: reason for signoff, reason in status.not_counted}
    assert why["security"] == "confidence 7 is below the minimum 8"
    assert "other evidence" in why["operations"] and "not one the plan requires" in why["dev"]
    given += [signed("security", 8, minutes=4), signed("operations", 8, minutes=5)]
    status = signoff_status(verdict, given, DIGEST)
    assert status is not None and status.complete and outcome(verdict, status) == "GO"


def test_the_latest_sign_off_that_counts_is_kept() -> None:
    verdict = go_verdict(["qa"])
    first, second, low = signed("qa", 8), signed("qa", 10, minutes=1), signed("qa", 2, minutes=2)
    status = signoff_status(verdict, [first, second, low], DIGEST)
    assert status is not None and status.counted == {"qa": second} and status.complete


def test_no_requirement_no_status_and_no_go_stays_no_go() -> None:
    assert signoff_status(decide([], Score()), [signed("qa", 9)], DIGEST) is None
    no_go = replace(go_verdict(["qa"]), decision="NO-GO")
    assert outcome(no_go, signoff_status(no_go, [], DIGEST)) == "NO-GO"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as opened:
        yield opened


def stored_run(store: Store, plan_dir: Path, roles: list[str]) -> str:
    run_id = store.begin_run(
        name="demo", plan_path=str(plan_dir / "gonogo.yaml"), plan_hash="ab" * 32, plan_text="name: demo\n",
        git_commit=None, host=socket.gethostname(), tool_versions={}, owner_pid=os.getpid(),
    )  # fmt: skip
    store.add_metric(run_id, MetricRecord("unit", "pass_rate", 1.0, "ratio", "tests", "junit.xml", T0))
    gates = evaluate_gates(GATES, store.metrics(run_id))
    store.save_verdict(run_id, decide(gates, Score(), signoff=Signoff(roles=roles, min_confidence=8)))
    store.finish_run(run_id, "completed")
    return run_id


def test_a_sign_off_stops_counting_when_the_verdict_is_recomputed(store: Store, tmp_path: Path) -> None:
    run_id = stored_run(store, tmp_path, ["qa"])
    before = collect(store, run_id)
    approve(store, before, role="qa", confidence=9, note="ok")
    signed_off = collect(store, run_id)
    assert signed_off.evidence_digest == before.evidence_digest  # a sign-off is not evidence
    assert signed_off.outcome == "GO"
    # The verdict decided again (same gates, a new decision time): other evidence, so the
    # sign-off was given on something that no longer stands.
    verdict = store.verdict(run_id)
    assert verdict is not None
    store.save_verdict(run_id, replace(verdict, decided_at=verdict.decided_at + timedelta(seconds=1)))
    after = collect(store, run_id)
    assert after.evidence_digest != before.evidence_digest
    assert after.outcome == "GO, pending sign-off (missing: qa)"
    assert after.signoff is not None and "other evidence" in after.signoff.not_counted[0][1]
    approve(store, after, role="qa", confidence=9, note="again")
    assert collect(store, run_id).outcome == "GO"


def test_approve_refuses_what_cannot_count(store: Store, tmp_path: Path) -> None:
    run_id = stored_run(store, tmp_path, ["qa", "security"])
    report = collect(store, run_id)
    with pytest.raises(UserError, match="does not require the role 'dev'; it requires: qa, security"):
        approve(store, report, role="dev", confidence=9, note="")
    verdict = store.verdict(run_id)
    assert verdict is not None
    store.save_verdict(run_id, replace(verdict, decision="NO-GO"))
    with pytest.raises(UserError, match="is NO-GO"):
        approve(store, collect(store, run_id), role="qa", confidence=9, note="")
    unrequired = stored_run(store, tmp_path, [])
    with pytest.raises(UserError, match="requires no sign-off"):
        approve(store, collect(store, unrequired), role="qa", confidence=9, note="")
    assert store.signoffs(run_id) == [] and store.signoffs(unrequired) == []
