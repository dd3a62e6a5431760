"""`report.json`: the whole run as data. Schema documented in docs/report-json.md."""

from __future__ import annotations

__all__ = ["SCHEMA", "render_json"]

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from gonogo.evidence import MetricRecord
from gonogo.evidence.digest import DIGEST_SCHEMA
from gonogo.report.document import RunReport, artifact_command

SCHEMA = "gonogo.report/1"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _metric(report: RunReport, metric: MetricRecord) -> dict[str, Any]:
    artifact = report.artifact_of(metric)
    where = None if artifact is None else {"check": artifact.check, "name": artifact.name}
    return {**asdict(metric), "full_name": metric.full_name, "artifact": where}


def render_json(report: RunReport) -> str:
    verdict = report.verdict
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "run": asdict(report.run),
        "verdict": None,
        "gates": [],
        "checks": [asdict(check) for check in report.checks],
        "metrics": [_metric(report, metric) for metric in report.metrics],
        "artifacts": [
            {**asdict(artifact), "retrieve": artifact_command(report.run.id, artifact)}
            for artifact in report.artifacts
        ],
        "resources": [asdict(resource) for resource in report.resources],
        "events": [asdict(event) for event in report.events],
        "findings": [finding.to_json() for finding in report.findings],
        "history": {
            "window": report.flaky_window,
            "flaky_tests": [test.to_json() for test in report.flaky_tests],
        },
    }
    if verdict is not None:
        document["verdict"] = {
            "decision": verdict.decision,
            "score": verdict.score,
            "minimum_score": verdict.minimum_score,
            "dimensions": verdict.dimensions,
            "reasons": verdict.reasons,
            "decided_at": verdict.decided_at,
        }
        document["gates"] = [asdict(gate) for gate in verdict.gates]
        document["verdict"]["outcome"] = report.outcome
        document["verdict"]["run_problems"] = verdict.run_problems
    document["signoff"] = _signoff(report)
    if report.baseline is not None:  # only runs with relative gates: older reports render as they did
        document["baseline"] = report.baseline.to_json()
    document["integrity"] = {
        "digest": DIGEST_SCHEMA,
        "evidence_sha256": report.evidence_digest,
        "plan_sha256": report.run.plan_hash,
    }
    return json.dumps(_plain(document), indent=2, sort_keys=False) + "\n"


def _signoff(report: RunReport) -> dict[str, Any] | None:
    status = report.signoff
    if status is None:
        return None
    why_not = dict(status.not_counted)
    counting = set(status.counted.values())
    return {
        "required_roles": status.required,
        "min_confidence": status.min_confidence,
        "complete": status.complete,
        "pending": status.pending,
        "signoffs": [
            {**asdict(signoff), "counts": signoff in counting, "why_not": why_not.get(signoff)}
            for signoff in report.signoffs
        ],
    }
