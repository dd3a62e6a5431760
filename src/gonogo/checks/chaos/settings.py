"""A chaos experiment's settings: the shared parts (`gonogo.experiment.settings`) combined."""

from __future__ import annotations

__all__ = ["ChaosSettings", "Recovery"]

from pydantic import Field, PrivateAttr, model_validator

from gonogo.experiment.settings import BackgroundLoad, Fault, Hypothesis, Integrity, integrity_journeys
from gonogo.journey.settings import JourneysSettings
from gonogo.plan.model import Duration, StrictModel


class Recovery(StrictModel):
    timeout: Duration = Field(default=60.0, gt=0, description="how long recovery may take")
    sustain: Duration = Field(default=5.0, gt=0, description="how long the hypothesis must hold again")


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
    _integrity_journeys: JourneysSettings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _integrity_is_coherent(self) -> ChaosSettings:
        if self.integrity is not None:
            self._integrity_journeys = integrity_journeys(self.integrity, self.load)
        return self

    @property
    def integrity_journeys(self) -> JourneysSettings | None:
        return self._integrity_journeys
