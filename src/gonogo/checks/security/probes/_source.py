"""Which file of the service's own code a traversal asks for, found from its running process.

The strongest evidence of a traversal is the service serving its own source, so each watched
service's processes are looked at (the one gonogo started first, then its children: a
pre-forking server's master and workers share one command line):

1. the module its command names (`python -m docservice.api`, `gunicorn httpbin:app`,
   `uvicorn app.main:app`, `flask --app hello run`), looked up where that process's Python
   imports from: its working directory, its PYTHONPATH, then the `sys.path` its own interpreter
   gives (a virtualenv's or the system's site-packages, where an installed package lives);
2. a script its command runs (`python app.py`, `node server.js`);
3. else a project file or a Python file of its working directory.

A file is recognised in a response by a line of code long enough to be its own, or, for a
file too small to have one (a package's two-line `__init__.py`), by its whole text.
"""

from __future__ import annotations

__all__ = ["TargetFile", "own_files"]

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from gonogo.checks.security.target import Target

PROJECT_FILES = (
    "pyproject.toml",
    "setup.py",
    "requirements.txt",
    "package.json",
    "go.mod",
    "Cargo.toml",
    "pom.xml",
)
SCRIPT_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".rb", ".php")
_PYTHON = re.compile(r"^python[\d.]*$")
_APP = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_][\w.]*(\(.*\))?$")  # `module:app`, `module:create_app()`
_MODULE = re.compile(r"^[A-Za-z_][\w.]*$")
_APP_OPTIONS = ("--app", "-A")  # flask --app hello, celery -A proj
# What the service's interpreter is asked: where it imports from (nothing of the service is imported)
_SYS_PATH = "import json, sys; print(json.dumps(sys.path))"
_ENVIRONMENT = (
    "PATH",
    "HOME",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "PYTHONNOUSERSITE",
)
SHORT_LINE = 30  # a line of code shorter than this may be in another file too
SMALL_FILE = 2048  # a file this small with no long line is recognised by its whole text
WHITESPACE = r"(?:\s|\\[rn])+"  # between lines: as served, or escaped in a JSON string


@dataclass(frozen=True)
class TargetFile:
    """A file outside every served folder, and how to recognise its content in a response."""

    path: str  # absolute
    marker: re.Pattern[str]
    label: str  # "/etc/passwd", "httpbin's module httpbin"


def own_files(target: Target) -> tuple[list[TargetFile], list[str]]:
    """One file of each watched service's own code, and why none was found for the others."""
    if target.services is None or not target.service_names:
        return [], ["gonogo did not start the services (no `system.services`): no process to look at"]
    files: list[TargetFile] = []
    missing: list[str] = []
    for name in target.service_names:
        try:
            processes = sorted(target.services.processes(name), key=lambda process: not process.leader)
        except Exception:  # a service that is gone has no files to find: the crash is reported elsewhere
            processes = []
        if not processes:
            missing.append(f"{name} has no live process")
            continue
        found = next((file for p in processes if (file := source_file(name, p.pid)) is not None), None)
        if found is None:
            missing.append(
                f"neither the command line of {name} nor its working directory names a readable source file"
            )
        elif found.path not in {file.path for file in files}:
            files.append(found)
    return files, missing


def source_file(service: str, pid: int) -> TargetFile | None:
    """The file of process `pid`'s own code to ask for, found as the module docstring says."""
    try:
        process = psutil.Process(pid)
        words = process.cmdline()
        cwd = Path(process.cwd())
    except (psutil.Error, OSError):
        return None
    if not words:
        return None
    try:
        environment = {key: value for key, value in process.environ().items() if key in _ENVIRONMENT}
    except (psutil.Error, OSError):
        environment = {}
    modules, scripts = _named(words)
    candidates: list[tuple[Path, str]] = []
    if modules:
        places = _import_path(words[0], cwd, environment)
        for module in modules:
            found = _module_file(module, places)
            if found is not None:
                candidates.append((found, f"{service}'s module {module}"))
    candidates += [(cwd / script, f"{service}'s script {Path(script).name}") for script in scripts]
    candidates += [(cwd / name, f"{service}'s {name}") for name in PROJECT_FILES]
    candidates += [(path, f"{service}'s {path.name}") for path in sorted(cwd.glob("*.py"))[:5]]
    for path, label in candidates:
        marker = _marker(path)
        if marker is not None:
            return TargetFile(str(path.resolve()), marker, label)
    return None


def _named(words: list[str]) -> tuple[list[str], list[str]]:
    """The modules (`-m x`, `x:app`, `--app x`) and scripts a command line names."""
    modules: list[str] = []
    scripts: list[str] = []
    arguments = words[1:] if _PYTHON.match(Path(words[0]).name) else words
    for index, word in enumerate(arguments):
        following = arguments[index + 1] if index + 1 < len(arguments) else ""
        if word == "-c":
            break  # the rest is code and its arguments
        if word == "-m" and _MODULE.match(following):
            modules.append(following)
        elif word in _APP_OPTIONS and (app := _APP.match(following)) is not None:
            modules.append(app.group(1))
        elif word in _APP_OPTIONS and _MODULE.match(following):
            modules.append(following)
        elif match := _APP.match(word):
            modules.append(match.group(1))
        elif word.endswith(SCRIPT_SUFFIXES) and not word.startswith("-"):
            scripts.append(word)
    return modules, scripts


def _import_path(command: str, cwd: Path, environment: dict[str, str]) -> list[Path]:
    """Where the process's Python imports from: its working directory, its PYTHONPATH, and the
    `sys.path` of its interpreter (asked with the process's own PATH and PYTHON* variables)."""
    places = [cwd]
    places += [cwd / entry for entry in environment.get("PYTHONPATH", "").split(os.pathsep) if entry]
    interpreter = _interpreter(command, cwd, environment)
    if interpreter is None:
        return places
    try:
        answer = subprocess.run(
            [interpreter, "-c", _SYS_PATH],
            cwd=cwd,
            env=environment or None,
            capture_output=True,
            timeout=10,
            check=True,
        )
        entries = json.loads(answer.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return places
    return places + [cwd / str(entry) for entry in entries if isinstance(entry, str) and entry]


def _interpreter(command: str, cwd: Path, environment: dict[str, str]) -> str | None:
    """The Python the process runs: its command (a virtualenv's `bin/python` is kept as named,
    so that it still finds the virtualenv's packages), or the one a script's `#!` line names."""
    if "/" not in command:
        command = shutil.which(command, path=environment.get("PATH")) or command
    path = cwd / command
    if _PYTHON.match(path.name):
        return str(path) if path.is_file() else None
    try:
        with path.open("rb") as handle:
            first = handle.readline(256).decode("utf-8", errors="replace")
    except OSError:
        return None
    words = first.removeprefix("#!").split()
    if not first.startswith("#!") or not words:
        return None
    if Path(words[0]).name == "env" and len(words) > 1:  # `#!/usr/bin/env python3`
        return shutil.which(words[1], path=environment.get("PATH"))
    return words[0] if _PYTHON.match(Path(words[0]).name) else None


def _module_file(module: str, places: list[Path]) -> Path | None:
    """The file of `module` (a package's `__init__.py`) in the first place that has it."""
    parts = module.split(".")
    for place in places:
        base = place.joinpath(*parts)
        for path in (base / "__init__.py", base.parent / f"{parts[-1]}.py"):
            if path.is_file():
                return path
    return None


def _marker(path: Path) -> re.Pattern[str] | None:
    """What shows the file's content in a response: its longest line of code (a docstring's
    sentence may also be in the API's description), or its whole text for a small file."""
    try:
        if not path.is_file():
            return None
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in head.splitlines()[:60] if "\ufffd" not in line]
    code = [line for line in lines if re.search(r"[=(){}\[\]:]", line) and not line.startswith("#")]
    longest = max(code, key=len, default="")
    if len(longest) >= SHORT_LINE:
        return re.compile(re.escape(longest[:120]))
    if size <= SMALL_FILE and len("".join(lines)) >= 12:
        return re.compile(WHITESPACE.join(re.escape(line) for line in lines if line))
    long_enough = [line for line in code or lines if len(line) >= 12]
    return re.compile(re.escape(max(long_enough, key=len)[:120])) if long_enough else None
