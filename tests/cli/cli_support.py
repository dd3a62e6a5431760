"""Running the real `gonogo` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "docservice"
JUNIT_FIXTURE = REPO / "tests" / "fixtures" / "junit" / "pytest.xml"
SESSION_VARIABLE = "GONOGO_TEST_SESSION"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def gonogo_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Services in the plans run `python`: the one that has gonogo and the example installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GITHUB_STEP_SUMMARY", None)
    # Inherited by everything the run starts: lets `no_leftovers` tell this session's processes
    # from those of another test session running at the same time.
    env[SESSION_VARIABLE] = str(os.getpid())
    env.update(extra)
    return env


def gonogo(*args: str, cwd: Path, timeout: float = 300, **env: str) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "gonogo", *args],
        cwd=cwd,
        env=gonogo_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write_plan(directory: Path, text: str) -> Path:
    path = directory / "gonogo.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def tokened_processes(token: str) -> list[int]:
    """Processes that carry a run's token in their environment (children of a run)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("GONOGO_RUN_TOKEN") == token:
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
