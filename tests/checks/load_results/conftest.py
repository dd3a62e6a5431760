"""The `ctx` of the `load_results` check's tests: a RecordingContext
(tests/checks/recording_context.py) that runs commands for real."""

from __future__ import annotations

import pytest
from recording_context import MakeContext, RecordingContext


@pytest.fixture
def ctx(recording_context: MakeContext) -> RecordingContext:
    return recording_context(check_name="k6")
