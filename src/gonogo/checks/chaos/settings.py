"""A chaos experiment's settings: the shared parts (`gonogo.experiment.settings`) combined."""

from __future__ import annotations

__all__ = ["DEFAULT_KILL_AFTER", "ChaosSettings", "KillMoments", "Recovery", "moment_label"]

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator

from gonogo.experiment.settings import (
    BackgroundLoad,
    Fault,
    Hypothesis,
    Integrity,
    KillFault,
    integrity_journeys,
)
from gonogo.journey.settings import JourneysSettings
from gonogo.plan.model import Duration, StrictModel
from gonogo.units import format_value

# Offsets after a burst's last acknowledgement, spread over a flush cycle of a second or two
# (a write-behind buffer, Redis' appendfsync everysec, InnoDB's flush once a second).
DEFAULT_KILL_AFTER = (0.0, 0.1, 0.5, 1.5)
_MOST_MOMENTS = 10
_LATEST_MOMENT = 30.0


class Recovery(StrictModel):
    timeout: Duration = Field(default=60.0, gt=0, description="how long recovery may take")
    sustain: Duration = Field(default=5.0, gt=0, description="how long the hypothesis must hold again")


def moment_label(after: float) -> str:
    """A kill moment's name in metric names: its offset in whole milliseconds, e.g. `500ms`."""
    return f"{round(after * 1000)}ms"


class KillMoments(StrictModel):
    """After the experiment, with everything else stopped: bursts of writes, each followed by a
    kill of the services the experiment's kill faults kill whole, at `after` seconds from the
    burst's last acknowledgement (or at 0, 1/4, 1/2 and 3/4 of a known `flush_period`). The
    bursts are `burst`, `burst`+1, … writes long, so a buffer flushed every N writes is left
    holding some of one whatever N is."""

    after: list[Duration] | None = Field(
        default=None, description="offsets after the burst's last acknowledgement, e.g. [0s, 100ms, 1s]"
    )
    flush_period: Duration | None = Field(
        default=None, gt=0, description="how often the service flushes, when known: kills across one cycle"
    )
    burst: int = Field(default=20, ge=1, le=200, description="writes in the first burst, sent at once")
    quiet: Duration = Field(default=0.5, ge=0, le=10, description="with nothing in flight before each burst")

    @model_validator(mode="after")
    def _offsets_are_usable(self) -> KillMoments:
        if self.after is not None and self.flush_period is not None:
            raise ValueError("give after (the offsets) or flush_period (offsets across it), not both")
        offsets = self.offsets
        if not 1 <= len(offsets) <= _MOST_MOMENTS:
            raise ValueError(f"after: give 1 to {_MOST_MOMENTS} offsets; got {len(offsets)}")
        if any(not 0 <= offset <= _LATEST_MOMENT for offset in offsets):
            raise ValueError(
                f"after: each offset must be from 0s to {_LATEST_MOMENT:g}s; "
                f"got {', '.join(format_value(o, 'seconds') for o in offsets)}"
            )
        labels = [moment_label(offset) for offset in offsets]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"after: each offset once (to the millisecond); repeated: {', '.join(repeated)}")
        return self

    @property
    def offsets(self) -> list[float]:
        if self.after is not None:
            return list(self.after)
        if self.flush_period is not None:
            return [self.flush_period * quarter / 4 for quarter in range(4)]
        return list(DEFAULT_KILL_AFTER)

    @property
    def labels(self) -> list[str]:
        return [moment_label(offset) for offset in self.offsets]


def _kill_moments_shorthand(value: Any) -> Any:
    """`auto` (the default), `off` (YAML reads it as false), or a list of offsets."""
    if value is None or value is False or value in ("off", "none"):
        return None
    if value == "auto":
        return {}
    if isinstance(value, list):
        return {"after": value}
    if isinstance(value, str) or value is True:
        raise ValueError(
            f"expected auto, off, a list of offsets such as [0s, 500ms], or a mapping "
            f"with after, flush_period, burst, quiet; got {value!r}"
        )
    return value


class ChaosSettings(StrictModel):
    base_url: str | None = Field(default=None, description="default: the plan's system.base_url")
    load: BackgroundLoad | None = None
    hypothesis: Hypothesis
    faults: list[Fault] = Field(min_length=1)
    concurrent_faults: bool = Field(
        default=False,
        description="apply the faults all at once; by default each waits until the one before is applied "
        "(a restart: until the service is ready again)",
    )
    before: Duration = Field(default=5.0, ge=0, description="steady state observed before the fault")
    duration: Duration = Field(default=10.0, ge=0, description="the fault window")
    recovery: Recovery = Field(default_factory=Recovery)
    integrity: Integrity | None = None
    kill_moments: Annotated[KillMoments | None, BeforeValidator(_kill_moments_shorthand)] = Field(
        default_factory=KillMoments,
        description="auto (the default: with integrity and a kill fault), off, or when to kill after "
        "bursts of writes",
    )
    _integrity_journeys: JourneysSettings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _integrity_is_coherent(self) -> ChaosSettings:
        if self.integrity is not None:
            self._integrity_journeys = integrity_journeys(self.integrity, self.load)
        return self

    @model_validator(mode="after")
    def _kill_moments_can_run(self) -> ChaosSettings:
        if "kill_moments" not in self.model_fields_set or self.kill_moments is None:
            return self  # the default applies only where it can
        if self.integrity is None:
            raise ValueError("kill_moments needs integrity: the writes whose loss it looks for")
        if not self.kill_targets:
            raise ValueError(
                "kill_moments kills the services this experiment's kill faults kill; it has none that "
                "kills a whole service (a kill with process: leaves the service running)"
            )
        return self

    @property
    def kill_targets(self) -> list[tuple[str, int]]:
        """(service, signal) of every kill fault that kills a whole service, each service once."""
        targets: dict[str, int] = {}
        for fault in self.faults:
            if isinstance(fault, KillFault) and fault.process is None:
                targets.setdefault(fault.kill, fault.signal)
        return list(targets.items())

    @property
    def moments(self) -> KillMoments | None:
        """The kill moments this experiment tries: none without integrity writes or a whole kill."""
        if self.kill_moments is None or self.integrity is None or not self.kill_targets:
            return None
        return self.kill_moments

    @property
    def integrity_journeys(self) -> JourneysSettings | None:
        return self._integrity_journeys
