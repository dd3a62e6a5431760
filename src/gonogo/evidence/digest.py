"""The evidence digest: one sha256 over everything recorded about a run except its sign-offs.

It is what `report.json` carries in `integrity.evidence_sha256`, what a sign-off records as
"what I saw", and what `gonogo verify` recomputes. Defined in docs/verify.md: the sha256 of
the canonical JSON (sorted keys, no spaces, ASCII, times in ISO 8601 UTC, row ids left out)
of the run, its checks, metrics, artifacts (with their sha256), events, per-second series,
and the verdict with its gates. Sign-offs and report files are left out: they come after
the verdict and must not change what was signed.
"""

from __future__ import annotations

__all__ = ["DIGEST_SCHEMA", "evidence_digest"]

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from gonogo.evidence.records import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    MetricRecord,
    RunRecord,
    SampleSeries,
    VerdictRecord,
)

DIGEST_SCHEMA = "gonogo.evidence/1"  # changes if what the digest covers ever changes
_RUN_FIELDS = (
    "id", "name", "plan_hash", "git_commit", "host", "tool_versions",
    "started_at", "ended_at", "status", "message",
)  # fmt: skip


def evidence_digest(
    run: RunRecord,
    checks: Sequence[CheckRecord],
    metrics: Sequence[MetricRecord],
    artifacts: Sequence[ArtifactRecord],
    events: Sequence[EventRecord],
    series: Sequence[SampleSeries],
    verdict: VerdictRecord | None,
) -> str:
    document = {
        "digest": DIGEST_SCHEMA,
        # Not the owner's pid nor the joined decision: bookkeeping, not evidence.
        "run": {key: getattr(run, key) for key in _RUN_FIELDS},
        "checks": [_without_id(asdict(check)) for check in checks],
        "metrics": [_without_id(asdict(metric)) for metric in metrics],
        "artifacts": [asdict(artifact) for artifact in artifacts],
        "events": [asdict(event) for event in events],
        "series": [{"name": s.name, "labels": s.labels, "unit": s.unit, "points": s.points} for s in series],
        "verdict": None if verdict is None else _verdict(verdict),
    }
    canonical = json.dumps(
        _plain(document), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _verdict(verdict: VerdictRecord) -> dict[str, Any]:
    fields = asdict(verdict)
    fields["gates"] = [{k: v for k, v in gate.items() if k != "metric_id"} for gate in fields["gates"]]
    if fields["baseline"] is None:
        # a run with no relative gate digests as it did before verdicts kept their baseline
        del fields["baseline"]
    return fields


def _without_id(fields: dict[str, Any]) -> dict[str, Any]:
    # Row ids belong to one database: a copied or migrated store may number rows otherwise.
    return {key: value for key, value in fields.items() if key != "id"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
