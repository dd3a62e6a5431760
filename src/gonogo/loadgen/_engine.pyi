"""Types of the C extension (see _engine.c); the Python API is gonogo.loadgen.engine."""

from collections.abc import Callable, Sequence
from typing import Any

ERROR_KINDS: tuple[str, ...]
HIGHEST_TRACKABLE: int
SIGNIFICANT_FIGURES: int
SERIES_SIGNIFICANT_FIGURES: int

class Engine:
    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        weights: Sequence[int],
        *,
        closed: bool = ...,
        stages: Sequence[tuple[float, float, float]] = ...,
        poisson: bool = ...,
        seed: int = ...,
        users: int = ...,
        think_time: float = ...,
        duration: float = ...,
        max_requests: int = ...,
        warmup: float = ...,
        max_connections: int = ...,
        max_queue: int = ...,
        timeout: float = ...,
        late_threshold: float = ...,
        sequence_offset: int = ...,
        arrival_offset: float = ...,
        expects: Sequence[tuple[object, ...] | None] | None = ...,
        program: dict[str, Any] | None = ...,
        streams: Sequence[str | None] | None = ...,
    ) -> None: ...
    def run(
        self,
        progress: Callable[[dict[str, Any]], object] | None = ...,
        should_stop: Callable[[], object] | None = ...,
        start_ns: int = ...,
    ) -> None: ...
    def stop(self) -> None: ...
    def results(self) -> dict[str, Any]: ...

def record_values(values: Sequence[int], significant_figures: int = ..., /) -> tuple[int, bytes]: ...
def counts_len(significant_figures: int, /) -> int: ...
def set_parent_death_signal(signum: int, /) -> None: ...
