"""The evidence store: the only module that knows the database.

SQLite by default, PostgreSQL for a team (SQLAlchemy 2). Every write commits before it
returns, so evidence survives a crash or `kill -9` of gonogo.
"""

from __future__ import annotations

__all__ = ["Store"]

import contextlib
import json
import math
import os
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import psutil
from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Row,
    Select,
    Table,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from gonogo.errors import UserError
from gonogo.evidence import schema as s
from gonogo.evidence.artifacts import ArtifactFiles
from gonogo.evidence.engine import driver_message, open_engine
from gonogo.evidence.migrations import migrate
from gonogo.evidence.records import (
    ArtifactRecord,
    ArtifactRef,
    BaselineChoice,
    BaselineSetting,
    CheckRecord,
    EventRecord,
    GateRecord,
    GateStatus,
    MetricRecord,
    ReportFileRecord,
    RunRecord,
    RunStatus,
    SampleSeries,
    SignoffRecord,
    SignoffRequirement,
    VerdictRecord,
)

_RUN_STATUSES: frozenset[str] = frozenset({"running", "completed", "failed", "aborted"})
# psutil derives a start time from the boot time, which can shift by a second when the
# clock is adjusted; a reused pid starts later than that.
_CREATE_TIME_TOLERANCE = 2.0
_PG_SCHEMA_LOCK = 0x676F6E6F676F  # "gonogo": serializes schema creation between clients
_IN_CHUNK = 500  # ids per `IN (...)`, well below every backend's parameter limit


class Store:
    """Open with `Store.open(url, artifacts_dir=...)`; close with `close()` or `with`."""

    def __init__(self, engine: Engine, artifacts_dir: Path, *, display_url: str) -> None:
        """Private: use `Store.open`."""
        self._engine = engine
        self._files = ArtifactFiles(artifacts_dir)
        self._display_url = display_url
        self._sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time; queueing our own threads here is cheaper than
        # letting them spin on the busy timeout. PostgreSQL needs no such thing.
        self._write_lock: threading.Lock | None = threading.Lock() if self._sqlite else None
        self._closed = False

    @classmethod
    def open(cls, url: str, *, artifacts_dir: Path) -> Store:
        """`sqlite:///abs/path.db` or `postgresql://user@host:port/db`; creates the schema."""
        engine, display = open_engine(url)
        store = cls(engine, artifacts_dir, display_url=display)
        try:
            store._create_schema()
        except DBAPIError as exc:
            engine.dispose()
            what = "SQLite database" if store._sqlite else "PostgreSQL"
            reason = driver_message(exc)
            raise UserError(
                f"cannot open the evidence store: {what} at {display} is not usable: {reason}"
            ) from exc
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def display_url(self) -> str:
        """The store's URL with any password hidden, for messages and reports."""
        return self._display_url

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

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
        create_time = _process_create_time(owner_pid) if host == _this_host() else None
        for attempt in range(8):
            started_at = self.when()
            run_id = _new_run_id(started_at)
            try:
                with self._write() as conn:
                    conn.execute(
                        s.runs.insert().values(
                            id=run_id,
                            name=name,
                            plan_path=plan_path,
                            plan_hash=plan_hash,
                            plan_text=plan_text,
                            git_commit=git_commit,
                            host=host,
                            tool_versions=_dump(tool_versions),
                            started_at=started_at,
                            ended_at=None,
                            status="running",
                            message="",
                            owner_pid=owner_pid,
                            owner_create_time=create_time,
                        )
                    )
                return run_id
            except IntegrityError:
                # Same second and same 24 random bits: astronomically rare, just retry.
                if attempt == 7:
                    raise
        raise AssertionError("unreachable")

    def finish_run(self, run_id: str, status: RunStatus, message: str = "") -> None:
        if status not in _RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self._write() as conn:
            done = conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id)
                .values(status=status, message=message, ended_at=self.when())
            )
            if done.rowcount == 0:
                raise _no_run(run_id)

    def begin_check(self, run_id: str, name: str, kind: str) -> int:
        with self._write_for(run_id) as conn:
            result = conn.execute(
                s.checks.insert().values(
                    run_id=run_id,
                    name=name,
                    kind=kind,
                    status="running",
                    message="",
                    started_at=self.when(),
                    ended_at=None,
                )
            )
            return _new_id(result.inserted_primary_key)

    def end_check(self, check_id: int, status: str, message: str = "") -> None:
        with self._write() as conn:
            done = conn.execute(
                update(s.checks)
                .where(s.checks.c.id == check_id)
                .values(status=status, message=message, ended_at=self.when())
            )
            if done.rowcount == 0:
                raise UserError(f"no check with id {check_id} in the evidence store")

    def add_metric(self, run_id: str, metric: MetricRecord) -> int:
        _require_number(metric.value, f"metric {metric.full_name}")
        with self._write_for(run_id) as conn:
            result = conn.execute(
                s.metrics.insert().values(
                    run_id=run_id,
                    check_name=metric.check,
                    name=metric.name,
                    value=metric.value,
                    unit=metric.unit,
                    dimension=metric.dimension,
                    source=metric.source,
                    artifact_sha256=metric.artifact_sha256,
                    window_start=metric.window_start,
                    window_end=metric.window_end,
                    labels=_dump(metric.labels),
                    recorded_at=metric.recorded_at,
                )
            )
            return _new_id(result.inserted_primary_key)

    def add_artifact(
        self,
        run_id: str,
        content: Path | bytes,
        *,
        name: str,
        media_type: str = "application/octet-stream",
        check: str | None = None,
    ) -> ArtifactRef:
        """Copy content into the content-addressed artifact directory and record it.

        The file is in place before its row commits, so a crash can leave an unreferenced
        file but never a row without its file. Nothing is ever replaced: artifacts are
        unique per run, check and name; the same content under the same name is kept once,
        and other content under a name the check already used gets the next free name
        (`tests.log` → `tests-2.log`), which the returned reference carries.
        """
        if isinstance(content, bytes):
            blob = self._files.put_bytes(content)
        else:
            blob = self._files.put_file(content, name)
        c = s.artifacts.c
        check_name = check or ""
        for attempt in range(8):
            try:
                with self._write_for(run_id) as conn:
                    rows = conn.execute(
                        select(c.name, c.sha256).where(c.run_id == run_id, c.check_name == check_name)
                    )
                    taken = {row.name: row.sha256 for row in rows}
                    stored_name = _free_name(name, blob.sha256, taken)
                    if stored_name not in taken:
                        conn.execute(
                            s.artifacts.insert().values(
                                run_id=run_id,
                                name=stored_name,
                                sha256=blob.sha256,
                                size=blob.size,
                                media_type=media_type,
                                check_name=check_name,
                                created_at=self.when(),
                            )
                        )
                return ArtifactRef(sha256=blob.sha256, name=stored_name, size=blob.size)
            except IntegrityError:
                # Another writer took the name between our read and insert (PostgreSQL): read again.
                if attempt == 7:
                    raise
        raise AssertionError("unreachable")

    def add_event(self, run_id: str, event: EventRecord) -> None:
        with self._write_for(run_id) as conn:
            conn.execute(
                s.events.insert().values(
                    run_id=run_id,
                    at=event.at,
                    source=event.source,
                    kind=event.kind,
                    message=event.message,
                )
            )

    def add_samples(self, run_id: str, series: SampleSeries) -> None:
        """Append points to a time series (same name and labels: same series)."""
        for _, value in series.points:
            _require_number(value, f"sample of {series.name}")
        labels = _dump(series.labels)
        with self._write_for(run_id) as conn:
            # Two threads may create the same series at once (PostgreSQL): let the
            # unique constraint decide, then read back whichever row won.
            conn.execute(
                self._insert(s.series)
                .values(run_id=run_id, name=series.name, labels=labels, unit=series.unit)
                .on_conflict_do_nothing(index_elements=["run_id", "name", "labels"])
            )
            row = conn.execute(
                select(s.series.c.id, s.series.c.unit).where(
                    s.series.c.run_id == run_id,
                    s.series.c.name == series.name,
                    s.series.c.labels == labels,
                )
            ).one()
            if row.unit != series.unit:
                raise ValueError(
                    f"series {series.name} {series.labels} is in {row.unit!r}, not {series.unit!r}"
                )
            if series.points:
                conn.execute(
                    s.points.insert(),
                    [{"series_id": row.id, "t": t, "value": v} for t, v in series.points],
                )

    def save_verdict(self, run_id: str, verdict: VerdictRecord) -> None:
        """Store (or replace) the verdict and its gate results."""
        if verdict.score is not None:
            _require_number(verdict.score, "verdict score")
        for gate in verdict.gates:
            if gate.value is not None:
                _require_number(gate.value, f"value of gate {gate.pattern}")
        signoff = verdict.signoff
        with self._write() as conn:
            if not self._run_exists(conn, run_id):
                raise _no_run(run_id)
            conn.execute(delete(s.gates).where(s.gates.c.run_id == run_id))
            conn.execute(delete(s.verdicts).where(s.verdicts.c.run_id == run_id))
            conn.execute(
                s.verdicts.insert().values(
                    run_id=run_id,
                    decision=verdict.decision,
                    score=verdict.score,
                    minimum_score=verdict.minimum_score,
                    dimensions=json.dumps(verdict.dimensions),
                    reasons=json.dumps(verdict.reasons),
                    decided_at=verdict.decided_at,
                    run_problems=json.dumps(verdict.run_problems),
                    signoff_roles=None if signoff is None else json.dumps(signoff.roles),
                    signoff_min_confidence=None if signoff is None else signoff.min_confidence,
                    baseline=None if verdict.baseline is None else json.dumps(asdict(verdict.baseline)),
                )
            )
            if verdict.gates:
                conn.execute(
                    s.gates.insert(),
                    [
                        {
                            "run_id": run_id,
                            "position": position,
                            "metric": g.metric,
                            "pattern": g.pattern,
                            "expr": g.expr,
                            "severity": g.severity,
                            "status": g.status,
                            "value": g.value,
                            "unit": g.unit,
                            "threshold": g.threshold,
                            "dimension": g.dimension,
                            "source": g.source,
                            "metric_id": g.metric_id,
                        }
                        for position, g in enumerate(verdict.gates)
                    ],
                )

    def add_signoff(self, run_id: str, signoff: SignoffRecord) -> int:
        """Record a sign-off; sign-offs are never changed or removed (only with their run)."""
        with self._write_for(run_id) as conn:
            result = conn.execute(
                s.signoffs.insert().values(
                    run_id=run_id,
                    role=signoff.role,
                    confidence=signoff.confidence,
                    note=signoff.note,
                    os_user=signoff.user,
                    git_name=signoff.git_name,
                    git_email=signoff.git_email,
                    signed_at=signoff.signed_at,
                    evidence_digest=signoff.evidence_digest,
                    decision=signoff.decision,
                )
            )
            return _new_id(result.inserted_primary_key)

    def add_report_file(self, run_id: str, format_name: str, path: Path, sha256: str) -> None:
        """Record that gonogo wrote a report file with this content, so that `gonogo verify`
        can tell an edited copy."""
        with self._write_for(run_id) as conn:
            conn.execute(
                s.report_files.insert().values(
                    run_id=run_id,
                    format=format_name,
                    path=str(path),
                    sha256=sha256,
                    written_at=self.when(),
                )
            )

    def set_baseline(self, plan: str, run_id: str, *, set_by: str) -> BaselineSetting:
        """Pin `run_id` as the baseline of plan `plan`; refused (UserError, saying why) for a
        run of another plan, one that has not completed, or one without a verdict."""
        with self._read() as conn:
            row = conn.execute(_runs_query().where(s.runs.c.id == run_id)).first()
        if row is None:
            raise _no_run(run_id)
        run = _run_record(row)
        if run.name != plan:
            raise UserError(
                f"run {run.id} is a run of plan {run.name!r}, not {plan!r}: a plan's baseline is one of "
                "its own runs (give the plan with --plan)"
            )
        if run.status != "completed":
            why = {
                "running": "is still running: pin it once it has finished",
                "aborted": "was interrupted before it completed (aborted): its evidence is incomplete",
                "failed": "did not complete (failed): its evidence is incomplete",
            }[run.status]
            raise UserError(f"run {run.id} {why}; a baseline must be a completed run")
        if run.decision is None:
            raise UserError(
                f"run {run.id} has no verdict: a baseline must be a run that reached one "
                "(see `gonogo show RUN`)"
            )
        return self._add_baseline(plan, run.id, set_by)

    def clear_baseline(self, plan: str, *, set_by: str) -> BaselineSetting:
        """Unpin the baseline of plan `plan` (recorded as a row without a run)."""
        return self._add_baseline(plan, None, set_by)

    def baseline_setting(self, plan: str) -> BaselineSetting | None:
        """The plan's current setting (the latest row); None if it was never set."""
        history = self.baseline_history(plan, limit=1)
        return history[0] if history else None

    def baseline_history(self, plan: str, *, limit: int | None = None) -> list[BaselineSetting]:
        """Every `baseline set` and `clear` of plan `plan`, newest first."""
        c = s.baselines.c
        query = select(s.baselines).where(c.plan == plan).order_by(c.id.desc())
        with self._read() as conn:
            rows = conn.execute(query if limit is None else query.limit(limit)).all()
        return [
            BaselineSetting(plan=r.plan, run_id=r.run_id, set_at=r.set_at, set_by=r.set_by, id=r.id)
            for r in rows
        ]

    def _add_baseline(self, plan: str, run_id: str | None, set_by: str) -> BaselineSetting:
        set_at = self.when()
        with self._write() as conn:
            result = conn.execute(
                s.baselines.insert().values(plan=plan, run_id=run_id, set_at=set_at, set_by=set_by)
            )
        return BaselineSetting(plan, run_id, set_at, set_by, _new_id(result.inserted_primary_key))

    def mark_stale_runs_aborted(self) -> list[str]:
        """Runs still `running` whose owner process on this host is gone become `aborted`."""
        host = _this_host()
        with self._read() as conn:
            candidates = conn.execute(
                select(s.runs.c.id, s.runs.c.owner_pid, s.runs.c.owner_create_time)
                .where(s.runs.c.status == "running", s.runs.c.host == host)
                .order_by(s.runs.c.started_at)
            ).all()
        aborted: list[str] = []
        for row in candidates:
            if _owner_alive(row.owner_pid, row.owner_create_time):
                continue
            with self._write() as conn:
                # Only if still running: its owner may have finished it meanwhile.
                done = conn.execute(
                    update(s.runs)
                    .where(s.runs.c.id == row.id, s.runs.c.status == "running")
                    .values(
                        status="aborted",
                        ended_at=self.when(),
                        message=(
                            f"gonogo process {row.owner_pid} on {host} ended without "
                            "finishing the run (killed or crashed); evidence recorded "
                            "until then is kept"
                        ),
                    )
                )
                if done.rowcount:
                    # the check it was running when it died would otherwise show as running forever
                    conn.execute(
                        update(s.checks)
                        .where(s.checks.c.run_id == row.id, s.checks.c.status == "running")
                        .values(
                            status="aborted",
                            message="gonogo ended while this check ran; its figures until then are kept",
                            ended_at=self.when(),
                        )
                    )
            if done.rowcount:
                aborted.append(row.id)
        return aborted

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Delete runs with everything recorded for them, and artifact files no run uses."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return
        released: set[str] = set()
        with self._write() as conn:
            for chunk in _chunks(ids):
                released.update(
                    conn.execute(
                        select(s.artifacts.c.sha256).where(s.artifacts.c.run_id.in_(chunk))
                    ).scalars()
                )
                # Children first: correct even where cascading deletes are not enforced.
                series_ids = select(s.series.c.id).where(s.series.c.run_id.in_(chunk))
                conn.execute(delete(s.points).where(s.points.c.series_id.in_(series_ids)))
                for table in (
                    s.series, s.gates, s.verdicts, s.metrics, s.artifacts, s.events, s.checks,
                    s.signoffs, s.report_files,
                ):  # fmt: skip
                    conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
                conn.execute(delete(s.runs).where(s.runs.c.id.in_(chunk)))
            still_used: set[str] = set()
            for chunk in _chunks(sorted(released)):
                still_used.update(
                    conn.execute(
                        select(s.artifacts.c.sha256).where(s.artifacts.c.sha256.in_(chunk))
                    ).scalars()
                )
                still_used.update(
                    conn.execute(
                        select(s.metrics.c.artifact_sha256).where(s.metrics.c.artifact_sha256.in_(chunk))
                    ).scalars()
                )
        # After the commit: a crash in between leaves orphan files, never dangling rows.
        for sha256 in released - still_used:
            self._files.remove(sha256)

    # -- reading ---------------------------------------------------------------------
    def resolve_run(self, ref: str) -> RunRecord:
        """A run by id, unique id prefix, or `latest`; raises UserError if none or ambiguous."""
        ref = ref.strip()
        if not ref:
            raise UserError("no run given: pass a run id, a unique prefix of one, or 'latest'")
        with self._read() as conn:
            if ref == "latest":
                row = conn.execute(
                    _runs_query().order_by(s.runs.c.started_at.desc(), s.runs.c.id.desc())
                ).first()
                if row is None:
                    raise UserError("no runs in the evidence store yet")
                return _run_record(row)
            row = conn.execute(_runs_query().where(s.runs.c.id == ref)).first()
            if row is not None:
                return _run_record(row)
            pattern = _escape_like(ref) + "%"
            rows = conn.execute(
                _runs_query()
                .where(s.runs.c.id.like(pattern, escape="\\"))
                .order_by(s.runs.c.started_at.desc(), s.runs.c.id.desc())
                .limit(11)
            ).all()
        if not rows:
            raise UserError(f"no run matches {ref!r} (list runs with `gonogo history`)")
        if len(rows) > 1:
            shown = ", ".join(r.id for r in rows[:10])
            more = " and more" if len(rows) > 10 else ""
            raise UserError(f"run {ref!r} is ambiguous: it matches {shown}{more}; give more of the id")
        return _run_record(rows[0])

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest runs first."""
        with self._read() as conn:
            rows = conn.execute(
                _runs_query().order_by(s.runs.c.started_at.desc(), s.runs.c.id.desc()).limit(limit)
            ).all()
        return [_run_record(row) for row in rows]

    def plan_runs(self, name: str, *, before: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The runs of the plan called `name`, newest first; with `before`, only those that
        started before that run (the history a run is compared with)."""
        query = _runs_query().where(s.runs.c.name == name)
        if before is not None:
            started = self.resolve_run(before).started_at
            query = query.where(s.runs.c.started_at < started)
        with self._read() as conn:
            rows = conn.execute(
                query.order_by(s.runs.c.started_at.desc(), s.runs.c.id.desc()).limit(limit)
            ).all()
        return [_run_record(row) for row in rows]

    def plan_text(self, run_id: str) -> str:
        with self._read() as conn:
            value = conn.execute(select(s.runs.c.plan_text).where(s.runs.c.id == run_id)).scalar_one_or_none()
        if value is None:
            raise _no_run(run_id)
        return str(value)

    def metrics(self, run_id: str) -> list[MetricRecord]:
        c = s.metrics.c
        with self._read() as conn:
            rows = conn.execute(select(s.metrics).where(c.run_id == run_id).order_by(c.id)).all()
        return [
            MetricRecord(
                check=r.check_name,
                name=r.name,
                value=r.value,
                unit=r.unit,
                dimension=r.dimension,
                source=r.source,
                recorded_at=r.recorded_at,
                artifact_sha256=r.artifact_sha256,
                window_start=r.window_start,
                window_end=r.window_end,
                labels=_load_str_dict(r.labels),
                id=r.id,
            )
            for r in rows
        ]

    def checks(self, run_id: str) -> list[CheckRecord]:
        c = s.checks.c
        with self._read() as conn:
            rows = conn.execute(select(s.checks).where(c.run_id == run_id).order_by(c.id)).all()
        return [
            CheckRecord(
                name=r.name,
                kind=r.kind,
                status=r.status,
                message=r.message,
                started_at=r.started_at,
                ended_at=r.ended_at,
                id=r.id,
            )
            for r in rows
        ]

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        c = s.artifacts.c
        with self._read() as conn:
            rows = conn.execute(
                select(s.artifacts).where(c.run_id == run_id).order_by(c.created_at, c.id)
            ).all()
        return [
            ArtifactRecord(
                sha256=r.sha256,
                name=r.name,
                size=r.size,
                media_type=r.media_type,
                check=r.check_name or None,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def artifact_path(self, sha256: str) -> Path:
        """Where the artifact's bytes are (read-only); it may be missing if pruned by hand."""
        return self._files.path(sha256)

    def events(self, run_id: str) -> list[EventRecord]:
        c = s.events.c
        with self._read() as conn:
            rows = conn.execute(select(s.events).where(c.run_id == run_id).order_by(c.at, c.id)).all()
        return [EventRecord(at=r.at, source=r.source, kind=r.kind, message=r.message) for r in rows]

    def samples(self, run_id: str) -> list[SampleSeries]:
        with self._read() as conn:
            all_series = conn.execute(
                select(s.series).where(s.series.c.run_id == run_id).order_by(s.series.c.id)
            ).all()
            points: dict[int, list[tuple[datetime, float]]] = {r.id: [] for r in all_series}
            rows = conn.execute(
                select(s.points.c.series_id, s.points.c.t, s.points.c.value)
                .join(s.series, s.series.c.id == s.points.c.series_id)
                .where(s.series.c.run_id == run_id)
                .order_by(s.points.c.series_id, s.points.c.t, s.points.c.id)
            )
            for series_id, t, value in rows:
                # A series created between the two reads (PostgreSQL reads each statement
                # afresh) is left for the next call rather than half reported.
                if series_id in points:
                    points[series_id].append((t, value))
        return [
            SampleSeries(name=r.name, labels=_load_str_dict(r.labels), unit=r.unit, points=points[r.id])
            for r in all_series
        ]

    def verdict(self, run_id: str) -> VerdictRecord | None:
        with self._read() as conn:
            row = conn.execute(select(s.verdicts).where(s.verdicts.c.run_id == run_id)).first()
            if row is None:
                return None
            gate_rows = conn.execute(
                select(s.gates).where(s.gates.c.run_id == run_id).order_by(s.gates.c.position)
            ).all()
        dimensions = json.loads(row.dimensions)
        signoff = None
        if row.signoff_roles is not None:
            signoff = SignoffRequirement(
                roles=[str(role) for role in json.loads(row.signoff_roles)],
                min_confidence=int(row.signoff_min_confidence or 0),
            )
        return VerdictRecord(
            decision=cast(Literal["GO", "NO-GO"], row.decision),
            score=row.score,
            minimum_score=row.minimum_score,
            dimensions={str(k): None if v is None else float(v) for k, v in dimensions.items()},
            reasons=[str(reason) for reason in json.loads(row.reasons)],
            gates=[
                GateRecord(
                    metric=g.metric,
                    pattern=g.pattern,
                    expr=g.expr,
                    severity=g.severity,
                    status=cast(GateStatus, g.status),
                    value=g.value,
                    unit=g.unit,
                    threshold=g.threshold,
                    dimension=g.dimension,
                    source=g.source,
                    metric_id=g.metric_id,
                )
                for g in gate_rows
            ],
            decided_at=row.decided_at,
            run_problems=[str(problem) for problem in json.loads(row.run_problems)],
            signoff=signoff,
            baseline=None if row.baseline is None else _baseline_choice(json.loads(row.baseline)),
        )

    def signoffs(self, run_id: str) -> list[SignoffRecord]:
        """Every sign-off of a run, oldest first."""
        c = s.signoffs.c
        with self._read() as conn:
            rows = conn.execute(
                select(s.signoffs).where(c.run_id == run_id).order_by(c.signed_at, c.id)
            ).all()
        return [
            SignoffRecord(
                role=r.role,
                confidence=r.confidence,
                note=r.note,
                user=r.os_user,
                git_name=r.git_name,
                git_email=r.git_email,
                signed_at=r.signed_at,
                evidence_digest=r.evidence_digest,
                decision=r.decision,
                id=r.id,
            )
            for r in rows
        ]

    def report_files(self, run_id: str) -> list[ReportFileRecord]:
        """Every report file written for a run, oldest first."""
        c = s.report_files.c
        with self._read() as conn:
            rows = conn.execute(
                select(s.report_files).where(c.run_id == run_id).order_by(c.written_at, c.id)
            ).all()
        return [
            ReportFileRecord(format=r.format, path=r.path, sha256=r.sha256, written_at=r.written_at)
            for r in rows
        ]

    def when(self) -> datetime:
        """Now, as the store records times (UTC, aware)."""
        return datetime.now(UTC)

    # -- machinery -------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction, committed when the block ends: every write is durable on return."""
        try:
            with self._write_lock or contextlib.nullcontext(), self._engine.connect() as conn:
                conn.execution_options(gonogo_write=True)
                with conn.begin():
                    yield conn
        except StatementError as exc:
            # A value our column types refuse (a naive datetime): the caller's bug, shown
            # as the plain ValueError rather than wrapped with the SQL statement.
            if isinstance(exc.orig, ValueError):
                raise exc.orig from None
            raise

    @contextlib.contextmanager
    def _write_for(self, run_id: str) -> Iterator[Connection]:
        """A write that belongs to a run: an unknown run id is reported as such."""
        try:
            with self._write() as conn:
                yield conn
        except IntegrityError as exc:
            with self._read() as conn:
                exists = self._run_exists(conn, run_id)
            if not exists:
                raise _no_run(run_id) from exc
            raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        # A transaction so that multi-query reads see one consistent snapshot.
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: Table) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT (both backends support it)."""
        insert: Insert = sqlite_dialect.insert(table) if self._sqlite else pg_dialect.insert(table)
        return insert

    @staticmethod
    def _run_exists(conn: Connection, run_id: str) -> bool:
        found = conn.execute(select(s.runs.c.id).where(s.runs.c.id == run_id)).first()
        return found is not None

    def _create_schema(self) -> None:
        with self._write() as conn:
            if not self._sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
            s.metadata.create_all(conn)
            found = conn.execute(select(s.schema_version.c.version)).scalar_one_or_none()
            if found is None:
                conn.execute(s.schema_version.insert().values(id=1, version=s.SCHEMA_VERSION))
            elif found > s.SCHEMA_VERSION:
                raise UserError(
                    f"the evidence store at {self._display_url} was written by a newer "
                    f"gonogo (schema version {found}; this gonogo reads up to version "
                    f"{s.SCHEMA_VERSION})"
                )
            elif found < s.SCHEMA_VERSION:
                migrate(conn, found)


# -- helpers ---------------------------------------------------------------------------
def _this_host() -> str:
    return socket.gethostname()


def _new_run_id(started_at: datetime) -> str:
    # UTC to the second, then random: sorts by start time, short enough to type.
    return f"{started_at:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _process_create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _owner_alive(pid: int, create_time: float | None) -> bool:
    """Is the process that owns a run still there (and the same process, not a reused pid)?"""
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # dead, its parent just has not reaped it yet
        if create_time is not None:
            return abs(process.create_time() - create_time) <= _CREATE_TIME_TOLERANCE
        return True
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but we may not look at it (another user): assume alive


def _runs_query() -> Select[Any]:
    return select(s.runs, s.verdicts.c.decision).outerjoin(s.verdicts, s.verdicts.c.run_id == s.runs.c.id)


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        name=row.name,
        plan_path=row.plan_path,
        plan_hash=row.plan_hash,
        git_commit=row.git_commit,
        host=row.host,
        tool_versions=_load_str_dict(row.tool_versions),
        started_at=row.started_at,
        ended_at=row.ended_at,
        status=cast(RunStatus, row.status),
        message=row.message,
        owner_pid=row.owner_pid,
        decision=row.decision,
    )


def _baseline_choice(stored: dict[str, Any]) -> BaselineChoice:
    return BaselineChoice(
        how=stored["how"], runs=[str(run) for run in stored["runs"]], detail=str(stored["detail"])
    )


def _no_run(run_id: str) -> UserError:
    return UserError(f"no run {run_id!r} in the evidence store")


def _new_id(primary_key: Sequence[Any] | None) -> int:
    assert primary_key is not None
    return int(primary_key[0])


def _require_number(value: float, what: str) -> None:
    # SQLite silently stores NaN as NULL; "not measured" is never a number.
    if math.isnan(value):
        raise ValueError(f"{what} is NaN; record nothing instead of a value that is not one")


def _dump(mapping: Mapping[str, str]) -> str:
    # Sorted keys: a series' labels are part of its identity, so one spelling only.
    return json.dumps(dict(mapping), sort_keys=True, separators=(",", ":"))


def _load_str_dict(raw: str) -> dict[str, str]:
    loaded = json.loads(raw)
    return {str(k): str(v) for k, v in loaded.items()}


def _free_name(name: str, sha256: str, taken: Mapping[str, str]) -> str:
    """`name` if free or already holding this content, else `stem-N.ext` for the first such N."""
    if taken.get(name, sha256) == sha256:
        return name
    folder, slash, base = name.rpartition("/")
    stem, dot, extension = base.rpartition(".") if base.rpartition(".")[0] else (base, "", "")
    number = 2
    while True:
        candidate = f"{folder}{slash}{stem}-{number}{dot}{extension}"
        if taken.get(candidate, sha256) == sha256:
            return candidate
        number += 1


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]
