"""The arrival schedule (`gonogo.loadgen.schedule`) against the C engine: the same plan gives
the same intended send times in Python and in `_engine.c`.

The C engine is run on a plan's worker parts (`engine._split`, as `run_load` runs them) with
a known start instant, against a server that notes when each request arrives on the same
clock (CLOCK_MONOTONIC). A request never arrives before its intended time, and arrives at
most the engine's own loop lag (plus the hop to the server) after it, so each arrival,
sorted, must lie just after the Python schedule's time of the same rank; the warm-up and
measured counts the engine reports must be the schedule's exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import free_port

from gonogo.loadgen.engine import Endpoint, LoadSpec, _schedule, _split
from gonogo.loadgen.journey_compile import Compiled, compile_journeys
from gonogo.loadgen.journey_engine import load_spec
from gonogo.loadgen.journey_load import journey_schedule
from gonogo.loadgen.native import load_engine
from gonogo.loadgen.schedule import Schedule, Xoshiro256, open_stages, share
from gonogo.loadgen.settings import LoadSettings

SERVER = Path(__file__).with_name("schedule_server.py")
_SLACK_NS = 20_000_000  # the hop from the engine's send to the server's note, on a busy machine
_TYPICAL_NS = 2_000_000  # the median of that hop plus the loop lag (~0.1 ms on an idle machine)


@contextlib.contextmanager
def arrival_server() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _arrivals_noted(port: int) -> list[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/times", timeout=10) as reply:
        times: list[int] = json.loads(reply.read())
        return times


def _check_against_c(port: int, spec: LoadSpec) -> None:
    """Run each worker part of `spec` on the C engine; compare with the Python schedule."""
    engine = load_engine()
    schedules = _schedule(spec).split(len(_split(spec)))
    for part, schedule in zip(_split(spec), schedules, strict=True):
        expected = list(schedule.arrivals())
        _arrivals_noted(port)  # forget anything earlier
        run = engine.Engine(**part.kwargs)
        start_ns = time.monotonic_ns() + 50_000_000
        run.run(start_ns=start_ns)
        raw = run.results()
        assert raw["start_ns"] == start_ns
        noted = sorted(t - start_ns for t in _arrivals_noted(port))
        counts = raw["endpoints"][0]
        where = f"worker {part.index} of {spec}"
        assert counts["warmup"]["sent"] == sum(warm for _, warm in expected), where
        assert counts["measured"]["sent"] == sum(not warm for _, warm in expected), where
        assert len(noted) == len(expected), where
        gaps = [got - intended for got, (intended, _) in zip(noted, expected, strict=True)]
        assert min(gaps) >= 0, f"{where}: a request arrived {-min(gaps)} ns before its intended time"
        assert max(gaps) <= raw["max_lag_us"] * 1000 + _SLACK_NS, where
        assert statistics.median(gaps) <= _TYPICAL_NS, where


def test_python_and_c_schedules_agree_on_every_intended_time() -> None:
    endpoints = [Endpoint("root", path="/")]
    plans = [
        # constant rate with a warm-up
        LoadSpec("127.0.0.1", 0, endpoints, rate=300, duration=0.3, warmup=0.1),
        # ramps from 0 up then down, the second cut by the duration
        LoadSpec("127.0.0.1", 0, endpoints, stages=[(0.3, 400), (0.3, 100)], duration=0.45),
        # Poisson with a seed, bounded by max_requests
        LoadSpec("127.0.0.1", 0, endpoints, rate=250, duration=1.0, poisson=True, seed=7, max_requests=60),
        # split over two workers: interleaved deterministic arrivals, Poisson with seeds 11 and 12
        LoadSpec("127.0.0.1", 0, endpoints, rate=100, duration=0.3, warmup=0.1, workers=2),
        LoadSpec("127.0.0.1", 0, endpoints, rate=200, duration=0.3, poisson=True, seed=11, workers=2),
    ]
    with arrival_server() as port:
        for plan in plans:
            _check_against_c(port, LoadSpec(**{**plan.__dict__, "port": port}))


def test_a_schedule_is_cut_and_split_as_the_engine_runs_it() -> None:
    assert open_stages(200.0, [], 2.0, 0.5) == [(0.5, 200.0, 200.0), (2.0, 200.0, 200.0)]
    assert open_stages(None, [(1.0, 100.0), (1.0, 300.0)], 1.5, 0.0) == [
        (1.0, 0.0, 100.0),
        (0.5, 100.0, 200.0),  # cut half-way up its ramp
    ]
    # the warm-up at the first ramp's target
    assert open_stages(None, [(1.0, 100.0)], None, 1.0)[0] == (1.0, 100.0, 100.0)
    assert [share(10, 3, i) for i in range(3)] == [4, 3, 3]
    whole = Schedule(((1.0, 30.0, 30.0),), max_measured=10)
    parts = whole.split(3)
    assert [p.offset for p in parts] == [0.0, 1 / 3, 2 / 3]
    assert [p.max_measured for p in parts] == [4, 3, 3]
    # deterministic: the workers' arrivals interleave into the whole's, 1/30 s apart (to 1 ns of rounding)
    unbounded = Schedule(((1.0, 30.0, 30.0),))
    merged = sorted(at for part in unbounded.split(3) for at, _ in part.arrivals())
    alone = [at for at, _ in unbounded.arrivals()]
    assert len(merged) == len(alone) == 30
    assert all(abs(a - b) <= 1 for a, b in zip(merged, alone, strict=True))
    assert len(list(whole.arrivals())) == 10
    # a ramp's arrivals: N(t) = 50 t² over 1 s from 0 to 100/s: arrival k at sqrt(k / 50)
    ramp = [at for at, _ in Schedule(((1.0, 0.0, 100.0),)).arrivals()]
    assert len(ramp) == 50
    assert ramp[:3] == [0, int((1 / 50) ** 0.5 * 1e9), int((2 / 50) ** 0.5 * 1e9)]


def test_the_random_generator_is_seeded_as_the_c_engines() -> None:
    # splitmix64 from 0: its well-known first output is the first word of the state
    assert Xoshiro256(0).s[0] == 0xE220A8397B1DCDAF
    draws = [Xoshiro256(7).unit() for _ in range(2)]
    assert draws[0] == draws[1] and 0.0 <= draws[0] < 1.0  # a seed gives one sequence


@pytest.mark.parametrize("workers", [1, 4])
def test_every_worker_is_bounded_by_the_whole_plans_duration(workers: int) -> None:
    schedule = Schedule(((0.5, 40.0, 40.0),), poisson=True, seed=3)
    for part in schedule.split(workers):
        assert all(0 <= at < 500_000_000 for at, _ in part.arrivals())


@pytest.mark.parametrize(
    "shape",
    [
        {"rate": "300/s", "duration": "2s", "warmup": "1s"},
        {
            "stages": [{"duration": "1s", "rate": "100/s"}, {"duration": "2s", "rate": "40/s"}],
            "max_duration": "3s",
        },
        {"rate": "50/s", "duration": "10s", "arrivals": "poisson", "seed": 5, "max_requests": 40},
    ],
)
def test_the_python_driver_runs_the_schedule_the_c_engine_runs(shape: dict[str, Any]) -> None:
    settings = LoadSettings.model_validate(
        {"model": "open", "journeys": {"j": {"steps": [{"name": "s", "request": {"path": "/"}}]}}, **shape}
    )
    compiled = compile_journeys(settings, "http://127.0.0.1:8080", files={}, expand=str)
    assert isinstance(compiled, Compiled)
    on_c = _schedule(load_spec(settings, compiled, "http://127.0.0.1:8080"))
    assert list(journey_schedule(settings).arrivals()) == list(on_c.arrivals())
