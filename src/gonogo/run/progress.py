"""What the user sees while a run goes on: what is running, elapsed time, results."""

from __future__ import annotations

__all__ = ["Progress", "ProgressPrinter"]

import time
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.status import Status


class Progress(Protocol):
    """Where a run reports what it is doing."""

    def milestone(self, source: str, message: str) -> None:
        """A state change or a result: always shown."""
        ...

    def update(self, source: str, message: str) -> None:
        """A running count from a check: shown live, printed at most every few seconds."""
        ...


class ProgressPrinter:
    """Prints progress lines with elapsed time and keeps a live status line on a terminal.

    Updates from one source (a journey counting iterations) are shown on the status line
    and printed at most every few seconds, so logs in CI stay readable.
    """

    MIN_PRINT_INTERVAL = 5.0

    def __init__(self, console: Console) -> None:
        self._console = console
        self._started = time.monotonic()
        self._last_printed: dict[str, float] = {}
        self._status: Status | None = None
        self._current = "starting"

    def __enter__(self) -> ProgressPrinter:
        if self._console.is_terminal:
            self._status = self._console.status(self._status_text())
            self._status.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._status is not None:
            self._status.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _status_text(self) -> str:
        return f"[bold]{escape(self._current)}[/]  [dim]{self.elapsed():.0f}s elapsed[/]"

    def milestone(self, source: str, message: str) -> None:
        self._print(source, message)

    def update(self, source: str, message: str) -> None:
        if time.monotonic() - self._last_printed.get(source, 0.0) >= self.MIN_PRINT_INTERVAL:
            self._print(source, message)
        else:
            self._current = f"{source}: {message}"
            self._refresh()

    def _print(self, source: str, message: str) -> None:
        self._current = f"{source}: {message}"
        self._last_printed[source] = time.monotonic()
        self._console.print(
            f"[dim]{self.elapsed():7.1f}s[/] [cyan]{escape(source):>12}[/]  {escape(message)}",
            highlight=False,
        )
        self._refresh()

    def _refresh(self) -> None:
        if self._status is not None:
            self._status.update(self._status_text())
