"""A Chaos Toolkit experiment file as typed models, checked before `chaos run` sees it.

`chaos run` stops at the first mistake it notices and silently ignores a misspelt key (a
`steady_state_hypothesis` is no hypothesis at all, so the experiment "passes"). Here every
key is checked against the experiment format (title, description, steady-state hypothesis,
method, rollbacks; activities with python, process or http providers; tolerances), and each
mistake is reported with the file, its line when known, the JSON path of the field and what
was expected::

    chaos/exp.yaml:12:9: $.method[0].provider.type: unknown provider type 'shell'; expected
    python, process or http

What only running can tell (a Python module that does not import, an executable that is not
on PATH) is left to `chaos run`'s own validation.
"""

from __future__ import annotations

__all__ = [
    "Activity",
    "ActivityRef",
    "Experiment",
    "HttpProvider",
    "Hypothesis",
    "HypothesisProbe",
    "ProcessProvider",
    "PythonProvider",
    "load_experiment",
    "parse_experiment",
]

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gonogo.errors import InputFileError

_MAX_BYTES = 16 * 1024 * 1024  # an experiment is a hand-written file; anything bigger is a mistake
_LISTED_ISSUES = 20
_PROVIDER_TYPES = ("python", "process", "http")
_TOLERANCE_TYPES = ("probe", "regex", "jsonpath", "range")
_SUBSTITUTION = re.compile(r"^\$\{[^}]+\}$")  # `${name}`: a value from the configuration or secrets

Location = tuple[str | int, ...]
_TOLERANCE_WHAT = (
    "a boolean, an integer, a string, a list (two numbers for a range, else the accepted values) "
    "or a mapping whose type is probe, regex, jsonpath or range"
)


class _Node(BaseModel):
    """A part of the experiment: strictly typed, and an unknown key is named with the closest known one."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [field.alias or name for name, field in cls.model_fields.items()]
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                    hint = f"did you mean {close[0]!r}?" if close else "expected one of: " + ", ".join(known)
                    raise PydanticCustomError(
                        "gonogo_located", "{message}", {"message": f"unknown key {key!r}; {hint}", "at": key}
                    )
        return data


NonEmpty = Annotated[str, Field(min_length=1)]
Number = float  # strict: an int or a float, never a bool or a string
Pause = Number | str
Extras = list[dict[str, Any]]  # controls, extensions: defined by plug-ins, passed as they are


class PythonProvider(_Node):
    type: Literal["python"]
    module: NonEmpty
    func: NonEmpty
    arguments: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] | None = None


class ProcessProvider(_Node):
    type: Literal["process"]
    path: NonEmpty
    arguments: str | list[Any] | dict[str, Any] | None = None
    timeout: Number | str | None = None
    secrets: list[str] | None = None


class HttpProvider(_Node):
    type: Literal["http"]
    url: NonEmpty
    method: NonEmpty = "GET"
    headers: dict[str, str] | None = None
    arguments: Any = None
    timeout: Number | list[Number] | str | None = None
    verify_tls: bool = True
    max_retries: int = 0
    expected_status: int | list[int] | None = None
    secrets: list[str] | None = None


def _provider_tag(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("type") in _PROVIDER_TYPES:
        return f"<{value['type']}>"
    return None


Provider = Annotated[
    Annotated[PythonProvider, Tag("<python>")]
    | Annotated[ProcessProvider, Tag("<process>")]
    | Annotated[HttpProvider, Tag("<http>")],
    Discriminator(
        _provider_tag,
        custom_error_type="gonogo_provider_type",
        custom_error_message="a provider is a mapping whose type is python, process or http",
    ),
]


class Pauses(_Node):
    before: Pause | None = None
    after: Pause | None = None

    @field_validator("before", "after")
    @classmethod
    def _number_or_substitution(cls, value: Pause | None) -> Pause | None:
        if isinstance(value, str) and not _SUBSTITUTION.match(value):
            raise ValueError("a pause is a number of seconds, or ${name} of a configuration value")
        return value


class RegexTolerance(_Node):
    type: Literal["regex"]
    pattern: NonEmpty
    target: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression ({error})") from None
        return value


class JsonPathTolerance(_Node):
    type: Literal["jsonpath"]
    path: NonEmpty
    target: str | None = None
    count: int | None = None
    expect: Any = None


class RangeTolerance(_Node):
    type: Literal["range"]
    range: list[Number]
    target: str | None = None

    @field_validator("range")
    @classmethod
    def _two_bounds(cls, value: list[float]) -> list[float]:
        if len(value) != 2:
            raise ValueError("a range is two numbers: [lowest, highest]")
        return value


class _ActivityFields(_Node):
    type: Literal["probe", "action"]
    name: NonEmpty
    provider: Provider
    pauses: Pauses | None = None
    background: bool = False
    controls: Extras | None = None
    timeout: Number | None = None


class ProbeTolerance(_ActivityFields):
    """A probe called with the value to judge as its `value` argument; truthy means within tolerance."""

    type: Literal["probe"]


def _tolerance_tag(value: Any) -> str | None:
    # bool before int: True is an int to Python, never to a tolerance
    if isinstance(value, bool):
        return "<boolean>"
    if isinstance(value, int):
        return "<integer>"
    if isinstance(value, str):
        return "<string>"
    if isinstance(value, list):
        return "<list>"
    if isinstance(value, dict) and value.get("type") in _TOLERANCE_TYPES:
        return f"<{value['type']}>"
    return None


Tolerance = Annotated[
    Annotated[bool, Tag("<boolean>")]
    | Annotated[int, Tag("<integer>")]
    | Annotated[str, Tag("<string>")]
    | Annotated[list[Any], Tag("<list>")]
    | Annotated[ProbeTolerance, Tag("<probe>")]
    | Annotated[RegexTolerance, Tag("<regex>")]
    | Annotated[JsonPathTolerance, Tag("<jsonpath>")]
    | Annotated[RangeTolerance, Tag("<range>")],
    Discriminator(
        _tolerance_tag,
        custom_error_type="gonogo_tolerance",
        custom_error_message=f"a tolerance is {_TOLERANCE_WHAT}",
    ),
]


class Activity(_ActivityFields):
    """A probe or an action of the method or the rollbacks."""

    tolerance: Tolerance | None = None  # only judged in a hypothesis; allowed anywhere, as chaos does


class ActivityRef(_Node):
    """`{"ref": "name"}`: an activity declared elsewhere in the experiment, run again here."""

    ref: NonEmpty


class HypothesisProbe(_ActivityFields):
    tolerance: Tolerance


def _activity_tag(value: Any) -> str:
    return "<ref>" if isinstance(value, dict) and "ref" in value else "<activity>"


ActivityOrRef = Annotated[
    Annotated[Activity, Tag("<activity>")] | Annotated[ActivityRef, Tag("<ref>")],
    Discriminator(_activity_tag),
]


class Hypothesis(_Node):
    title: NonEmpty
    probes: list[HypothesisProbe] = Field(default_factory=list)
    controls: Extras | None = None


class Experiment(_Node):
    """The experiment format of Chaos Toolkit (chaostoolkit-lib 1.x)."""

    version: str | None = None
    title: NonEmpty
    description: NonEmpty
    tags: list[NonEmpty] | None = None
    contributions: dict[str, str] | None = None
    configuration: dict[str, Any] | None = None
    secrets: dict[str, dict[str, Any]] | None = None
    extensions: Extras | None = None
    controls: Extras | None = None
    steady_state_hypothesis: Hypothesis | None = Field(default=None, alias="steady-state-hypothesis")
    method: list[ActivityOrRef]
    rollbacks: list[ActivityOrRef] = Field(default_factory=list)
    runtime: dict[str, Any] | None = None
    dry: Any = None  # written back by `chaos run` into the experiment it journals

    @model_validator(mode="after")
    def _references_resolve(self) -> Experiment:
        declared: set[str] = {activity.name for activity in self.activities()}
        for where, activities in (("method", self.method), ("rollbacks", self.rollbacks)):
            for index, item in enumerate(activities):
                if isinstance(item, ActivityRef) and item.ref not in declared:
                    raise PydanticCustomError(
                        "gonogo_located",
                        "{message}",
                        {
                            "message": f"no activity named {item.ref!r} is declared in the experiment",
                            "at": f"{where}\x00{index}\x00ref",
                        },
                    )
        return self

    def activities(self) -> list[_ActivityFields]:
        """Every activity declared in place (references apart)."""
        found: list[_ActivityFields] = []
        if self.steady_state_hypothesis is not None:
            found.extend(self.steady_state_hypothesis.probes)
        found.extend(item for item in (*self.method, *self.rollbacks) if isinstance(item, Activity))
        return found


# -- reading and locating --------------------------------------------------------------------


def load_experiment(path: Path) -> Experiment:
    """Read and check the experiment file at `path`; raises InputFileError naming the file,
    with every mistake found (file, line when known, JSON path, what was expected)."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputFileError(f"{name}: no such file; expected a Chaos Toolkit experiment") from None
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    if not path.is_file():
        raise InputFileError(f"{name}: not a regular file; expected a Chaos Toolkit experiment")
    if size > _MAX_BYTES:
        raise InputFileError(f"{name}: refused: {size / 2**20:.0f} MiB is far too big for an experiment")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    return parse_experiment(data, name)


def parse_experiment(data: bytes, name: str) -> Experiment:
    """The experiment in `data` (JSON, or YAML when it is not JSON); `name` names it in errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{name}: not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise InputFileError(f"{name}: the file is empty; expected a Chaos Toolkit experiment")
    is_json = name.lower().endswith(".json") or text.lstrip().startswith("{")
    document: Any
    if is_json:
        try:
            document = json.loads(text)
        except RecursionError:
            raise InputFileError(f"{name}: refused: the JSON is nested too deeply") from None
        except json.JSONDecodeError as error:
            stripped = text.strip()
            # a file cut short mid-string makes the parser point at the string's start, not the end
            if error.pos >= len(text.rstrip()) or (stripped.startswith("{") and not stripped.endswith("}")):
                raise InputFileError(
                    f"{name}: the JSON ends before the experiment is complete (truncated?)"
                ) from None
            raise InputFileError(
                f"{name}:{error.lineno}:{error.colno}: not valid JSON ({error.msg})"
            ) from None
    else:
        try:
            document = yaml.safe_load(text)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
            raise InputFileError(f"{where}: not valid YAML ({error.problem or error.context})") from None
        except yaml.YAMLError as error:
            raise InputFileError(f"{name}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise InputFileError(
            f"{name}: $: expected a mapping with at least title, description and method "
            f"(a Chaos Toolkit experiment), got {_describe(document)}"
        )
    if "run" in document and "steady_states" in document:
        raise InputFileError(
            f"{name}: this is the journal of a run, not an experiment; give it as `journal:` to ingest it"
        )
    try:
        return Experiment.model_validate(document)
    except ValidationError as error:
        positions = _positions(text)
        issues = [_issue(name, detail, positions) for detail in error.errors()]
        unique = list(dict.fromkeys(issues))
        shown = unique[:_LISTED_ISSUES]
        if len(unique) > _LISTED_ISSUES:
            shown.append(f"... and {len(unique) - _LISTED_ISSUES} more")
        raise InputFileError(
            f"{name}: not a valid Chaos Toolkit experiment ({len(unique)} problem(s)):\n"
            + "\n".join(f"  {issue}" for issue in shown)
        ) from None


def _issue(name: str, detail: Any, positions: dict[Location, tuple[int, int]]) -> str:
    # pydantic puts a union member's tag (ours all look like `<...>`) and nothing else into loc
    loc: Location = tuple(
        part for part in detail["loc"] if not (isinstance(part, str) and part.startswith("<"))
    )
    kind = detail["type"]
    context = detail.get("ctx") or {}
    given = detail.get("input")
    if kind == "gonogo_located":
        at = str(context.get("at", ""))
        loc = (*loc, *(int(part) if part.isdigit() else part for part in at.split("\x00") if part))
        message = str(context["message"])
    elif kind == "gonogo_provider_type":
        message = _bad_type("provider", given, "python, process or http")
        loc = (*loc, "type") if isinstance(given, dict) and "type" in given else loc
    elif kind == "gonogo_tolerance":
        if isinstance(given, dict):
            message = _bad_type("tolerance", given, "probe, regex, jsonpath or range")
            loc = (*loc, "type") if "type" in given else loc
        else:
            message = f"a tolerance is {_TOLERANCE_WHAT}; got {_describe(given)}"
    elif kind == "missing":
        message = f"required field {loc[-1]!r} is missing" if loc else "a required field is missing"
        loc = loc[:-1]
    elif kind == "literal_error":
        expected = context.get("expected", "")
        message = f"expected {expected}; got {_describe(given)}"
    else:
        text = str(detail["msg"]).removeprefix("Value error, ")
        message = f"{text[:1].lower()}{text[1:]}; got {_describe(given)}"
    line = _position(positions, loc)
    where = f"{name}:{line[0]}:{line[1]}" if line else name
    return f"{where}: {_json_path(loc)}: {message}"


def _bad_type(what: str, given: dict[str, Any], expected: str) -> str:
    if "type" not in given:
        return f"a {what} needs a `type`: {expected}"
    return f"unknown {what} type {given['type']!r}; expected {expected}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} {text}"


def _json_path(loc: Location) -> str:
    path = "$"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part}"
        else:
            path += "[" + json.dumps(part) + "]"
    return path


def _position(positions: dict[Location, tuple[int, int]], loc: Location) -> tuple[int, int] | None:
    """Where `loc` (or its nearest ancestor that is written in the file) stands."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in positions:
            return positions[loc[:end]]
    return None


def _positions(text: str) -> dict[Location, tuple[int, int]]:
    """Line and column of every value, for error messages; JSON is read as YAML for this only.

    Best effort: a document PyYAML cannot compose gives no positions, only JSON paths."""
    positions: dict[Location, tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return positions
    pending: list[tuple[yaml.Node, Location]] = [(root, ())] if root is not None else []
    while pending:
        node, location = pending.pop()
        positions[location] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = (*location, key_node.value)
                    pending.append((value_node, key))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*location, index)) for index, item in enumerate(node.value))
    return positions
