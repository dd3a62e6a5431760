"""What the evidence store keeps, as plain typed records (no database types leak out)."""

from __future__ import annotations

__all__ = [
    "ArtifactRecord",
    "ArtifactRef",
    "BaselineChoice",
    "BaselineSetting",
    "CheckRecord",
    "EventRecord",
    "GateRecord",
    "MetricRecord",
    "ReportFileRecord",
    "RunRecord",
    "SampleSeries",
    "SignoffRecord",
    "SignoffRequirement",
    "VerdictRecord",
]

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

RunStatus = Literal["running", "completed", "failed", "aborted"]
GateStatus = Literal["pass", "fail", "warn", "not_measured"]


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    plan_path: str
    plan_hash: str
    git_commit: str | None
    host: str
    tool_versions: dict[str, str]
    started_at: datetime
    ended_at: datetime | None
    # completed: every check ran; failed: the run could not be completed (exit 3);
    # aborted: gonogo was interrupted or killed; what it measured until then is kept.
    status: RunStatus
    message: str
    owner_pid: int
    decision: str | None = None  # GO / NO-GO once a verdict exists


@dataclass(frozen=True)
class MetricRecord:
    check: str  # the check that measured it; the metric's full name is `<check>.<name>`
    name: str
    value: float
    unit: str
    dimension: str
    source: str  # where it came from: command, file, URL
    recorded_at: datetime
    artifact_sha256: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    id: int | None = None

    @property
    def full_name(self) -> str:
        return f"{self.check}.{self.name}"


@dataclass(frozen=True)
class CheckRecord:
    name: str
    kind: str
    status: str  # running / completed / error / aborted
    message: str
    started_at: datetime
    ended_at: datetime | None
    id: int | None = None


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: content-addressed by sha256 (what `Store.add_artifact` hands back)."""

    sha256: str
    name: str
    size: int


@dataclass(frozen=True)
class ArtifactRecord:
    sha256: str
    name: str
    size: int
    media_type: str
    check: str | None
    created_at: datetime


@dataclass(frozen=True)
class EventRecord:
    at: datetime
    source: str  # "system", a service name, a check name
    kind: str  # started, ready, exited, failed, progress, ...
    message: str


@dataclass(frozen=True)
class SampleSeries:
    """A time series, e.g. the RSS of one service sampled every second."""

    name: str  # e.g. "rss"
    labels: dict[str, str]  # e.g. {"service": "api"}
    unit: str
    points: list[tuple[datetime, float]]


@dataclass(frozen=True)
class GateRecord:
    metric: str  # the metric name the gate was evaluated on (globs already expanded)
    pattern: str  # the gate as written in the plan
    expr: str
    severity: str  # must / should
    status: GateStatus
    value: float | None
    unit: str | None
    threshold: str  # the limit, human-readable
    dimension: str
    source: str  # where the value came from (the metric's source), or why it is missing
    metric_id: int | None = None


@dataclass(frozen=True)
class SignoffRequirement:
    """The sign-offs a GO needs before release, as the plan asked when the verdict was made."""

    roles: list[str]
    min_confidence: int  # 0-10


@dataclass(frozen=True)
class BaselineSetting:
    """One row of a plan's baseline history: `gonogo baseline set` (a run) or `clear` (none).
    Rows are only ever added; the latest one is the plan's setting."""

    plan: str  # the plan's name
    run_id: str | None  # None: cleared (the plan's `baseline: {runs: N}` applies again)
    set_at: datetime
    set_by: str  # the OS user
    id: int | None = None


@dataclass(frozen=True)
class BaselineChoice:
    """Which earlier runs a run's relative gates were compared with, and why those: kept with
    the verdict so that `gonogo verify` compares with the same runs."""

    how: Literal["pinned", "recent", "none"]  # pinned with `gonogo baseline set`, the last N passing, none
    runs: list[str]  # run ids, newest first; empty for `none`
    detail: str  # one sentence a person reads: which runs, and why them (or why none)


@dataclass(frozen=True)
class VerdictRecord:
    decision: Literal["GO", "NO-GO"]
    score: float | None  # overall, 0-100; None when nothing was measured
    minimum_score: float
    dimensions: dict[str, float | None]  # None: not measured
    reasons: list[str]
    gates: list[GateRecord]
    decided_at: datetime
    # Why the run itself was incomplete (each one a reason for NO-GO): kept so that the
    # verdict can be recomputed from the evidence alone (`gonogo verify`).
    run_problems: list[str] = field(default_factory=list)
    signoff: SignoffRequirement | None = None  # None: the plan required no sign-off
    baseline: BaselineChoice | None = None  # None: the plan has no relative gate


@dataclass(frozen=True)
class SignoffRecord:
    """A person's sign-off on a run, never changed once recorded."""

    role: str
    confidence: int  # 0-10
    note: str
    user: str  # the OS user who ran `gonogo approve`
    git_name: str | None  # `git config user.name` in the plan's folder, when there is one
    git_email: str | None
    signed_at: datetime
    evidence_digest: str  # what they saw: the run's evidence digest (evidence/digest.py)
    decision: str  # the verdict's decision when they signed
    id: int | None = None


@dataclass(frozen=True)
class ReportFileRecord:
    """A report file gonogo wrote for a run, and the sha256 of what it wrote."""

    format: str  # json / md / junit
    path: str
    sha256: str
    written_at: datetime
