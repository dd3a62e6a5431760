"""Evidence survives `kill -9` of gonogo, and writers on several threads do not collide."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from sqlalchemy import select

from gonogo.evidence import EventRecord, MetricRecord, SampleSeries, Store
from gonogo.evidence import schema as s

BeginRun = Callable[..., str]  # the `begin_run` fixture

# A gonogo stand-in: begins a run, then records metrics as fast as it can, printing the
# index of each metric once add_metric has returned (that is, once it is committed).
WRITER = """
import os, socket, sys
from datetime import UTC, datetime
from pathlib import Path
from gonogo.evidence import MetricRecord, Store

store = Store.open(sys.argv[1], artifacts_dir=Path(sys.argv[2]))
run_id = store.begin_run(
    name="killed", plan_path="gonogo.yaml", plan_hash="0" * 64, plan_text="name: killed\\n",
    git_commit=None, host=socket.gethostname(), tool_versions={}, owner_pid=os.getpid(),
)
print(run_id, flush=True)
i = 0
while True:
    store.add_metric(run_id, MetricRecord(
        check="loop", name="i", value=float(i), unit="count", dimension="tests",
        source="test", recorded_at=datetime.now(UTC),
    ))
    print(i, flush=True)
    i += 1
"""


def test_kill_9_keeps_everything_committed(store_url: str, artifacts_dir: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url, str(artifacts_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stderr is not None
    try:
        run_id = writer.stdout.readline().strip()
        acknowledged = -1
        deadline = time.monotonic() + 30
        while acknowledged < 200 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
        assert acknowledged >= 200, f"writer failed:\n{writer.stderr.read()}"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    # Lines printed between our last read and the kill: each one was committed too.
    for line in writer.stdout.read().splitlines():
        acknowledged = int(line)
    assert writer.returncode == -signal.SIGKILL

    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        run = store.resolve_run(run_id)
        assert run.status == "running"
        values = [m.value for m in store.metrics(run_id)]
        # Everything acknowledged is there, in order, at most one more (killed after its
        # commit, before its print).
        assert acknowledged + 1 <= len(values) <= acknowledged + 2
        assert values == [float(i) for i in range(len(values))]

        assert store.mark_stale_runs_aborted() == [run_id]
        run = store.resolve_run(run_id)
        assert run.status == "aborted"
        assert str(writer.pid) in run.message
        assert len(store.metrics(run_id)) == len(values)


def test_concurrent_writers(store_url: str, artifacts_dir: Path, begin_run: BeginRun) -> None:
    """A sampler thread and the main flow write at once, plus a second store (process)."""
    run_id = begin_run()
    other = Store.open(store_url, artifacts_dir=artifacts_dir)
    t0 = datetime.now(UTC)
    errors: list[BaseException] = []
    n = 150

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        return run

    def metrics(store: Store, check: str) -> Callable[[], None]:
        def work() -> None:
            for i in range(n):
                store.add_metric(
                    run_id,
                    MetricRecord(check, "i", float(i), "count", "tests", "test", t0),
                )

        return work

    def sampler(store: Store, service: str) -> Callable[[], None]:
        def work() -> None:
            for i in range(n):
                at = t0 + timedelta(seconds=i)
                # Both samplers write the `rss` series of `shared` too: created once.
                for labels in ({"service": service}, {"service": "shared"}):
                    store.add_samples(run_id, SampleSeries("rss", labels, "bytes", [(at, i)]))
                store.add_event(run_id, EventRecord(at, service, "sample", str(i)))

        return work

    def reader() -> None:
        for _ in range(20):
            store.metrics(run_id)
            store.samples(run_id)

    store = Store.open(store_url, artifacts_dir=artifacts_dir)
    try:
        threads = [
            threading.Thread(target=guarded(work))
            for work in (
                metrics(store, "main"),
                metrics(other, "other"),
                sampler(store, "api"),
                sampler(other, "worker"),
                reader,
            )
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

        by_check: dict[str, list[float]] = {}
        for m in store.metrics(run_id):
            by_check.setdefault(m.check, []).append(m.value)
        # Each thread's own writes keep their order.
        assert by_check == {c: [float(i) for i in range(n)] for c in ("main", "other")}
        series = {one.labels["service"]: one for one in store.samples(run_id)}
        assert sorted(series) == ["api", "shared", "worker"]
        assert len(series["api"].points) == len(series["worker"].points) == n
        assert len(series["shared"].points) == 2 * n
        assert len(store.events(run_id)) == 2 * n
    finally:
        store.close()
        other.close()


def test_writes_are_visible_to_another_store_at_once(
    store_url: str, artifacts_dir: Path, begin_run: BeginRun, store: Store
) -> None:
    """No write waits in a buffer: a second connection sees it as soon as the call returns."""
    run_id = begin_run()
    with Store.open(store_url, artifacts_dir=artifacts_dir) as reader:
        for i in range(3):
            store.add_metric(run_id, MetricRecord("c", "m", float(i), "count", "tests", "t", store.when()))
            assert len(reader.metrics(run_id)) == i + 1
        store.add_artifact(run_id, b"log", name="log")
        assert [a.name for a in reader.artifacts(run_id)] == ["log"]
        store.finish_run(run_id, "completed")
        assert reader.resolve_run(run_id).status == "completed"


def test_owner_process_create_time_is_recorded(store: Store, begin_run: BeginRun) -> None:
    # Without it a reused pid would look like a live owner (see test_store_runs).
    run_id = begin_run(owner_pid=os.getpid())
    with store._engine.connect() as conn:
        recorded = conn.execute(select(s.runs.c.owner_create_time).where(s.runs.c.id == run_id)).scalar_one()
    assert recorded == psutil.Process().create_time()
