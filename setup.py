"""Build of gonogo's C extensions; everything else about the package is in pyproject.toml.

`pip install -e '.[dev]'` (what `make test` and `make demo` run) compiles them in place.
Both are optional: without a C compiler (or Python's headers) the install still succeeds
with a warning saying what is missing. gonogo then validates plans and runs every check
but load generation, which says how to build the engine (gonogo/loadgen/native.py); the
fault proxy relays in asyncio instead of C.
"""

import os
import shutil
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _missing() -> str:
    """What a failed build most likely lacked, and how to get it."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "gcc").split()[0]
    if shutil.which(compiler) is None:
        return f"{compiler} not found: apt-get install gcc python3-dev (or another C compiler)"
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        return f"Python's C headers not found ({include}/Python.h): apt-get install python3-dev"
    return "see the compiler's message above"


class OptionalBuildExt(build_ext):
    """build_ext that warns, instead of failing the install, when an extension cannot be built."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # no compiler at all: distutils fails before any extension
            self._warn("gonogo's C extensions", error)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # CompileError, a missing compiler executable, missing headers
            self._warn(ext.name, error)

    def _warn(self, what: str, error: Exception) -> None:
        line = "=" * 78
        print(
            f"\n{line}\nWARNING: {what} not built ({type(error).__name__}: {error}).\n"
            f"{_missing()}, then reinstall (pip install -e .).\n"
            "Until then gonogo validates plans and runs every check but load generation, which\n"
            "will say the same; the fault proxy relays in Python.\n"
            f"{line}\n",
            flush=True,
        )


setup(
    cmdclass={"build_ext": OptionalBuildExt},
    ext_modules=[
        Extension(
            "gonogo.loadgen._engine",
            sources=["src/gonogo/loadgen/_engine.c"],
            extra_compile_args=["-O2", "-Wall"],
            libraries=["m"],
        ),
        Extension(
            "gonogo.faults._relay",
            sources=["src/gonogo/faults/_relay.c"],
            extra_compile_args=["-O2", "-Wall"],
        ),
    ],
)
