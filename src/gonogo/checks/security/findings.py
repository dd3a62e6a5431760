"""What the security check finds, and what it tried.

A `Finding` is one defect on one operation (or one file, for a scanner's), with everything a
reader needs to believe it and act: severity, category, the request and response that show
it, a reproduction to run by hand, and a fix hint. A `Tally` counts what was tried, so a
report says "no finding in 1,240 requests over 14 operations", never just "no finding".

Every part of the check (authorization matrix, fuzzing, probes, secrets, scanners) returns a
`PartResult`; the check merges them, stores them as the `security-findings.json` artifact and
records the metrics of docs/security.md.
"""

from __future__ import annotations

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "Category",
    "Finding",
    "PartResult",
    "Severity",
    "Tally",
    "severity_from_score",
]

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")

# authn: a protected operation answers without valid credentials; authz: one user reaches
# another's data; injection: SQL/command/template; traversal: files outside the served tree;
# input: bad input handled badly (5xx, non-ASCII, schema violations found by probes);
# headers: missing security headers, cookie flags, CORS, TRACE, leaked versions and traces;
# secrets: credentials in logs or responses; dos: oversized or slow requests not refused;
# fuzz: what Schemathesis found; code and dependencies: scanners' findings (SARIF, Bandit,
# pip-audit).
Category = Literal[
    "authn",
    "authz",
    "injection",
    "traversal",
    "input",
    "headers",
    "secrets",
    "dos",
    "fuzz",
    "code",
    "dependencies",
]
CATEGORIES: tuple[Category, ...] = (
    "authn",
    "authz",
    "injection",
    "traversal",
    "input",
    "headers",
    "secrets",
    "dos",
    "fuzz",
    "code",
    "dependencies",
)


def severity_from_score(score: float) -> Severity:
    """A CVSS-like score (SARIF's `security-severity`) as a severity: critical ≥ 9.0, high ≥ 7.0,
    medium ≥ 4.0, else low (0 included; GitHub's code scanning draws the same lines)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


@dataclass(frozen=True)
class Finding:
    """One defect. `operation` is `METHOD /path/{template}` for the service's own, or
    `path/to/file.py:LINE` (or a package name) for a scanner's."""

    rule: str  # stable id: `authz.bola`, `traversal.path-param`, `sarif:<tool>/<ruleId>`
    title: str  # one line a reader understands without the rest
    severity: Severity
    category: Category
    operation: str
    request: str = ""  # excerpt of what was sent (secrets redacted), or the scanner's location
    response: str = ""  # excerpt of what came back (status line, headers that matter, body start)
    reproduction: str = ""  # a curl line (with `--path-as-is` where the path matters) or a command
    fix: str = ""  # what to change, in one or two sentences
    source: str = "gonogo"  # `gonogo` or the scanner that reported it
    details: dict[str, Any] = field(default_factory=dict)  # what the part wants to keep (payload, …)

    def key(self) -> tuple[str, ...]:
        """Two findings with the same key are the same defect seen twice; the first is kept. A
        part tells two defects of one rule on one operation apart by `details`: the parameter,
        the status (400 and 415 undeclared), the service (two crashed), or any `instance`."""
        return (
            self.rule,
            self.operation,
            *(str(self.details.get(name, "")) for name in ("parameter", "status", "service", "instance")),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Tally:
    """What was tried: counts under names such as `requests`, `operations`, `payloads`."""

    counts: Counter[str] = field(default_factory=Counter)
    operations: set[str] = field(default_factory=set)  # operations exercised (`GET /items/{id}`)

    def add(self, name: str, count: int = 1) -> None:
        self.counts[name] += count

    def merge(self, other: Tally) -> None:
        self.counts.update(other.counts)
        self.operations |= other.operations


@dataclass
class PartResult:
    """What one part of the check found and tried.

    `not_measured`: why the part could not run at all (a scanner not installed, no OpenAPI
    document for fuzzing); its metrics are then not recorded, which fails their gates, and
    the reason is shown. `notes`: what the reader should know (a budget reached, operations
    skipped and why).
    """

    part: str  # authz, fuzz, probes, secrets, scanners
    findings: list[Finding] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    not_measured: str | None = None
    notes: list[str] = field(default_factory=list)
