"""The background load of an operation check: the plan's requests from the load engine, open model."""

from __future__ import annotations

__all__ = ["first_figures"]

import time

from gonogo.experiment.traffic import FIRST_FIGURES_WAIT, BackgroundTraffic
from gonogo.loadgen.engine import ProgressSnapshot


def first_figures(traffic: BackgroundTraffic) -> ProgressSnapshot | None:
    """The load's latest figures, once it has reported any (it does once a second); None if it
    has not within FIRST_FIGURES_WAIT."""
    deadline = time.monotonic() + FIRST_FIGURES_WAIT
    while (snapshot := traffic.latest()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return snapshot
