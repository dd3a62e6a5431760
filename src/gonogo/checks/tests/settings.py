"""The plan's settings for a `tests` check, validated once when the plan loads."""

from __future__ import annotations

__all__ = ["ByteSize", "CoverageSettings", "TestsSettings"]

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gonogo.checks.command import CommandSettings
from gonogo.checks.tests.coverage import DEFAULT_MAX_JSON_BYTES
from gonogo.units import parse_quantity


def _bytes(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512MiB or a number of bytes")
    amount, unit = parse_quantity(value)
    if unit not in ("bytes", "number") or amount <= 0:
        raise ValueError(f"{value!r} is not a size; expected e.g. 512MiB, 1GB or bytes")
    return int(amount)


ByteSize = Annotated[
    int,
    BeforeValidator(_bytes),
    Field(description="bytes, or a string such as 512MiB, 1GB"),
]


class CoverageSettings(BaseModel):
    """Where the coverage report is and which source files are critical."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(description="path or glob of the report, relative to cwd")
    format: Literal["auto", "cobertura", "coveragepy", "lcov"] = "auto"
    critical: list[str] = Field(
        default_factory=list,
        description="globs over source paths as written in the report; ** spans directories",
    )
    max_json_size: ByteSize = Field(
        default=DEFAULT_MAX_JSON_BYTES,
        description="coverage.py JSON is loaded whole, so larger files are refused",
    )

    @field_validator("file")
    @classmethod
    def _file_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("coverage.file must name a report file (a path or a glob)")
        return value


class TestsSettings(CommandSettings):
    """Run a test command (optional) and ingest its JUnit XML and coverage reports."""

    __test__: ClassVar[bool] = False  # a settings model, not a pytest test class

    without_command: ClassVar[str] = "only ingest reports"

    junit: list[str] = Field(default_factory=list, description="globs of JUnit XML files, relative to cwd")
    coverage: CoverageSettings | None = None

    @field_validator("junit", mode="before")
    @classmethod
    def _one_glob_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _something_to_ingest(self) -> TestsSettings:
        if not self.junit and self.coverage is None:
            raise ValueError(
                "a tests check needs `junit` (globs of JUnit XML reports) and/or `coverage` "
                "(a coverage report); without them there is nothing to measure"
            )
        return self
