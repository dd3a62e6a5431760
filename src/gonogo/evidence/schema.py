"""The database tables of the evidence store (SQLAlchemy Core), private to the store.

Times are stored in UTC and always come back as aware datetimes; JSON values (labels,
tool versions, reasons) are stored as text so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

__all__ = [
    "SCHEMA_VERSION",
    "CleanText",
    "UTCDateTime",
    "artifacts",
    "baselines",
    "checks",
    "events",
    "gates",
    "metadata",
    "metrics",
    "points",
    "report_files",
    "runs",
    "schema_version",
    "series",
    "signoffs",
    "verdicts",
]

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Bump when the tables change, with a step in `migrations.py` that brings an older database
# up to it; the store refuses a database written by a newer gonogo.
SCHEMA_VERSION = 4


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; SQLite keeps no zone, so UTC is re-attached on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (local? UTC?); refusing it catches the bug early.
            raise ValueError(f"naive datetime {value.isoformat()} given to the evidence store")
        value = value.astimezone(UTC)
        # SQLite's DateTime stores text without an offset; give it plain UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# 64-bit ids on PostgreSQL (points add up over years of sampling); SQLite's rowid alias
# must be spelled exactly INTEGER to autoincrement.
Id = BigInteger().with_variant(Integer(), "sqlite")


class CleanText(TypeDecorator[str]):
    """Text, with NUL characters stored as U+FFFD: PostgreSQL refuses NUL in text, and a
    service's log line that contains one must not crash the run. Done on every backend
    so both store the same thing."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else value.replace("\x00", "\ufffd")


metadata = MetaData()

# A single row: the version of the tables in this database.
schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", CleanText, nullable=False),
    Column("plan_path", CleanText, nullable=False),
    Column("plan_hash", String(128), nullable=False),
    Column("plan_text", CleanText, nullable=False),
    Column("git_commit", String(64)),
    Column("host", CleanText, nullable=False),
    Column("tool_versions", CleanText, nullable=False),  # JSON object
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("message", CleanText, nullable=False),
    Column("owner_pid", Integer, nullable=False),
    # The owner's start time (epoch seconds) tells a live owner from a reused pid.
    Column("owner_create_time", Float),
    Index("ix_runs_started_at", "started_at"),
    Index("ix_runs_status", "status"),
)

checks = Table(
    "checks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", CleanText, nullable=False),
    Column("kind", CleanText, nullable=False),
    Column("status", String(32), nullable=False),
    Column("message", CleanText, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("check_name", CleanText, nullable=False),
    Column("name", CleanText, nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", CleanText, nullable=False),
    Column("dimension", CleanText, nullable=False),
    Column("source", CleanText, nullable=False),
    Column("artifact_sha256", String(64)),
    Column("window_start", UTCDateTime),
    Column("window_end", UTCDateTime),
    Column("labels", CleanText, nullable=False),  # JSON object
    Column("recorded_at", UTCDateTime, nullable=False),
)

# One row per (run, check, name), never updated: two checks may each write `tests.log`, and a
# check that stores a name twice with other content gets a second name. The bytes live once
# in the artifact directory, by sha256.
artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", CleanText, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", CleanText, nullable=False),
    # "" for the run's own artifacts (service logs): NULLs would not be unique in the constraint.
    Column("check_name", CleanText, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("run_id", "check_name", "name", name="uq_artifacts_run_check_name"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("source", CleanText, nullable=False),
    Column("kind", CleanText, nullable=False),
    Column("message", CleanText, nullable=False),
)

series = Table(
    "series",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", CleanText, nullable=False),
    Column("labels", CleanText, nullable=False),  # canonical JSON (sorted keys): part of identity
    Column("unit", CleanText, nullable=False),
    UniqueConstraint("run_id", "name", "labels", name="uq_series_run_name_labels"),
)

points = Table(
    "points",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("series_id", Id, ForeignKey("series.id", ondelete="CASCADE"), nullable=False),
    Column("t", UTCDateTime, nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_points_series_t", "series_id", "t"),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("decision", String(8), nullable=False),
    Column("score", Float),
    Column("minimum_score", Float, nullable=False),
    Column("dimensions", CleanText, nullable=False),  # JSON object, null = not measured
    Column("reasons", CleanText, nullable=False),  # JSON list
    Column("decided_at", UTCDateTime, nullable=False),
    Column("run_problems", CleanText, nullable=False, server_default="[]"),  # JSON list
    # The sign-offs the plan required: JSON list of roles, NULL when none was required.
    Column("signoff_roles", CleanText),
    Column("signoff_min_confidence", Integer),
    # The baseline the relative gates were compared with: JSON {"how", "runs", "detail"},
    # NULL when the plan had no relative gate.
    Column("baseline", CleanText),
)

gates = Table(
    "gates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("verdicts.run_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),  # order of the gates in the verdict
    Column("metric", CleanText, nullable=False),
    Column("pattern", CleanText, nullable=False),
    Column("expr", CleanText, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Float),
    Column("unit", CleanText),
    Column("threshold", CleanText, nullable=False),
    Column("dimension", CleanText, nullable=False),
    Column("source", CleanText, nullable=False),
    # No foreign key: the gate result stays meaningful even if metrics are pruned.
    Column("metric_id", Id),
)

# Sign-offs and written report files are only ever added, never updated or deleted (except
# with their run): a later sign-off of a role is a new row, and the history stays readable.
signoffs = Table(
    "signoffs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("role", CleanText, nullable=False),
    Column("confidence", Integer, nullable=False),
    Column("note", CleanText, nullable=False),
    Column("os_user", CleanText, nullable=False),
    Column("git_name", CleanText),
    Column("git_email", CleanText),
    Column("signed_at", UTCDateTime, nullable=False),
    Column("evidence_digest", String(64), nullable=False),
    Column("decision", String(8), nullable=False),
)

report_files = Table(
    "report_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("format", String(16), nullable=False),
    Column("path", CleanText, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("written_at", UTCDateTime, nullable=False),
)

# A plan's baseline, as `gonogo baseline set/clear` left it: only ever added to, the latest row
# (by id) wins, a row without a run is a `clear`. Keyed by the plan's name, as runs are; no
# foreign key to the run: the history stays readable if the run is deleted.
baselines = Table(
    "baselines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("plan", CleanText, nullable=False, index=True),
    Column("run_id", String(64)),
    Column("set_at", UTCDateTime, nullable=False),
    Column("set_by", CleanText, nullable=False),
)
