"""Sign-offs: a GO whose plan requires roles is released once each role has signed it off.

A sign-off counts when its role is required, its confidence reaches the plan's minimum, and
it was given on the evidence as it stands now (the same evidence digest): a sign-off on an
older digest does not count for a verdict recomputed since. Of several that count for a
role, the latest is shown.
"""

from __future__ import annotations

__all__ = ["SignoffStatus", "outcome", "signoff_status"]

from collections.abc import Sequence
from dataclasses import dataclass

from gonogo.evidence.records import SignoffRecord, VerdictRecord


@dataclass(frozen=True)
class SignoffStatus:
    required: list[str]
    min_confidence: int
    counted: dict[str, SignoffRecord]  # role → the sign-off that counts for it
    not_counted: list[tuple[SignoffRecord, str]]  # each with why it does not count

    @property
    def pending(self) -> list[str]:
        return [role for role in self.required if role not in self.counted]

    @property
    def complete(self) -> bool:
        return not self.pending


def signoff_status(
    verdict: VerdictRecord | None, signoffs: Sequence[SignoffRecord], evidence_digest: str
) -> SignoffStatus | None:
    """None when the verdict requires no sign-off (or there is no verdict)."""
    if verdict is None or verdict.signoff is None:
        return None
    requirement = verdict.signoff
    counted: dict[str, SignoffRecord] = {}
    not_counted: list[tuple[SignoffRecord, str]] = []
    for signoff in signoffs:  # oldest first: a later one that counts replaces an earlier one
        why = _why_not_counted(signoff, requirement.roles, requirement.min_confidence, evidence_digest)
        if why is None:
            counted[signoff.role] = signoff
        else:
            not_counted.append((signoff, why))
    return SignoffStatus(list(requirement.roles), requirement.min_confidence, counted, not_counted)


def _why_not_counted(
    signoff: SignoffRecord, roles: Sequence[str], min_confidence: int, evidence_digest: str
) -> str | None:
    if signoff.role not in roles:
        return f"the role {signoff.role} is not one the plan requires ({', '.join(roles)})"
    if signoff.decision != "GO":
        return f"it was given on a {signoff.decision} verdict"
    if signoff.confidence < min_confidence:
        return f"confidence {signoff.confidence} is below the minimum {min_confidence}"
    if signoff.evidence_digest != evidence_digest:
        return (
            f"it was given on other evidence (digest {signoff.evidence_digest[:12]}…, "
            f"now {evidence_digest[:12]}…): the verdict or its evidence changed since"
        )
    return None


def outcome(verdict: VerdictRecord | None, status: SignoffStatus | None) -> str:
    """The headline: GO, NO-GO, or GO pending the sign-offs still missing."""
    if verdict is None:
        return "NO VERDICT"
    if verdict.decision == "GO" and status is not None and not status.complete:
        return f"GO, pending sign-off (missing: {', '.join(status.pending)})"
    return verdict.decision
