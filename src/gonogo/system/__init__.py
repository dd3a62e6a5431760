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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gonogo.system.command import CommandOutcome, run_command
    from gonogo.system.observer import SystemObserver
    from gonogo.system.ports import allocate_ports
    from gonogo.system.process import tail_lines
    from gonogo.system.reaper import Reaper
    from gonogo.system.system import System

# Imported when first used: the watchdog process (`python -m gonogo.system.reaper`), which every
# run waits for, needs none of the rest, and importing it all (the plan models, the readiness
# probes, httpx) made it 0.3 s slower to start.
_HOME = {
    "CommandOutcome": "gonogo.system.command",
    "run_command": "gonogo.system.command",
    "SystemObserver": "gonogo.system.observer",
    "allocate_ports": "gonogo.system.ports",
    "tail_lines": "gonogo.system.process",
    "Reaper": "gonogo.system.reaper",
    "System": "gonogo.system.system",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
