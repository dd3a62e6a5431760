"""The files behind a run: its artifacts (content-addressed by sha256) and its plan file."""

from __future__ import annotations

__all__ = ["artifact_mismatches", "plan_file_findings", "sha256_of_file"]

import hashlib
from pathlib import Path

from gonogo.report import RunReport

_CHUNK = 1024 * 1024


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_mismatches(report: RunReport, path_of: dict[str, Path]) -> list[str]:
    """Each artifact whose file is missing or no longer hashes to its name.

    `path_of`: sha256 → where the store keeps that content (metrics may name an artifact too).
    """
    found: list[str] = []
    named = {artifact.sha256: artifact.name for artifact in report.artifacts}
    for metric in report.metrics:
        if metric.artifact_sha256 is not None:
            named.setdefault(metric.artifact_sha256, f"read by metric {metric.full_name}")
    for sha256, name in named.items():
        path = path_of[sha256]
        what = f"artifact {name} (sha256 {sha256[:12]}…)"
        try:
            actual = sha256_of_file(path)
        except FileNotFoundError:
            found.append(f"{what}: the file is missing ({path})")
            continue
        except OSError as error:
            found.append(f"{what}: the file cannot be read ({path}: {error.strerror or error})")
            continue
        if actual != sha256:
            found.append(f"{what}: the file's content no longer matches (it now hashes to {actual[:12]}…)")
    return found


def plan_file_findings(plan_path: Path, plan_hash: str) -> tuple[list[str], list[str]]:
    """(mismatches, warnings) about the plan file on disk against the plan the run stored."""
    try:
        actual = sha256_of_file(plan_path)
    except FileNotFoundError:
        return [], [
            f"the plan file {plan_path} is not here: the plan stored with the run was used "
            "(compare a copy of the plan with --plan PATH)"
        ]
    except OSError as error:
        return [], [
            f"the plan file {plan_path} cannot be read ({error.strerror or error}); the stored plan was used"
        ]
    if actual != plan_hash:
        return [
            f"the plan file {plan_path.name} changed since the run (sha256 {actual[:12]}… now, "
            f"{plan_hash[:12]}… at the run; the verdict was recomputed with the plan stored with the run)"
        ], []
    return [], []
