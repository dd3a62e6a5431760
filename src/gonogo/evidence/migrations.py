"""Bringing a database written by an older gonogo up to the current tables, private to the store.

Each step takes the database from one version to the next inside the store's schema
transaction, so a failed migration leaves the database as it was. New tables need no step:
`create_all` adds them; a step changes what already exists.
"""

from __future__ import annotations

__all__ = ["migrate"]

import json
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from gonogo.evidence import schema as s


def migrate(conn: Connection, found: int) -> None:
    """Run every step from version `found` to `schema.SCHEMA_VERSION`."""
    for version in range(found, s.SCHEMA_VERSION):
        _STEPS[version](conn)
    conn.execute(s.schema_version.update().values(version=s.SCHEMA_VERSION))


def _artifacts_unique_per_check(conn: Connection) -> None:
    """1 → 2: artifacts were unique per (run, name), so a second check writing `tests.log`
    replaced the first one's row; now they are unique per (run, check, name)."""
    if conn.dialect.name == "sqlite":
        # SQLite cannot change a table's constraints: rebuild it (its index name is global).
        conn.execute(text("ALTER TABLE artifacts RENAME TO artifacts_v1"))
        conn.execute(text("DROP INDEX IF EXISTS ix_artifacts_sha256"))
        s.artifacts.create(conn)
        conn.execute(
            text(
                "INSERT INTO artifacts (id, run_id, name, sha256, size, media_type, check_name, created_at) "
                "SELECT id, run_id, name, sha256, size, media_type, COALESCE(check_name, ''), created_at "
                "FROM artifacts_v1"
            )
        )
        conn.execute(text("DROP TABLE artifacts_v1"))
        return
    conn.execute(text("UPDATE artifacts SET check_name = '' WHERE check_name IS NULL"))
    conn.execute(text("ALTER TABLE artifacts ALTER COLUMN check_name SET DEFAULT ''"))
    conn.execute(text("ALTER TABLE artifacts ALTER COLUMN check_name SET NOT NULL"))
    conn.execute(text("ALTER TABLE artifacts DROP CONSTRAINT uq_artifacts_run_name"))
    conn.execute(
        text(
            "ALTER TABLE artifacts ADD CONSTRAINT uq_artifacts_run_check_name "
            "UNIQUE (run_id, check_name, name)"
        )
    )


def _verdicts_keep_their_inputs(conn: Connection) -> None:
    """2 → 3: a verdict keeps the run problems it was decided with and the sign-offs the plan
    required (the `signoffs` and `report_files` tables are new: `create_all` made them)."""
    present = {column["name"] for column in inspect(conn).get_columns("verdicts")}
    for name, ddl in (
        ("run_problems", "TEXT NOT NULL DEFAULT '[]'"),
        ("signoff_roles", "TEXT"),
        ("signoff_min_confidence", "INTEGER"),
    ):
        if name not in present:  # a store whose tables were made by this version already has them
            conn.execute(text(f"ALTER TABLE verdicts ADD COLUMN {name} {ddl}"))
    # The run's message is its problems joined with "; " (run/execute.py): split it back, which
    # is exact unless a problem itself contained "; ".
    rows = conn.execute(
        select(s.runs.c.id, s.runs.c.message).join(s.verdicts, s.verdicts.c.run_id == s.runs.c.id)
    ).all()
    for run_id, message in rows:
        if message:
            problems = json.dumps(message.split("; "))
            conn.execute(
                s.verdicts.update().where(s.verdicts.c.run_id == run_id).values(run_problems=problems)
            )


def _verdicts_keep_their_baseline(conn: Connection) -> None:
    """3 → 4: a verdict keeps the baseline its relative gates were compared with (the
    `baselines` table is new: `create_all` made it). Older verdicts compared with none."""
    present = {column["name"] for column in inspect(conn).get_columns("verdicts")}
    if "baseline" not in present:
        conn.execute(text("ALTER TABLE verdicts ADD COLUMN baseline TEXT"))


# version → the step that takes a database from it to the next one
_STEPS: dict[int, Callable[[Connection], None]] = {
    1: _artifacts_unique_per_check,
    2: _verdicts_keep_their_inputs,
    3: _verdicts_keep_their_baseline,
}
