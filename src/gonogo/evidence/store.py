"""The evidence store: the only module that knows the database.

SQLite by default, PostgreSQL for a team (SQLAlchemy 2). Every write commits before it
returns, so evidence survives a crash or `kill -9` of gonogo.
"""

from __future__ import annotations

__all__ = ["Store"]

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from gonogo.checks.base import ArtifactRef
from gonogo.evidence.records import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    MetricRecord,
    RunRecord,
    RunStatus,
    SampleSeries,
    VerdictRecord,
)


class Store:
    """Open with `Store.open(url, artifacts_dir=...)`; close with `close()` or `with`."""

    @classmethod
    def open(cls, url: str, *, artifacts_dir: Path) -> Store:
        """`sqlite:///abs/path.db` or `postgresql://user@host:port/db`; creates the schema."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------
    def begin_run(
        self,
        *,
        name: str,
        plan_path: str,
        plan_hash: str,
        plan_text: str,
        git_commit: str | None,
        host: str,
        tool_versions: dict[str, str],
        owner_pid: int,
    ) -> str:
        """Create a run with status `running`; returns its id (sortable by start time)."""
        raise NotImplementedError

    def finish_run(self, run_id: str, status: RunStatus, message: str = "") -> None:
        raise NotImplementedError

    def begin_check(self, run_id: str, name: str, kind: str) -> int:
        raise NotImplementedError

    def end_check(self, check_id: int, status: str, message: str = "") -> None:
        raise NotImplementedError

    def add_metric(self, run_id: str, metric: MetricRecord) -> int:
        raise NotImplementedError

    def add_artifact(
        self,
        run_id: str,
        content: Path | bytes,
        *,
        name: str,
        media_type: str = "application/octet-stream",
        check: str | None = None,
    ) -> ArtifactRef:
        """Copy content into the content-addressed artifact directory and record it."""
        raise NotImplementedError

    def add_event(self, run_id: str, event: EventRecord) -> None:
        raise NotImplementedError

    def add_samples(self, run_id: str, series: SampleSeries) -> None:
        """Append points to a time series (same name and labels: same series)."""
        raise NotImplementedError

    def save_verdict(self, run_id: str, verdict: VerdictRecord) -> None:
        """Store (or replace) the verdict and its gate results."""
        raise NotImplementedError

    def mark_stale_runs_aborted(self) -> list[str]:
        """Runs still `running` whose owner process on this host is gone become `aborted`."""
        raise NotImplementedError

    # -- reading ---------------------------------------------------------------------
    def resolve_run(self, ref: str) -> RunRecord:
        """A run by id, unique id prefix, or `latest`; raises UserError if none or ambiguous."""
        raise NotImplementedError

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        raise NotImplementedError

    def plan_text(self, run_id: str) -> str:
        raise NotImplementedError

    def metrics(self, run_id: str) -> list[MetricRecord]:
        raise NotImplementedError

    def checks(self, run_id: str) -> list[CheckRecord]:
        raise NotImplementedError

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        raise NotImplementedError

    def artifact_path(self, sha256: str) -> Path:
        raise NotImplementedError

    def events(self, run_id: str) -> list[EventRecord]:
        raise NotImplementedError

    def samples(self, run_id: str) -> list[SampleSeries]:
        raise NotImplementedError

    def verdict(self, run_id: str) -> VerdictRecord | None:
        raise NotImplementedError

    def when(self) -> datetime:
        """Now, as the store records times (UTC, aware)."""
        raise NotImplementedError

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        raise NotImplementedError
