"""What the `chaostoolkit` check's tests import: the fixture files and a context with ports.

A module of its own (not conftest.py) so the name is unique across the test suite's folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recording_context import RecordingContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chaostoolkit"


@dataclass
class PortsContext(RecordingContext):
    """A RecordingContext that also fills in `{port.NAME}`, as the runner's context does."""

    ports: dict[str, int] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        for name, port in self.ports.items():
            text = text.replace(f"{{port.{name}}}", str(port))
        return super().expand(text)
