"""`gonogo approve`: recording who signed a run off, in which role, and on what evidence."""

from __future__ import annotations

__all__ = ["approve", "signer_identity"]

import getpass
import os
from dataclasses import replace
from pathlib import Path

from gonogo._git import git_output
from gonogo.errors import UserError
from gonogo.evidence import SignoffRecord, Store
from gonogo.report import RunReport


def approve(store: Store, report: RunReport, *, role: str, confidence: int, note: str) -> SignoffRecord:
    """Record a sign-off of `report`'s run on its current evidence digest.

    Refused (UserError): a run without a verdict, a NO-GO (a sign-off cannot make it GO, so it
    is not recorded at all), a plan that requires no sign-off, a role the plan does not require.
    """
    verdict, run = report.verdict, report.run
    if verdict is None:
        raise UserError(f"run {run.id} reached no verdict ({run.status}): there is nothing to sign off")
    if verdict.decision != "GO":
        raise UserError(f"run {run.id} is NO-GO: a sign-off cannot release it, so none is recorded")
    if verdict.signoff is None:
        raise UserError(f"the plan of run {run.id} requires no sign-off (add `signoff:` to the plan)")
    if role not in verdict.signoff.roles:
        raise UserError(
            f"the plan of run {run.id} does not require the role {role!r}; "
            f"it requires: {', '.join(verdict.signoff.roles)}"
        )
    user, git_name, git_email = signer_identity(Path(run.plan_path).parent)
    signoff = SignoffRecord(
        role=role,
        confidence=confidence,
        note=note,
        user=user,
        git_name=git_name,
        git_email=git_email,
        signed_at=store.when(),
        evidence_digest=report.evidence_digest,
        decision=verdict.decision,
    )
    return replace(signoff, id=store.add_signoff(run.id, signoff))


def signer_identity(plan_dir: Path) -> tuple[str, str | None, str | None]:
    """The OS user, and the git identity configured for the plan's folder when there is one."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        user = f"uid {os.getuid()}"
    return user, _git_config(plan_dir, "user.name"), _git_config(plan_dir, "user.email")


def _git_config(directory: Path, key: str) -> str | None:
    return git_output(directory, "config", "--get", key)
