"""What the user sees while a run goes on: what is running, elapsed time, results."""

from __future__ import annotations

__all__ = ["ProgressPrinter"]

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.status import Status


class ProgressPrinter:
    """Prints progress lines with elapsed time and keeps a live status line on a terminal.

    Frequent updates from one source (a journey counting iterations) are shown on the
    status line and printed at most once a second, so logs in CI stay readable.
    """

    MIN_PRINT_INTERVAL = 1.0

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

    def __call__(self, source: str, message: str) -> None:
        self._current = f"{source}: {message}"
        now = time.monotonic()
        if now - self._last_printed.get(source, 0.0) >= self.MIN_PRINT_INTERVAL or _is_milestone(message):
            self._last_printed[source] = now
            self._console.print(
                f"[dim]{self.elapsed():7.1f}s[/] [cyan]{escape(source):>12}[/]  {escape(message)}",
                highlight=False,
            )
        if self._status is not None:
            self._status.update(self._status_text())


def _is_milestone(message: str) -> bool:
    """Lines that must always be printed: results and state changes, not counters."""
    lowered = message.lower()
    return any(
        word in lowered
        for word in ("ready", "fail", "error", "exited", "stopp", "start", "done", "complete", "metric")
    )
