"""time_to_recover: from the fault to the moment the hypothesis holds again and stays held."""

from __future__ import annotations

from gonogo.checks.chaos.check import Timeline
from gonogo.experiment.probes import ProbeResult, Round


def timeline(broken: tuple[float, float], *, removed: float, recovered: float) -> Timeline:
    """Rounds every 0.5 s from 0 to 12 s, failing within `broken`; the fault injected at 1 s."""
    t = Timeline(started=0.0, injected=1.0, removed=removed, recovered=recovered, ended=12.0)
    for tick in range(25):
        at = tick / 2
        ok = not broken[0] <= at < broken[1]
        phase = "before" if at < 1.0 else "during" if at < removed else "after"
        t.rounds.append((phase, Round(at, [ProbeResult("health", ok, "")])))
    return t


def test_a_kill_that_broke_the_hypothesis_for_4s_recovers_in_4s_even_if_its_window_lasts_longer() -> None:
    # A kill repeated later (a lasting fault): the service came back 4 s after the kill, while
    # the fault window still ran until 10 s.
    t = timeline((1.0, 5.0), removed=10.0, recovered=5.0)
    assert t.time_to_recover(instant=False) == (4.0, "the fault")
    assert t.time_to_recover(instant=True) == (4.0, "the fault")


def test_a_lasting_fault_recovers_from_its_removal() -> None:
    t = timeline((1.5, 11.0), removed=10.0, recovered=11.0)  # broken until 1 s after the removal
    assert t.time_to_recover(instant=False) == (1.0, "its removal")


def test_a_hypothesis_that_never_broke_took_no_time_to_recover() -> None:
    t = timeline((0.0, 0.0), removed=10.0, recovered=1.0)
    assert t.time_to_recover(instant=True) == (0.0, "")


def test_no_recovery_no_time() -> None:
    t = timeline((1.0, 99.0), removed=10.0, recovered=5.0)
    t.recovered = None
    assert t.time_to_recover(instant=True) is None
