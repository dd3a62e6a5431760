"""The plan's settings for a `chaostoolkit` check, validated once when the plan loads."""

from __future__ import annotations

__all__ = ["DEFAULT_TIMEOUT", "ChaosToolkitSettings", "RollbackStrategy"]

from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from gonogo.plan.model import Duration, StrictModel

RollbackStrategy = Literal["default", "always", "never", "deviated"]

DEFAULT_TIMEOUT = 600.0  # seconds; an experiment that hangs must not hold the run forever

_RUN_ONLY = ("configuration", "var_file", "rollback_strategy", "timeout", "cwd")


class ChaosToolkitSettings(StrictModel):
    """Run a Chaos Toolkit experiment with `chaos run`, or ingest the journal of one already run."""

    experiment: str | None = Field(
        default=None, description="experiment file (JSON or YAML) to run, relative to the plan's directory"
    )
    journal: str | None = Field(
        default=None, description="journal of an experiment already run, relative to the plan's directory"
    )
    configuration: dict[str, str] = Field(
        default_factory=dict,
        description="passed as `--var key=value`; placeholders such as {port.faults} are filled in",
    )
    var_file: list[str] | str | None = Field(
        default=None, description="passed as `--var-file`, relative to the plan's directory"
    )
    rollback_strategy: RollbackStrategy | None = Field(
        default=None, description="passed as `--rollback-strategy`; omit to use the experiment's own"
    )
    timeout: Duration | None = Field(
        default=None, description=f"stop `chaos run` after this long (default {DEFAULT_TIMEOUT:.0f}s)"
    )
    cwd: str | None = Field(
        default=None,
        description="where `chaos run` runs, relative to the plan's directory; "
        "default: the experiment file's directory",
    )

    @field_validator("timeout", mode="before")
    @classmethod
    def _no_zero_timeout(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool) and value in (0, "0"):
            raise ValueError("a timeout of 0 would stop the experiment at once; omit it instead")
        return value

    @field_validator("experiment", "journal")
    @classmethod
    def _path_given(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a file")
        return value

    @field_validator("configuration")
    @classmethod
    def _keys_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or "=" in key or key.strip() != key:
                raise ValueError(
                    f"configuration key {key!r} cannot be passed as --var key=value; "
                    "use the name of a key of the experiment's configuration"
                )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.experiment is None) == (self.journal is None):
            raise ValueError(
                "give either `experiment` (a Chaos Toolkit experiment file to run) "
                "or `journal` (the journal of a run to ingest), not both or neither"
            )
        if self.journal is not None:
            given = [name for name in _RUN_ONLY if name in self.model_fields_set]
            if given:
                raise ValueError(
                    f"{', '.join(given)} only apply when running an `experiment`; a `journal` is only read"
                )
        return self

    @property
    def var_files(self) -> list[str]:
        if self.var_file is None:
            return []
        return [self.var_file] if isinstance(self.var_file, str) else list(self.var_file)
