"""Worker processes: a run split over two workers adds up to the same counts with its
histograms merged without loss; Ctrl-C stops a run promptly with what was measured, and no
worker process outlives the run, not even a SIGKILL of the process that started it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import psutil
import pytest
from engine_support import Server, engine_test_server

from gonogo.loadgen import histogram as hist
from gonogo.loadgen.drive import load_spec
from gonogo.loadgen.engine import (
    Endpoint,
    LoadSpec,
    ProgressSnapshot,
    _split,
    auto_workers,
    run_load,
)
from gonogo.loadgen.settings import LoadSettings

SCRIPT = """
import json, sys
from gonogo.loadgen.engine import Endpoint, LoadInterrupted, LoadSpec, run_load
spec = LoadSpec(host="127.0.0.1", port=int(sys.argv[1]), endpoints=[Endpoint("f", path="/fixed")],
                rate=200.0, duration=60.0, workers=int(sys.argv[2]))
try:
    run_load(spec, on_progress=lambda s: print("progress", s.requests, flush=True))
except LoadInterrupted as exc:
    r = exc.result
    print(json.dumps({"requests": r.total.requests, "responses": r.total.responses,
                      "stopped": r.stopped_early, "workers": len(r.workers)}), flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with engine_test_server() as s:
        yield s


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return all(gone(p) for p in pids)


def test_two_workers_add_up_to_one(server: Server) -> None:
    endpoints = [Endpoint("a", path="/fixed", weight=3), Endpoint("b", path="/chunked/300/2", weight=1)]
    base = LoadSpec(
        host="127.0.0.1", port=server.port, endpoints=endpoints, rate=400.0, duration=2.0, warmup=0.5
    )
    snapshots: list[ProgressSnapshot] = []
    cpus = sorted(os.sched_getaffinity(0))[:2]
    two = run_load(
        LoadSpec(**{**base.__dict__, "workers": 2, "cpus": cpus}),
        on_progress=snapshots.append,
    )
    one = run_load(base)
    assert len(two.workers) == 2 and {w.cpu for w in two.workers} == set(cpus)
    for result in (one, two):
        assert result.total.scheduled == 800
        assert result.total.responses == 800
        assert result.warmup_total.requests == 200
        assert abs(result.endpoint("a").counts.requests - 600) <= 2
    # merged without loss: every response is in the merged histograms and series
    assert two.overall.corrected.get_total_count() == 800
    assert two.overall.uncorrected.get_total_count() == 800
    merged = hist.merge([two.endpoint("a").corrected, two.endpoint("b").corrected])
    assert merged.equals(two.overall.corrected)
    assert sum(s.requests for s in two.series) == 800
    assert sum(sum(s.latency.values()) for s in two.series) == 800
    # the workers started together: their seconds line up (400/s each second, give or take)
    assert [s.second for s in two.series][:2] == [0, 1]
    assert abs(two.series[0].requests - 400) <= 10
    assert snapshots and max(s.requests for s in snapshots) > 0


def test_auto_workers_are_one_per_core_as_far_as_the_load_needs_them() -> None:
    cores = len(os.sched_getaffinity(0))
    base = LoadSpec(host="127.0.0.1", port=80, endpoints=[Endpoint("f")], duration=1.0, workers=0)
    assert auto_workers(replace(base, rate=50.0)) == 1  # one loop is plenty: no idle processes
    assert auto_workers(replace(base, rate=1e6)) == cores
    assert auto_workers(replace(base, model="closed", users=10_000)) == cores
    assert len(_split(replace(base, rate=1e6))) == cores  # one engine, so one event loop, per process
    # `workers: auto` in a plan is this automatic choice
    settings = LoadSettings.model_validate(
        {"rate": 1e6, "duration": 1, "workers": "auto", "requests": [{"name": "f", "path": "/"}]}
    )
    spec = load_spec(settings, "127.0.0.1", 80, "127.0.0.1:80", {}, SimpleNamespace(expand=str))  # type: ignore[arg-type]
    assert spec.workers == 0 and len(_split(spec)) == cores


def test_closed_model_split_keeps_the_request_bound(server: Server) -> None:
    spec = LoadSpec(
        host="127.0.0.1",
        port=server.port,
        endpoints=[Endpoint("f", path="/fixed")],
        model="closed",
        users=4,
        max_requests=101,
        workers=2,
    )
    result = run_load(spec)
    assert result.total.requests == 101 and result.total.responses == 101
    assert sum(w.connections_opened for w in result.workers) == 4


def start_script(server: Server, workers: int) -> tuple[subprocess.Popen[str], list[int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(server.port), str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the first progress line: the load is running
    assert line.startswith("progress"), line + (process.stderr.read() if process.stderr else "")
    children = [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
    assert len(children) >= (workers if workers > 1 else 0)
    return process, children


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_promptly_and_keeps_the_measurements(server: Server, workers: int) -> None:
    process, children = start_script(server, workers)
    try:
        sent = time.monotonic()
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=15)
        assert time.monotonic() - sent < 5, "Ctrl-C took too long"
        assert process.returncode == 130, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["stopped"] and summary["requests"] > 0
        assert summary["workers"] == workers
        assert wait_gone(children, 5), "a worker process survived"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in children:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_die_with_a_killed_parent(server: Server) -> None:
    process, children = start_script(server, 2)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        assert wait_gone(children, 5), "a worker process outlived its parent"
    finally:
        for pid in children:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
