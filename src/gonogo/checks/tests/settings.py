"""The plan's settings for a `tests` check, validated once when the plan loads."""

from __future__ import annotations

__all__ = ["ByteSize", "CoverageSettings", "TestsSettings"]

import shlex
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gonogo.checks.tests.coverage import DEFAULT_MAX_JSON_BYTES
from gonogo.plan.model import Duration
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


class TestsSettings(BaseModel):
    """Run a test command (optional) and ingest its JUnit XML and coverage reports."""

    __test__: ClassVar[bool] = False  # a settings model, not a pytest test class

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] | str | None = None
    shell: bool = False
    cwd: str | None = Field(default=None, description="relative to the plan's directory")
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None
    junit: list[str] = Field(default_factory=list, description="globs of JUnit XML files, relative to cwd")
    coverage: CoverageSettings | None = None

    @field_validator("junit", mode="before")
    @classmethod
    def _one_glob_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

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
            raise ValueError("a command must not be empty; omit it to only ingest reports")
        return value

    @model_validator(mode="after")
    def _command_splits(self) -> TestsSettings:
        if isinstance(self.command, str) and not self.shell:
            try:
                shlex.split(self.command)
            except ValueError as error:
                raise ValueError(
                    f"command {self.command!r} cannot be split into words ({error}); "
                    "fix the quoting, give a list, or set shell: true"
                ) from None
        return self

    @model_validator(mode="after")
    def _something_to_ingest(self) -> TestsSettings:
        if not self.junit and self.coverage is None:
            raise ValueError(
                "a tests check needs `junit` (globs of JUnit XML reports) and/or `coverage` "
                "(a coverage report); without them there is nothing to measure"
            )
        return self
