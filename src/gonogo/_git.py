"""Asking git about the plan's folder: what is known of where a run or a sign-off came from."""

from __future__ import annotations

__all__ = ["git_output"]

import subprocess
from pathlib import Path


def git_output(directory: Path, *args: str) -> str | None:
    """The trimmed output of `git -C directory ARGS`, or None (no git, no repository, no value)."""
    if not directory.is_dir():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None
