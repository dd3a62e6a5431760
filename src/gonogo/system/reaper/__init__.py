"""The watchdog that kills whatever gonogo started, however gonogo exits.

`Reaper` is gonogo's side; `python -m gonogo.system.reaper` is the watchdog process.

What it finds: every registered process group, every process with the run token in its
environment, every descendant of those, and every process it has seen among them before
(it looks twice a second). The one thing that can escape is a process that left its
group, cleared its environment and lost its parent in the half second between being
born and gonogo's hard death (SIGKILL), since nothing then links it to the run.
"""

from __future__ import annotations

__all__ = ["TAG_VARIABLE", "TOKEN_VARIABLE", "Reaper"]

from gonogo.system.reaper.client import TAG_VARIABLE, TOKEN_VARIABLE, Reaper
