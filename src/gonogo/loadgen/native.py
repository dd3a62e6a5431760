"""The one place that imports the load engine's C extension (`gonogo.loadgen._engine`).

The extension is optional at install (setup.py warns instead of failing when it cannot be
compiled), so nothing imports it at module level: `gonogo validate` and everything else
that only reads a plan work without it. `engine` stands for the extension module and loads
it on first use; `load_engine()` does so explicitly. Either raises `EngineNotBuilt`, whose
message says what is missing (the C compiler, Python's headers) and how to build, when the
extension is not there.

The fault proxy's C relay (`gonogo.faults._relay`) is optional the same way: without it, its
links take the asyncio path (faults/proxy.py).
"""

from __future__ import annotations

__all__ = ["ERROR_KINDS", "EngineNotBuilt", "build_problem", "engine", "load_engine"]

import functools
import os
import shutil
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError

# The error kinds the engine counts, in its order (`_engine.ERROR_KINDS`, checked on load).
ERROR_KINDS: tuple[str, ...] = (
    "http_4xx",
    "http_5xx",
    "refused",
    "connect",
    "reset",
    "closed",
    "timeout",
    "protocol",
    "assertion",
)


class EngineNotBuilt(GonogoError, RuntimeError):
    """The load engine's C extension is not built (or not this version's); the message says
    what is missing and how to build it."""


def build_problem() -> str:
    """Why the extension could not have been built here, and what to run."""
    rebuild = "then reinstall gonogo (`pip install -e .`; in a checkout, `setup.py build_ext --inplace`)"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "gcc").split()[0]
    if shutil.which(compiler) is None:
        return f"{compiler} not found: apt-get install gcc python3-dev (or another C compiler), {rebuild}"
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        return f"Python's C headers not found ({include}/Python.h): apt-get install python3-dev, {rebuild}"
    return f"{compiler} and Python's headers are there: {rebuild}, and read why its build failed"


@functools.cache
def load_engine() -> ModuleType:
    """The extension module; `EngineNotBuilt` if it is missing or stale."""
    try:
        from gonogo.loadgen import _engine as module
    except ImportError as error:
        raise EngineNotBuilt(
            f"the C load engine (gonogo.loadgen._engine) is not built ({error}): {build_problem()}"
        ) from None
    if tuple(module.ERROR_KINDS) != ERROR_KINDS:
        raise EngineNotBuilt(
            "the C load engine (gonogo.loadgen._engine) was built from another version of gonogo "
            f"(error kinds {tuple(module.ERROR_KINDS)}): rebuild it (`pip install -e .`, or "
            "`python setup.py build_ext --inplace`)"
        )
    return module


class _OnFirstUse:
    """The extension module, imported when one of its names is first used."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load_engine(), name)


if TYPE_CHECKING:
    from gonogo.loadgen import _engine as engine
else:
    engine = _OnFirstUse()
