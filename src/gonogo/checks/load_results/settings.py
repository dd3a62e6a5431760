"""The plan's settings for a `load_results` check, validated once when the plan loads."""

from __future__ import annotations

__all__ = ["LoadResultsSettings"]

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gonogo.checks.load_results.formats import FormatChoice
from gonogo.plan.model import Duration


class LoadResultsSettings(BaseModel):
    """Run a load test (optional), then ingest the results file it wrote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(
        description="path or glob of the results file, relative to cwd; must match exactly one file"
    )
    format: FormatChoice = Field(
        default="auto", description="auto: a JSON object is k6, a JSON list Locust --json, a CSV Locust"
    )
    command: list[str] | str | None = Field(
        default=None, description="run first; then only a results file it wrote counts"
    )
    shell: bool = False
    cwd: str | None = Field(default=None, description="relative to the plan's directory")
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None
    endpoints: bool = Field(default=True, description="also record the figures of each endpoint")

    @field_validator("file")
    @classmethod
    def _file_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("file must name the results file (a path or a glob)")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _no_zero_timeout(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool) and value in (0, "0"):
            raise ValueError("a timeout of 0 would stop the command at once; omit it instead")
        return value

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value is not None and (not value or (isinstance(value, str) and not value.strip())):
            raise ValueError("a command must not be empty; omit it to only read an existing results file")
        return value

    @model_validator(mode="after")
    def _command_splits(self) -> LoadResultsSettings:
        if isinstance(self.command, str) and not self.shell:
            try:
                shlex.split(self.command)
            except ValueError as error:
                raise ValueError(
                    f"command {self.command!r} cannot be split into words ({error}); "
                    "fix the quoting, give a list, or set shell: true"
                ) from None
        return self
