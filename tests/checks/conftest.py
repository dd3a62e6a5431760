"""What the tests of every check kind share: the `recording_context` fixture.

The context itself is in recording_context.py, beside this file; pytest puts this folder
on sys.path when it loads this conftest, so the conftests and tests below can import it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from recording_context import MakeContext, RecordingContext


@pytest.fixture
def recording_context(tmp_path: Path) -> MakeContext:
    """Make a RecordingContext; its plan and work directories default to tmp_path/plan and
    tmp_path/work, and are created if missing."""

    def make(
        *,
        check_name: str = "check",
        plan_dir: Path | None = None,
        work_dir: Path | None = None,
        base_url: str | None = None,
    ) -> RecordingContext:
        plan_dir = plan_dir or tmp_path / "plan"
        work_dir = work_dir or tmp_path / "work"
        plan_dir.mkdir(parents=True, exist_ok=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        return RecordingContext(
            plan_dir=plan_dir, work_dir=work_dir, check_name=check_name, base_url=base_url
        )

    return make
