"""The one small interface between the runner and a check kind.

A check kind is a class with a `kind` name, a pydantic `Settings` model (the plan's
`checks.<name>` section minus `kind`, validated once when the plan loads) and a `run`
method. It reports what it measures through the `CheckContext`, which writes every
metric and artifact to the evidence store the moment it is recorded, so nothing
measured is lost if the check crashes afterwards.
"""

from __future__ import annotations

__all__ = [
    "ArtifactRef",
    "CheckContext",
    "CheckKind",
    "CheckOutcome",
    "CommandResult",
    "MetricPatterns",
    "PlanNames",
    "Reference",
]

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

# ArtifactRef is the evidence store's; re-exported here for the check kinds (and plugins).
from gonogo.evidence.records import ArtifactRef
from gonogo.plan.model import SystemSpec
from gonogo.plan.names import MetricPatterns, PlanNames, Reference
from gonogo.units import Unit

if TYPE_CHECKING:  # at run time only the runner needs it: `gonogo validate` stays light
    from gonogo.faults.targets import FaultTargets


@dataclass(frozen=True)
class CommandResult:
    """How a command started by a check ended."""

    argv: list[str]
    returncode: int | None  # None: it could not be started or was killed on timeout
    started_at: datetime
    ended_at: datetime
    timed_out: bool = False
    start_error: str | None = None  # why it could not be started
    output: ArtifactRef | None = None  # stdout and stderr, interleaved
    output_tail: list[str] = field(default_factory=list)  # its last lines, to show on failure

    @property
    def duration(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class CheckOutcome:
    """What a check says about its own run. Gates, not this, decide the verdict.

    `completed`: the check ran and recorded what it could measure.
    `error`: the check could not measure (command did not start, no report written);
    the metrics it could not produce are *not measured*, which fails their gates.
    """

    status: Literal["completed", "error"]
    message: str = ""
    details: list[str] = field(default_factory=list)


SettingsT = TypeVar("SettingsT", bound=BaseModel)


class CheckContext(Protocol):
    """What the runner gives a check. One per check execution."""

    @property
    def check_name(self) -> str: ...

    @property
    def plan_dir(self) -> Path: ...

    @property
    def work_dir(self) -> Path:
        """An empty scratch directory that belongs to this check execution."""
        ...

    @property
    def base_url(self) -> str | None: ...

    @property
    def fault_targets(self) -> FaultTargets:
        """What experiments may break: the services, the plan's proxies, this machine."""
        ...

    def expand(self, text: str) -> str:
        """Substitute `{port.NAME}`, `{base_url}`, `{plan_dir}` and `{work_dir}` in text."""
        ...

    def record_metric(
        self,
        name: str,
        value: float,
        unit: Unit,
        *,
        dimension: str,
        source: str,
        artifact: ArtifactRef | None = None,
        window: tuple[datetime, datetime] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Record `<check_name>.<name>`; it is committed to the store before this returns."""
        ...

    def record_series(
        self,
        name: str,
        unit: Unit,
        points: Sequence[tuple[datetime, float]],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Record (or extend) the per-second series of metric `<check_name>.<name>`.

        Gates with a timeframe (`"p95 < 500ms for 10s"`) are evaluated on it.
        """
        ...

    def breached(
        self, name: str, *, so_far: float | None, per_second: Sequence[tuple[datetime, float]]
    ) -> str | None:
        """Why to stop now, if a gate marked `abort_on_fail` on `<check_name>.<name>` is in breach.

        A gate with a timeframe looks at `per_second`; one without compares `so_far`, the
        value of the metric over everything measured until now. None: carry on.
        """
        ...

    def aborts_on(self, name: str) -> bool:
        """Whether some gate marked `abort_on_fail` matches `<check_name>.<name>`: a kind need
        not work out a figure that `breached` could only ignore."""
        ...

    def store_artifact(
        self, content: Path | bytes, *, name: str, media_type: str = "application/octet-stream"
    ) -> ArtifactRef: ...

    def run_command(
        self,
        argv: Sequence[str] | str,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        shell: bool = False,
        timeout: float | None = None,
        name: str = "command",
    ) -> CommandResult:
        """Run a command in its own process group, tracked so it never outlives gonogo.

        stdout and stderr are stored as an artifact; the command is killed (with its
        children) on timeout, Ctrl-C or gonogo's death.
        """
        ...

    def plan_checks(self, settings_type: type[SettingsT]) -> dict[str, SettingsT]:
        """The plan's checks whose settings are a `settings_type` (check name → settings), for a
        kind that works from what another check describes: the security check replays the
        journeys of the plan's `journeys` checks."""
        ...

    def progress(self, message: str, *, milestone: bool = False) -> None:
        """Tell the user what is happening now (shown live, not stored as a metric). A running
        count is printed at most every few seconds; a `milestone` (what a run is about to do,
        said once) always is."""
        ...

    @property
    def system(self) -> SystemSpec:
        """The plan's system: its services, their limits, how trends are judged."""
        ...

    def resource_samples(self, since: datetime) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """The resources sampled of every service from `since` until now: (service, resource) →
        points, resource being one of rss (bytes), fds, threads (counts) and cpu (a ratio of one
        core). A soak check fits the trend of its own window from them."""
        ...


class CheckKind(ABC, Generic[SettingsT]):
    """Base class of a check kind. Register it in the `gonogo.checks` entry-point group."""

    kind: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]
    # The metrics (names after `<check>.`) this kind records a per-second series of, which is
    # what a gate with a timeframe (`"< 500ms for 10s"`) reads; `gonogo validate` refuses a
    # timeframe on any other. A `*` stands for a name the settings give (`endpoint.*.rps`): the
    # metric must then also be one `metric_names` declares. None: the kind does not say, and
    # every timeframe is accepted.
    series_metrics: ClassVar[frozenset[str] | None] = None
    # The metrics (names after `<check>.`, `*` as in `series_metrics`) whose gates marked
    # `abort_on_fail` this kind follows while it runs (`CheckContext.breached`); `gonogo validate`
    # refuses `abort_on_fail` on any other, which could never fire. None: the kind does not
    # say, and every abort gate is accepted.
    live_metrics: ClassVar[frozenset[str] | None] = None

    @classmethod
    def metric_names(cls, settings: SettingsT, plan: PlanNames) -> MetricPatterns | None:
        """Every metric (name after `<check>.`) a run with these settings can record, `*`
        standing for what only the run can tell (an endpoint named in a results file).
        `gonogo validate` refuses a gate on any other. None: the kind does not say, and every
        gate on it is accepted."""
        return None

    @classmethod
    def most_values(cls, settings: SettingsT, metric: str) -> int | None:
        """The most values one run can put in the distribution behind `metric` (a name after
        `<check>.`, such as `home.index.latency.p95`), when the settings fix it; `gonogo validate`
        refuses a relative gate on a percentile that so few values could never bound. None:
        the kind cannot tell (the run's duration and rate decide)."""
        return None

    @classmethod
    def default_gates(cls, settings: SettingsT) -> Mapping[str, str | Mapping[str, object]]:
        """Gates that hold when the plan names none of this check's metrics in `gates` (metric name
        after `<check>.` → a threshold or a gate mapping, as written in a plan): what a check
        with nothing but its settings must pass. Empty: the plan's gates alone decide."""
        return {}

    @classmethod
    def writes_test_outcomes(cls, settings: SettingsT) -> bool:
        """Whether a run with these settings stores per-test outcomes (`test-outcomes.json`), which
        the history of flaky tests reads (`history.flaky_tests`, docs/flaky-tests.md)."""
        return False

    @classmethod
    def references(cls, settings: SettingsT) -> list[Reference]:
        """The services, proxies and checks of the plan these settings name, which `gonogo
        validate` resolves (an unknown one is refused at its line, with a suggestion)."""
        return []

    @classmethod
    def describe(cls, settings: SettingsT) -> str | None:
        """One line `gonogo validate` prints under the check: what the run will do that the
        plan does not say outright (a load's journeys: which driver runs them, and why). None:
        nothing. Called on every validation, so quick, and without running anything."""
        return None

    @abstractmethod
    def run(self, settings: SettingsT, ctx: CheckContext) -> CheckOutcome:
        """Measure, recording metrics and artifacts through `ctx` as they are produced."""
