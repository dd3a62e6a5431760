"""Build the response-parser fuzzer (tests/fuzz/parser_fuzz.c) against this Python.

    python tests/fuzz/fuzz_build.py libfuzzer OUT  # clang -fsanitize=fuzzer,... (`make fuzz`)
    python tests/fuzz/fuzz_build.py main OUT       # runs the files it is given (the pytest)

Both are built with AddressSanitizer and UndefinedBehaviorSanitizer, halting on the first
report. The harness includes _engine.c and embeds the Python it is built with (the Engines are
made by the real constructor), so it links that Python's libpython. Prints the program's path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "parser_fuzz.c"
ENGINE = HERE.parent.parent / "src" / "gonogo" / "loadgen" / "_engine.c"
SANITIZERS = "address,undefined"


class BuildError(Exception):
    """No compiler for the kind asked, or the build failed (the compiler's output says why)."""


def python_link_flags() -> list[str]:
    """The flags that link this interpreter's libpython into a program (python3-config --embed)."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    version = sysconfig.get_config_var("LDVERSION") or f"{sys.version_info[0]}.{sys.version_info[1]}"
    libs = (sysconfig.get_config_var("LIBS") or "").split() + (
        sysconfig.get_config_var("SYSLIBS") or ""
    ).split()
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return [f"-L{libdir}", f"-lpython{version}", f"-Wl,-rpath,{libdir}", *libs]
    static = Path(sysconfig.get_config_var("LIBPL") or libdir) / (sysconfig.get_config_var("LIBRARY") or "")
    return [str(static), "-Xlinker", "-export-dynamic", *libs]


def compiler(kind: str) -> str:
    """clang for libFuzzer; for the plain program clang or else gcc (CC overrides both)."""
    wanted = os.environ.get("CC")
    if wanted:
        return wanted
    for name in ("clang",) if kind == "libfuzzer" else ("clang", "gcc"):
        if shutil.which(name):
            return name
    raise BuildError(
        "no C compiler: libFuzzer needs clang (apt-get install clang)"
        if kind == "libfuzzer"
        else "no C compiler (clang or gcc)"
    )


def build(kind: str, out_dir: Path) -> Path:
    """Build the fuzzer of `kind` ("libfuzzer" or "main") in out_dir (a build newer than its sources is
    reused)."""
    if kind not in ("libfuzzer", "main"):
        raise BuildError(f"kind is 'libfuzzer' or 'main', not {kind!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / ("parser_fuzz" if kind == "libfuzzer" else "parser_fuzz_main")
    newest_source = max(HARNESS.stat().st_mtime, ENGINE.stat().st_mtime, Path(__file__).stat().st_mtime)
    if out.exists() and out.stat().st_mtime > newest_source:
        return out
    cc = compiler(kind)
    sanitize = f"-fsanitize=fuzzer,{SANITIZERS}" if kind == "libfuzzer" else f"-fsanitize={SANITIZERS}"
    command = [
        cc,
        "-g",
        "-O1" if kind == "libfuzzer" else "-O0",  # -O0: builds in 2 s instead of 10 for the pytest
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=all",
        sanitize,
        f"-I{sysconfig.get_paths()['include']}",
        *(["-DFUZZ_MAIN"] if kind == "main" else []),
        str(HARNESS),
        "-o",
        str(out) + ".tmp",
        *python_link_flags(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"{' '.join(command)}\n{done.stdout}{done.stderr}")
    os.replace(str(out) + ".tmp", out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(build(argv[1], Path(argv[2])))
    except BuildError as error:
        print(f"fuzz_build.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
