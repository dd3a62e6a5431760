"""The plan's settings for a `load_results` check, validated once when the plan loads."""

from __future__ import annotations

__all__ = ["LoadResultsSettings"]

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gonogo.checks.command import CommandSettings
from gonogo.checks.load_results.formats import FormatChoice


class _ResultsFile(BaseModel):
    """Where the results file is; a base of `LoadResultsSettings` only so that these keys come
    first, as the plan's errors list them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(
        description="path or glob of the results file, relative to cwd; must match exactly one file"
    )
    format: FormatChoice = Field(
        default="auto", description="auto: a JSON object is k6, a JSON list Locust --json, a CSV Locust"
    )


class LoadResultsSettings(CommandSettings, _ResultsFile):
    """Run a load test (optional), then ingest the results file it wrote."""

    without_command: ClassVar[str] = "only read an existing results file"

    command: list[str] | str | None = Field(
        default=None, description="run first; then only a results file it wrote counts"
    )
    endpoints: bool = Field(default=True, description="also record the figures of each endpoint")

    @field_validator("file")
    @classmethod
    def _file_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("file must name the results file (a path or a glob)")
        return value
