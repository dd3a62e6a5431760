"""Findings as stored evidence: a check that finds defects (the `security` check) stores them
as one JSON artifact of media type `FINDINGS_MEDIA_TYPE`, shaped
`{"findings": [{"rule", "title", "severity", "category", "operation", "request", "response",
"reproduction", "fix", "source", ...}], "ignored": [{..., "ignored_because"}]}`, and every
report lists them from there (the ignored ones apart: accepted risks, with their reason)."""

from __future__ import annotations

__all__ = ["FINDINGS_MEDIA_TYPE", "StoredFinding", "read_findings"]

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonogo.evidence.records import ArtifactRecord

FINDINGS_MEDIA_TYPE = "application/vnd.gonogo.findings+json"
_SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class StoredFinding:
    check: str
    rule: str
    title: str
    severity: str
    category: str
    operation: str
    request: str
    response: str
    reproduction: str
    fix: str
    source: str
    ignored_because: str = ""  # an accepted risk of the plan (`ignore:`), with its reason: not counted

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_findings(artifacts: list[ArtifactRecord], path_of: Any) -> list[StoredFinding]:
    """The findings of every findings artifact of a run, most severe first. `path_of(sha256)` is
    where the store keeps an artifact's bytes; one that is missing or unreadable is skipped
    (`gonogo verify` is what reports a missing or altered artifact)."""
    found: list[StoredFinding] = []
    for artifact in artifacts:
        if artifact.media_type != FINDINGS_MEDIA_TYPE:
            continue
        try:
            document = json.loads(Path(path_of(artifact.sha256)).read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        for item in [*document.get("findings", []), *document.get("ignored", [])]:
            if isinstance(item, dict):
                found.append(
                    StoredFinding(
                        check=artifact.check or "",
                        ignored_because=str(item.get("ignored_because") or ""),
                        **{name: str(item.get(name, "")) for name in _FIELDS},
                    )
                )
    rank = {severity: index for index, severity in enumerate(_SEVERITY_ORDER)}
    found.sort(key=lambda finding: (rank.get(finding.severity, len(rank)), finding.check, finding.operation))
    return found


_FIELDS = (
    "rule", "title", "severity", "category", "operation",
    "request", "response", "reproduction", "fix", "source",
)  # fmt: skip
