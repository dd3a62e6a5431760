"""What gonogo asks git about a plan's folder: a run's commit, a sign-off's identity."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gonogo._git import git_output


def test_git_answers_inside_a_repository_and_none_outside(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.email", "qa@example.test"], check=True)
    assert git_output(repo, "config", "--get", "user.email") == "qa@example.test"
    assert git_output(repo, "config", "--get", "user.nothing") is None  # git exits 1: no value
    assert git_output(repo, "rev-parse", "HEAD") is None  # no commit yet
    assert git_output(tmp_path / "missing", "rev-parse", "HEAD") is None
