"""An operation check's settings: the plan's deploy, rollback, backup and restore, as written.

    checks:
      release:
        kind: operation
        load: {rate: 50/s, requests: [{name: list, path: /items}]}
        version: {url: /version, json: $.version}
        operations:
          - {name: deploy, command: "./deploy.sh v2", expect_version: v2}
          - {name: rollback, command: "./deploy.sh v1", expect_version: v1}
          - {name: bounce, restart: api, repeat: 1}
        restore_check:
          backup: "sqlite3 {run_dir}/data.db '.backup {work_dir}/backup.db'"
          destroy: [rm, -f, "{run_dir}/data.db"]
          restore: {command: [cp, "{work_dir}/backup.db", "{run_dir}/data.db"], restart: api}
          integrity: {write: ..., read: ...}

An action (an operation, or one step of the restore drill) runs its `command`, restarts a plan
service (`restart:`), or both: the command first (install the new version), then the restart.
"""

from __future__ import annotations

__all__ = ["Action", "Operation", "OperationSettings", "RestoreCheck", "VersionEndpoint"]

import re
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from gonogo.experiment.settings import BackgroundLoad, Integrity, integrity_journeys
from gonogo.journey.settings import JourneysSettings, JsonPathKey, Name
from gonogo.plan.model import Duration, StrictModel, require_splits


class Action(StrictModel):
    """A command, a graceful restart of a plan service, or the command and then the restart."""

    command: list[str] | str | None = None
    shell: bool = Field(default=False, description="run the command (a string) with /bin/sh -c")
    restart: str | None = Field(
        default=None, description="a service of the plan, restarted gracefully (after the command, if any)"
    )
    timeout: Duration = Field(default=300.0, gt=0, description="for the command")

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value is not None and (not value or (isinstance(value, str) and not value.strip())):
            raise ValueError("a command must not be empty")
        return value

    @model_validator(mode="after")
    def _something_to_do(self) -> Self:
        if self.command is None and self.restart is None:
            raise ValueError("give a command, a service to restart (restart: NAME), or both")
        if self.command is None and ("shell" in self.model_fields_set or "timeout" in self.model_fields_set):
            raise ValueError(
                "shell and timeout are for a command; a restart is bounded by the service's ready timeout"
            )
        require_splits(self.command, shell=self.shell)
        return self


def _command_shorthand(value: Any) -> Any:
    # `backup: "sqlite3 ..."` or `destroy: [rm, -f, x]` is short for `{command: ...}`.
    return {"command": value} if isinstance(value, str | list) else value


ActionField = Annotated[Action, BeforeValidator(_command_shorthand)]


class Operation(Action):
    """One operation of the plan, run `repeat` times under the background load."""

    name: Name = Field(description="what the operation is for: deploy, rollback, backup…")
    repeat: int = Field(default=3, ge=1, le=100)
    pause: Duration = Field(
        default=2.0,
        ge=1.0,
        description="after each run, before the version is read and the next operation starts; "
        "failures meanwhile count for this run",
    )
    expect_version: str | None = Field(default=None, description="the version answered after each run")


class VersionEndpoint(StrictModel):
    """Where the service tells its version: the whole body, a JSON field, or a regex's match."""

    url: str = Field(description="a path on the base URL (/version) or a loopback URL")
    json_path: JsonPathKey | None = Field(default=None, alias="json", description="e.g. $.version")
    regex: str | None = Field(default=None, description="the first group, or the whole match")
    timeout: Duration = Field(default=2.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value  # `version: /version`

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.json_path is not None and self.regex is not None:
            raise ValueError("give json or regex, not both")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"regex: {self.regex!r} is not a regular expression ({error})") from None
        return self


class RestoreCheck(StrictModel):
    """Backup → destroy → restore, then every write acknowledged before the backup read back.

    Writes go on for `writes` before the backup, and stop before it starts: each of them must
    come back. Writes acknowledged after the backup (for `writes_after_backup`, before the
    destroy) are not counted: they are expected lost, and if any of them comes back the data
    after the restore is not the backup's, so the drill is not verified.
    """

    backup: ActionField
    destroy: ActionField
    restore: ActionField
    integrity: Integrity
    writes: Duration = Field(default=3.0, gt=0, description="how long to write before the backup")
    writes_after_backup: Duration = Field(
        default=1.0,
        ge=0,
        description="how long to write between the backup and the destroy (expected lost); "
        "0 for a point-in-time restore, which keeps them",
    )


class OperationSettings(StrictModel):
    base_url: str | None = Field(default=None, description="default: the plan's system.base_url")
    load: BackgroundLoad | None = Field(default=None, description="traffic during every operation")
    version: VersionEndpoint | None = None
    before: Duration = Field(
        default=2.0, ge=1.0, description="the load must meet no failure this long before any operation"
    )
    operations: list[Operation] = Field(default_factory=list)
    restore_check: RestoreCheck | None = None
    _integrity_journeys: JourneysSettings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if not self.operations and self.restore_check is None:
            raise ValueError("give operations, a restore_check, or both")
        names = [operation.name for operation in self.operations]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"operation names must be unique; repeated: {', '.join(repeated)}")
        if self.restore_check is not None:
            if "restore" in names:
                raise ValueError(
                    "an operation named restore would mix its figures with the restore_check's "
                    "(restore.*); name it otherwise"
                )
            self._integrity_journeys = integrity_journeys(self.restore_check.integrity, self.load)
        return self

    @property
    def integrity_journeys(self) -> JourneysSettings | None:
        return self._integrity_journeys
