"""Finding runs (id, prefix, `latest`), listing them, and closing runs whose owner died."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import update

from gonogo.errors import UserError
from gonogo.evidence import Store, VerdictRecord
from gonogo.evidence import schema as s

BeginRun = Callable[..., str]  # the `begin_run` fixture


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_child() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_run_ids_are_short_and_sort_by_start_time(store: Store, begin_run: BeginRun) -> None:
    ids = [begin_run() for _ in range(3)]
    for run_id in ids:
        assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id)
        started = store.resolve_run(run_id).started_at
        assert run_id.startswith(started.strftime("%Y%m%d-%H%M%S"))
    assert len(set(ids)) == 3


def test_list_runs_newest_first(store: Store, begin_run: BeginRun) -> None:
    assert store.list_runs() == []
    ids = [begin_run(name=f"run {i}") for i in range(4)]
    runs = store.list_runs()
    assert [r.id for r in runs] == ids[::-1]
    assert [r.id for r in store.list_runs(limit=2)] == ids[:1:-1]
    assert runs[0].started_at >= runs[-1].started_at


def test_list_runs_shows_the_decision(store: Store, begin_run: BeginRun) -> None:
    decided, undecided = begin_run(), begin_run()
    store.save_verdict(
        decided,
        VerdictRecord(
            decision="GO",
            score=99.0,
            minimum_score=80.0,
            dimensions={"tests": 99.0},
            reasons=[],
            gates=[],
            decided_at=store.when(),
        ),
    )
    decisions = {r.id: r.decision for r in store.list_runs()}
    assert decisions == {decided: "GO", undecided: None}


def test_resolve_by_id_prefix_and_latest(store: Store, begin_run: BeginRun) -> None:
    first, second = begin_run(), begin_run()
    assert store.resolve_run(first).id == first
    assert store.resolve_run(f"  {second} ").id == second
    assert store.resolve_run("latest").id == second
    # The random suffix tells them apart.
    assert store.resolve_run(first[:-1]).id == first


def test_resolve_an_ambiguous_prefix_lists_candidates(store: Store, begin_run: BeginRun) -> None:
    ids = [begin_run() for _ in range(3)]
    prefix = ids[0]
    while not all(run_id.startswith(prefix) for run_id in ids):
        prefix = prefix[:-1]
    with pytest.raises(UserError) as caught:
        store.resolve_run(prefix)
    message = str(caught.value)
    assert "ambiguous" in message
    assert all(run_id in message for run_id in ids)


def test_resolve_nothing_matches(store: Store, begin_run: BeginRun) -> None:
    with pytest.raises(UserError, match="no runs in the evidence store yet"):
        store.resolve_run("latest")
    begin_run()
    with pytest.raises(UserError, match="no run matches '1999'"):
        store.resolve_run("1999")
    # LIKE wildcards in a reference are plain characters.
    with pytest.raises(UserError, match="no run matches '%'"):
        store.resolve_run("%")
    with pytest.raises(UserError, match="no run matches '____'"):
        store.resolve_run("____")
    with pytest.raises(UserError, match="no run given"):
        store.resolve_run(" ")


def test_stale_run_of_a_dead_owner_is_aborted(store: Store, begin_run: BeginRun, dead_pid: int) -> None:
    stale = begin_run(owner_pid=dead_pid)
    done_check = store.begin_check(stale, "unit", "tests")
    store.end_check(done_check, "completed", "176 passed")
    store.begin_check(stale, "load", "load")  # the one it was running when it died
    mine = begin_run()  # owned by this (live) process
    store.begin_check(mine, "load", "load")
    elsewhere = begin_run(owner_pid=dead_pid, host="some-other-host")
    finished = begin_run(owner_pid=dead_pid)
    store.finish_run(finished, "completed")

    assert store.mark_stale_runs_aborted() == [stale]

    run = store.resolve_run(stale)
    assert run.status == "aborted"
    assert str(dead_pid) in run.message
    assert run.ended_at is not None
    assert [(c.name, c.status) for c in store.checks(stale)] == [("unit", "completed"), ("load", "aborted")]
    assert "gonogo ended while this check ran" in store.checks(stale)[1].message
    assert store.resolve_run(mine).status == "running"
    assert [c.status for c in store.checks(mine)] == ["running"]
    assert store.resolve_run(elsewhere).status == "running"  # cannot tell: left alone
    assert store.resolve_run(finished).status == "completed"
    assert store.mark_stale_runs_aborted() == []


def test_a_reused_pid_does_not_keep_a_run_alive(
    store: Store, begin_run: BeginRun, live_child: subprocess.Popen[bytes]
) -> None:
    alive = begin_run(owner_pid=live_child.pid)
    reused = begin_run(owner_pid=live_child.pid)
    # As if the owner of `reused` had died and its pid gone to `live_child`, which
    # started later.
    with store._engine.begin() as conn:
        conn.execute(
            update(s.runs)
            .where(s.runs.c.id == reused)
            .values(owner_create_time=s.runs.c.owner_create_time - 3600)
        )
    assert store.mark_stale_runs_aborted() == [reused]
    assert store.resolve_run(alive).status == "running"
