"""Every record type goes into the store and comes back unchanged, on both backends."""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gonogo.errors import UserError
from gonogo.evidence import (
    EventRecord,
    GateRecord,
    MetricRecord,
    SampleSeries,
    Store,
    VerdictRecord,
)

BeginRun = Callable[..., str]  # the `begin_run` fixture
T0 = datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC)


def metric(**overrides: object) -> MetricRecord:
    fields: dict[str, object] = {
        "check": "load",
        "name": "latency.p95",
        "value": 0.2345,
        "unit": "s",
        "dimension": "performance",
        "source": "k6 summary export.json",
        "recorded_at": T0,
    }
    fields.update(overrides)
    return MetricRecord(**fields)  # type: ignore[arg-type]


def verdict(**overrides: object) -> VerdictRecord:
    fields: dict[str, object] = {
        "decision": "NO-GO",
        "score": 71.5,
        "minimum_score": 80.0,
        "dimensions": {"tests": 100.0, "performance": 43.0, "security": None},
        "reasons": ["load.latency.p95 = 2.4 s, must be < 2 s", "security not measured"],
        "gates": [
            GateRecord(
                metric="load.latency.p95",
                pattern="load.latency.p95",
                expr="< 2s",
                severity="must",
                status="fail",
                value=2.4,
                unit="s",
                threshold="2 s",
                dimension="performance",
                source="k6 summary",
                metric_id=7,
            ),
            GateRecord(
                metric="security.findings.critical",
                pattern="security.findings.*",
                expr="== 0",
                severity="should",
                status="not_measured",
                value=None,
                unit=None,
                threshold="0",
                dimension="security",
                source="no such metric was recorded",
            ),
        ],
        "decided_at": T0,
    }
    fields.update(overrides)
    return VerdictRecord(**fields)  # type: ignore[arg-type]


def test_run_round_trip(store: Store, begin_run: BeginRun) -> None:
    before = store.when()
    run_id = begin_run(plan_text="name: demo\nchecks: {}\n")
    run = store.resolve_run(run_id)
    assert run.id == run_id
    assert (run.name, run.plan_path, run.plan_hash) == ("demo", "/plans/gonogo.yaml", "ab" * 32)
    assert run.git_commit == "0123456789abcdef0123456789abcdef01234567"
    assert run.host == socket.gethostname()
    assert run.tool_versions == {"gonogo": "0.1.0", "python": "3.11.7"}
    assert run.status == "running"
    assert run.message == ""
    assert run.ended_at is None
    assert run.decision is None
    assert run.started_at.tzinfo is not None
    assert run.started_at.utcoffset() == timedelta(0)
    assert before <= run.started_at <= store.when()
    assert store.plan_text(run_id) == "name: demo\nchecks: {}\n"

    store.finish_run(run_id, "failed", "service 'api' never became ready")
    run = store.resolve_run(run_id)
    assert run.status == "failed"
    assert run.message == "service 'api' never became ready"
    assert run.ended_at is not None and run.ended_at >= run.started_at


def test_run_without_git_commit(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run(git_commit=None, tool_versions={})
    run = store.resolve_run(run_id)
    assert run.git_commit is None
    assert run.tool_versions == {}


def test_finish_run_refuses_unknown_status_and_run(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    with pytest.raises(ValueError, match="unknown run status"):
        store.finish_run(run_id, "done")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="no run 'nope'"):
        store.finish_run("nope", "completed")
    with pytest.raises(UserError, match="no run 'nope'"):
        store.plan_text("nope")


def test_checks_round_trip(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    unit = store.begin_check(run_id, "unit", "tests")
    load = store.begin_check(run_id, "load", "journeys")
    store.end_check(unit, "completed", "412 passed")
    checks = store.checks(run_id)
    assert [(c.id, c.name, c.kind, c.status) for c in checks] == [
        (unit, "unit", "tests", "completed"),
        (load, "load", "journeys", "running"),
    ]
    assert checks[0].message == "412 passed"
    assert checks[0].ended_at is not None and checks[0].ended_at >= checks[0].started_at
    assert checks[1].ended_at is None
    assert checks[1].started_at.tzinfo is not None
    with pytest.raises(UserError, match="no check"):
        store.end_check(10_000, "completed")
    with pytest.raises(UserError, match="no run 'nope'"):
        store.begin_check("nope", "unit", "tests")


def test_metrics_round_trip(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    other_run = begin_run()
    full = metric(
        artifact_sha256="0f" * 32,
        window_start=T0 - timedelta(minutes=5),
        window_end=T0,
        labels={"endpoint": "POST /documents", "component": "api"},
    )
    bare = metric(check="unit", name="pass_rate", value=0.995, unit="ratio", dimension="tests")
    full_id = store.add_metric(run_id, full)
    bare_id = store.add_metric(run_id, bare)
    store.add_metric(other_run, metric())
    assert full_id != bare_id

    got = store.metrics(run_id)
    assert got == [
        MetricRecord(**{**full.__dict__, "id": full_id}),
        MetricRecord(**{**bare.__dict__, "id": bare_id}),
    ]
    assert got[0].full_name == "load.latency.p95"
    assert got[0].recorded_at.tzinfo is not None
    assert len(store.metrics(other_run)) == 1
    assert store.metrics("nope") == []


def test_times_are_stored_in_utc_and_keep_microseconds(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 22, 2, 2, 3, 456789, tzinfo=paris)
    store.add_metric(run_id, metric(recorded_at=local, window_start=local, window_end=local))
    (got,) = store.metrics(run_id)
    assert got.recorded_at == T0
    assert got.recorded_at.utcoffset() == timedelta(0)
    assert got.recorded_at.microsecond == 456789
    assert got.window_start == T0


def test_naive_times_and_nan_are_refused(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    with pytest.raises(ValueError, match="naive datetime"):
        store.add_metric(run_id, metric(recorded_at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="NaN"):
        store.add_metric(run_id, metric(value=math.nan))
    assert store.metrics(run_id) == []


def test_infinite_values_survive(store: Store, begin_run: BeginRun) -> None:
    # e.g. a projected time to exhaustion when nothing leaks.
    run_id = begin_run()
    store.add_metric(run_id, metric(value=math.inf))
    assert store.metrics(run_id)[0].value == math.inf


def test_writes_to_an_unknown_run_are_refused(store: Store) -> None:
    with pytest.raises(UserError, match="no run 'nope'"):
        store.add_metric("nope", metric())
    with pytest.raises(UserError, match="no run 'nope'"):
        store.add_event("nope", EventRecord(T0, "system", "started", ""))
    with pytest.raises(UserError, match="no run 'nope'"):
        store.add_samples("nope", SampleSeries("rss", {}, "bytes", [(T0, 1.0)]))
    with pytest.raises(UserError, match="no run 'nope'"):
        store.save_verdict("nope", verdict())
    with pytest.raises(UserError, match="no run 'nope'"):
        store.add_artifact("nope", b"x", name="x")


def test_events_round_trip_in_time_order(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    later = EventRecord(T0 + timedelta(seconds=1), "api", "ready", "listening on :8080")
    first = EventRecord(T0, "system", "started", "starting 3 services")
    same_time = EventRecord(T0 + timedelta(seconds=1), "worker", "ready", "")
    for event in (later, first, same_time):
        store.add_event(run_id, event)
    assert store.events(run_id) == [first, later, same_time]


def test_samples_append_to_the_same_series(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    second = timedelta(seconds=1)
    store.add_samples(run_id, SampleSeries("rss", {"service": "api", "pid": "12"}, "bytes", [(T0, 1e6)]))
    store.add_samples(run_id, SampleSeries("rss", {"service": "worker"}, "bytes", [(T0, 5.0)]))
    # Same name and labels (in another order): the same series, points appended.
    store.add_samples(
        run_id,
        SampleSeries(
            "rss",
            {"pid": "12", "service": "api"},
            "bytes",
            [(T0 + 2 * second, 3e6), (T0 + second, 2e6)],
        ),
    )
    store.add_samples(run_id, SampleSeries("cpu", {"service": "api"}, "ratio", []))

    got = store.samples(run_id)
    assert [(s.name, s.labels, s.unit) for s in got] == [
        ("rss", {"service": "api", "pid": "12"}, "bytes"),
        ("rss", {"service": "worker"}, "bytes"),
        ("cpu", {"service": "api"}, "ratio"),
    ]
    assert got[0].points == [(T0, 1e6), (T0 + second, 2e6), (T0 + 2 * second, 3e6)]
    assert got[1].points == [(T0, 5.0)]
    assert got[2].points == []
    assert all(t.tzinfo is not None for s in got for t, _ in s.points)


def test_samples_refuse_a_unit_change_and_nan(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    store.add_samples(run_id, SampleSeries("rss", {}, "bytes", [(T0, 1.0)]))
    with pytest.raises(ValueError, match="'bytes', not 'kB'"):
        store.add_samples(run_id, SampleSeries("rss", {}, "kB", [(T0, 1.0)]))
    with pytest.raises(ValueError, match="NaN"):
        store.add_samples(run_id, SampleSeries("rss", {}, "bytes", [(T0, math.nan)]))
    assert store.samples(run_id)[0].points == [(T0, 1.0)]


def test_verdict_round_trip_and_replacement(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    assert store.verdict(run_id) is None

    first = verdict()
    store.save_verdict(run_id, first)
    assert store.verdict(run_id) == first
    assert store.resolve_run(run_id).decision == "NO-GO"

    second = verdict(
        decision="GO",
        score=None,
        dimensions={},
        reasons=[],
        gates=[first.gates[1]],
        decided_at=T0 + timedelta(hours=1),
    )
    store.save_verdict(run_id, second)
    assert store.verdict(run_id) == second
    assert store.resolve_run(run_id).decision == "GO"


def test_verdict_keeps_gate_order(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    template = verdict().gates[0]
    gates = [GateRecord(**{**template.__dict__, "metric": f"m{i}", "status": "pass"}) for i in (3, 1, 2, 0)]
    store.save_verdict(run_id, verdict(gates=gates))
    stored = store.verdict(run_id)
    assert stored is not None
    assert [g.metric for g in stored.gates] == ["m3", "m1", "m2", "m0"]


def test_delete_runs_removes_everything_recorded(store: Store, begin_run: BeginRun) -> None:
    doomed = begin_run()
    kept = begin_run()
    for run_id in (doomed, kept):
        check_id = store.begin_check(run_id, "unit", "tests")
        store.end_check(check_id, "completed")
        store.add_metric(run_id, metric())
        store.add_event(run_id, EventRecord(T0, "system", "started", ""))
        store.add_samples(run_id, SampleSeries("rss", {}, "bytes", [(T0, 1.0)]))
        store.save_verdict(run_id, verdict())
    only_doomed = store.add_artifact(doomed, b"only in the deleted run", name="a.txt")
    shared = store.add_artifact(doomed, b"in both runs", name="b.txt")
    store.add_artifact(kept, b"in both runs", name="b.txt")

    store.delete_runs([doomed])

    with pytest.raises(UserError):
        store.resolve_run(doomed)
    assert store.checks(doomed) == []
    assert store.metrics(doomed) == []
    assert store.events(doomed) == []
    assert store.samples(doomed) == []
    assert store.verdict(doomed) is None
    assert store.artifacts(doomed) == []
    assert not store.artifact_path(only_doomed.sha256).exists()
    assert store.artifact_path(shared.sha256).exists()
    # The other run is untouched.
    assert len(store.checks(kept)) == len(store.metrics(kept)) == 1
    assert store.samples(kept)[0].points == [(T0, 1.0)]
    assert store.verdict(kept) == verdict()
    store.delete_runs([])


def test_nul_characters_in_text_do_not_break_a_write(store: Store, begin_run: BeginRun) -> None:
    # PostgreSQL refuses NUL in text; a service's log line may well contain one.
    run_id = begin_run()
    store.add_event(run_id, EventRecord(T0, "api", "output", "bad\x00byte"))
    assert store.events(run_id)[0].message == "bad\ufffdbyte"
