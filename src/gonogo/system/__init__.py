"""The system under test: starting, watching and stopping its services.

Nothing gonogo starts outlives it: every process runs in its own process group with the
run's token in its environment, and a watchdog process (the `Reaper`) kills whatever is
left when gonogo exits, however it exits.
"""

from __future__ import annotations

__all__ = [
    "CommandOutcome",
    "Reaper",
    "System",
    "SystemObserver",
    "allocate_ports",
    "run_command",
    "tail_lines",
]

from gonogo.system.command import CommandOutcome, run_command
from gonogo.system.observer import SystemObserver
from gonogo.system.ports import allocate_ports
from gonogo.system.process import tail_lines
from gonogo.system.reaper import Reaper
from gonogo.system.system import System
