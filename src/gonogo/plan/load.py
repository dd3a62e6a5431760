"""Reading a plan file: YAML → typed models, with errors that point at the file and line.

This is the only module that knows the YAML. Every problem found is reported at once,
each with the file, line, column and field path, what was expected, and the closest
valid key when a key looks like a typo.
"""

from __future__ import annotations

__all__ = ["load_plan", "parse_plan"]

import difflib
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gonogo import plugins
from gonogo.errors import PlanError, PlanIssue, UserError
from gonogo.plan.model import (
    DIMENSIONS,
    PLACEHOLDER,
    BaselinePolicy,
    CheckSpec,
    GateSpec,
    History,
    LocatedValueError,
    Plan,
    ProxyRoute,
    Score,
    Service,
    Signoff,
    SystemSpec,
)
from gonogo.plan.names import (
    HISTORY_FIGURES,
    HISTORY_PREFIX,
    SERVICE_PREFIX,
    PlanNames,
    matches,
    overlaps,
    service_metric_patterns,
)
from gonogo.threshold import parse_threshold
from gonogo.units import parse_duration

Location = tuple[str | int, ...]
TOP_LEVEL_KEYS = ("name", "system", "checks", "gates", "score", "signoff", "baseline", "history")
CHECK_COMMON_KEYS = ("kind", "timeout", "needs_system")


class _Document:
    """YAML data plus where each part of it stands in the file."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.marks: dict[Location, tuple[int, int]] = {}
        self.key_marks: dict[Location, tuple[int, int]] = {}  # where a mapping key is written
        self.scalars: dict[Location, str] = {}  # a scalar's text as written, before YAML typed it
        self.issues: list[PlanIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            problem = error.problem or error.context or "invalid YAML"
            raise PlanError(
                [
                    PlanIssue(
                        file,
                        mark.line + 1 if mark else None,
                        mark.column + 1 if mark else None,
                        "",
                        f"invalid YAML: {problem}",
                    )
                ]
            ) from None
        self.data: Any = self._construct(node, ()) if node is not None else None

    def _construct(self, node: yaml.Node, location: Location) -> Any:
        self.marks[location] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            # `<<: *defaults` merges: the merged keys come first, and the mapping's own override them.
            own = {id(key_node) for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge"}
            try:
                self._constructor.flatten_mapping(node)
            except yaml.MarkedYAMLError as error:
                self.issue(location, f"invalid merge (<<): {error.problem}", node)
                return result
            merged: set[Any] = set()
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    self.issue(location, "a mapping key must be a plain value", key_node)
                    continue
                if id(key_node) not in own:
                    merged.add(key)
                elif key in merged:
                    merged.discard(key)  # overrides what `<<` brought
                elif key in result:
                    hint = (
                        "; to give one metric several gates, use a list of thresholds"
                        if location == ("gates",)
                        else ""
                    )
                    self.issue(
                        (*location, key),
                        f"duplicate key {key!r} (first at line {self.marks[(*location, key)][0]}){hint}",
                        key_node,
                    )
                    continue
                self.key_marks[(*location, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                result[key] = self._construct(value_node, (*location, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self._construct(item, (*location, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and not node.style:  # quoted text is text already
            self.scalars[location] = node.value
        return self._constructor.construct_object(node, deep=True)

    def issue(
        self, location: Location, message: str, node: yaml.Node | None = None, at_key: bool = False
    ) -> None:
        if node is not None:
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
        elif at_key and location in self.key_marks:
            line, column = self.key_marks[location]
        else:
            line, column = self.mark(location)
        self.issues.append(PlanIssue(self.file, line, column, _dotted(location), message))

    def mark(self, location: Location) -> tuple[int | None, int | None]:
        """The position of `location`, or of its nearest ancestor that has one."""
        for end in range(len(location), -1, -1):
            if location[:end] in self.marks:
                return self.marks[location[:end]]
        return None, None


def _dotted(location: Location) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _describe_input(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_names(model: type[BaseModel], location: Location) -> list[str]:
    """The valid keys at `location` inside `model` (for 'did you mean' suggestions)."""
    current: Any = model
    for part in location:
        current = _unwrap(current, part)
        if current is None:
            return []
    current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [field.alias or name for name, field in current.model_fields.items()]
    return []


def _unwrap_optional(annotation: Any) -> Any:
    """The useful member of `X | None` (a model first, else any container)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        for arg in members:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
        for arg in members:
            if typing.get_origin(arg) in (dict, list):
                return arg
    if origin is typing.Annotated:
        return _unwrap_optional(typing.get_args(annotation)[0])
    return annotation


def _unwrap(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if str(part) in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is list and args:
        return args[0]
    return None


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if candidates:
        return f"; expected one of: {', '.join(candidates)}"
    return ""


# pydantic's wording for a wrong type, in the plan's words (its own names classes: "instance of
# SystemSpec").
_EXPECTED = {
    "model_type": "expected a mapping (key: value pairs)",
    "dict_type": "expected a mapping (key: value pairs)",
    "list_type": "expected a list",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected text",
}


def _validate(
    document: _Document,
    model: type[BaseModel],
    data: Any,
    location: Location,
    *,
    skip_own_checks: bool = False,
) -> BaseModel | None:
    """`skip_own_checks`: leave out what the model's own (whole-model) validators say,
    already reported more precisely."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = error.errors()
    # A value of a union type (`command: list[str] | str`) fails once per member, each with the
    # member in loc (e.g. 'list[str]'): that is dropped, a member that got further inside the
    # value silences the others' "wrong type" at the value itself, and the rest merge into one
    # "expected a list or text".
    union_inner: set[Location] = set()  # values inside which a union member found the problem
    for detail in details:
        loc = tuple(detail["loc"])
        for index, part in enumerate(loc):
            if _is_union_member(part) and index + 1 < len(loc):
                union_inner.add(_without_members(loc[:index]))
    expected: dict[Location, list[str]] = {}
    given: dict[Location, Any] = {}
    for detail in details:
        raw = _without_tags(tuple(part for part in detail["loc"] if part != "__root__"), data)
        if skip_own_checks and not raw:
            continue
        loc = _without_members(raw)
        full = (*location, *loc)
        kind = detail["type"]
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, LocatedValueError):
            full = (*full, *cause.at)
            document.issue(full, cause.located)
            continue
        if kind in _EXPECTED:
            if any(_is_union_member(part) for part in raw) and loc in union_inner:
                continue
            wanted = expected.setdefault(full, [])
            if _EXPECTED[kind] not in wanted:
                wanted.append(_EXPECTED[kind])
            given[full] = detail.get("input")
            continue
        at_key = kind == "extra_forbidden"
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            message = f"unknown key {key!r}" + _suggest(key, _field_names(model, loc[:-1]))
        elif kind == "missing":
            message = f"required field {str(loc[-1])!r} is missing"
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", str(detail.get("ctx", {}).get("expected", "")))
            value = detail.get("input")
            message = f"expected one of {', '.join(choices)} (got {_describe_input(value)})"
            if isinstance(value, str):
                close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
                message += f"; did you mean {close[0]!r}?" if close else ""
        else:
            text = detail["msg"].removeprefix("Value error, ")
            value = detail.get("input")
            shown = _describe_input(value)
            # A whole mapping (a model's own check) is no help to quote: the text says it.
            message = text if isinstance(value, dict) or shown in text else f"{text} (got {shown})"
            written = document.scalars.get(full)
            if isinstance(value, int | float) and written is not None and written != repr(value):
                message += _yaml_typed(written, value)  # `name: 0123` read as 83
        document.issue(full, message, at_key=at_key)
    for full, wanted in expected.items():
        alternatives = [wanted[0]] + [text.removeprefix("expected ") for text in wanted[1:]]
        document.issue(full, " or ".join(alternatives) + _what_yaml_read(document, full, given[full], wanted))
    return None


def _what_yaml_read(document: _Document, location: Location, value: Any, wanted: list[str]) -> str:
    """What was given instead; for text that YAML typed as a number or a boolean (a checksum
    `0e51...`, `yes`, `1.10`), what it read it as, and the fix."""
    written = document.scalars.get(location)
    if _EXPECTED["string_type"] not in wanted or written is None or not isinstance(value, int | float):
        return f" (got {_describe_input(value)})"
    return _yaml_typed(written, value)


def _yaml_typed(written: str, value: float) -> str:
    """What YAML made of a plain scalar that was probably meant as text, and the fix."""
    shown = written if len(written) <= 24 else written[:20] + "..."
    read = str(value).lower() if isinstance(value, bool) else repr(value)
    noun = "boolean" if isinstance(value, bool) else "number"
    what = f"a {noun}" if read == written else f"the {noun} {_describe_input(read)[1:-1]}"
    return f"; YAML read {shown} as {what} — put it in quotes"


def _without_tags(loc: Location, data: Any) -> Location:
    """pydantic puts a tagged union's tag in the loc (`faults[0].kill.process` for the fault
    `{kill: web, process: ...}`), where the plan has a plain value: leave such a part out when
    the rest of the loc goes on from its parent."""
    kept: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        rest = loc[index + 1 :]
        value = _child(current, part)
        plain = not isinstance(value, dict | list | None)
        if rest and plain and isinstance(current, dict) and isinstance(rest[0], str) and rest[0] in current:
            continue  # a tag: `kill` holds 'web', and `process` is its sibling
        kept.append(part)
        current = value
    return tuple(kept)


def _child(container: Any, part: str | int) -> Any:
    if isinstance(container, dict):
        return container.get(part)
    if isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container):
        return container[part]
    return None


_UNION_MEMBER = re.compile(r"(str|int|float|bool|[a-z][a-z_-]*\[.*\])")


def _is_union_member(part: str | int) -> bool:
    """Whether a part of a pydantic loc names a union's member type (not a key of the plan,
    such as the JSON path `$.items[0]`)."""
    return isinstance(part, str) and _UNION_MEMBER.fullmatch(part) is not None


def _without_members(loc: Location) -> Location:
    return tuple(part for part in loc if not _is_union_member(part))


def parse_plan(text: str, path: Path) -> Plan:
    """Validate plan text read from `path`; raises PlanError listing every issue."""
    file = str(path)
    document = _Document(file, text)
    data = document.data
    if data is None:
        raise PlanError([PlanIssue(file, 1, 1, "", "the plan is empty; run `gonogo init` for a starter")])
    if not isinstance(data, dict):
        document.issue((), f"a plan must be a mapping of keys ({', '.join(TOP_LEVEL_KEYS)})")
        raise PlanError(document.issues)

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            document.issue(
                (key,), f"unknown key {key!r}" + _suggest(str(key), list(TOP_LEVEL_KEYS)), at_key=True
            )

    name = data.get("name", path.parent.name)
    if not isinstance(name, str):
        document.issue(("name",), f"expected a string, got {_describe_input(name)}")
    raw_system = data.get("system") or {}
    # Reported at the dependency itself; the model's own check could only point at `system`.
    located = _dependency_issues(document, raw_system)
    system = _validate(document, SystemSpec, raw_system, ("system",), skip_own_checks=located)
    score = _validate(document, Score, data.get("score") or {}, ("score",))
    signoff = _validate(document, Signoff, data.get("signoff") or {}, ("signoff",))
    baseline = _validate(document, BaselinePolicy, data.get("baseline") or {}, ("baseline",))
    history = _validate(document, History, _section(document, data, "history"), ("history",))
    checks = dict(_checks(document, data.get("checks") or {}))
    present = _check_kinds(data.get("checks"))
    unresolved = _references(document, checks, raw_system, system, present)
    names = _plan_names(raw_system, present)
    if names.services:
        present = {**present, SERVICE_PREFIX: None}
    if _outcome_checks(checks):
        present = {**present, HISTORY_PREFIX: None}
    confidence = baseline.confidence if isinstance(baseline, BaselinePolicy) else 0.95
    gates = list(_gates(document, data.get("gates") or {}, checks, present, names, unresolved, confidence))
    _dimension_typos(document, data, score)
    _lonely_ports(document, data)

    if document.issues:
        raise PlanError(sorted(document.issues, key=lambda i: (i.line or 0, i.column or 0)))
    assert isinstance(system, SystemSpec) and isinstance(score, Score) and isinstance(signoff, Signoff)
    assert isinstance(baseline, BaselinePolicy)
    written = set(data.get("gates") or {}) if isinstance(data.get("gates"), dict) else set()
    assert isinstance(history, History)
    return Plan(
        path=path, text=text, name=str(name), system=system, checks=checks, gates=gates, score=score,
        signoff=signoff, baseline=baseline, history=history,
        default_gate_metrics=frozenset(g.metric for g in gates if g.metric not in written),
    )  # fmt: skip


def _section(document: _Document, data: dict[Any, Any], key: str) -> Any:
    """A top-level section that is a mapping; `history:` left empty is the defaults."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        document.issue((key,), f"expected a mapping, e.g. {key}: {{runs: 10}}; got {_describe_input(value)}")
        return {}
    return value


def _dependency_issues(document: _Document, raw_system: Any) -> bool:
    """Report `depends_on` naming no service, or a cycle, at the dependency itself (the
    model refuses them too, but can only point at `system`). True if any was found."""
    services = raw_system.get("services") if isinstance(raw_system, dict) else None
    if not isinstance(services, dict):
        return False
    names = [str(name) for name in services]
    graph: dict[str, list[str]] = {}
    found = False
    for name, service in services.items():
        dependencies = service.get("depends_on") if isinstance(service, dict) else None
        if not isinstance(dependencies, list):
            continue  # absent, or a wrong type the model reports
        graph[str(name)] = []
        for index, dependency in enumerate(dependencies):
            if not isinstance(dependency, str):
                continue
            if dependency in services:
                graph[str(name)].append(dependency)
                continue
            found = True
            others = [other for other in names if other != name]
            hint = _suggest(dependency, others) if others else f"; {name!r} is its only service"
            document.issue(
                ("system", "services", name, "depends_on", index),
                f"{dependency!r} is not a service of this plan" + hint,
            )
    cycle = _cycle(graph)
    if cycle:
        found = True
        document.issue(
            ("system", "services", cycle[0], "depends_on"),
            f"services depend on each other in a cycle: {' -> '.join(cycle)}",
        )
    return found


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        if state.get(name) == "visiting":
            return [*path[path.index(name) :], name]
        if state.get(name) == "done":
            return None
        state[name] = "visiting"
        for dependency in graph.get(name, []):
            found = visit(dependency, [*path, name])
            if found:
                return found
        state[name] = "done"
        return None

    for name in graph:
        found = visit(name, [])
        if found:
            return found
    return None


def _checks(document: _Document, raw: Any) -> Iterator[tuple[str, CheckSpec]]:
    if not isinstance(raw, dict):
        document.issue(("checks",), "expected a mapping of check name → settings")
        return
    for name, entry in raw.items():
        where: Location = ("checks", name)
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            document.issue(where, "a check name must use letters, digits, '_' or '-' only")
            continue
        if name == SERVICE_PREFIX:
            document.issue(
                where,
                f"{SERVICE_PREFIX!r} cannot name a check: metrics named service.<service>.… are the ones "
                "every run records of its services (docs/metrics.md); choose another name",
                at_key=True,
            )
            continue
        if name == HISTORY_PREFIX:
            document.issue(
                where,
                f"{HISTORY_PREFIX!r} cannot name a check: metrics named history.… are the ones a run "
                "records from its plan's earlier runs (history.flaky_tests, docs/flaky-tests.md); choose "
                "another name",
                at_key=True,
            )
            continue
        if not isinstance(entry, dict):
            document.issue(where, "expected a mapping with at least a 'kind'")
            continue
        kind = entry.get("kind")
        if kind is None:
            document.issue(
                where,
                "required field 'kind' is missing; expected one of: " + ", ".join(plugins.available_kinds()),
            )
            continue
        try:
            kind_class = plugins.load_kind(str(kind))
        except UserError:
            document.issue(
                (*where, "kind"),
                f"unknown check kind {kind!r}" + _suggest(str(kind), plugins.available_kinds()),
            )
            continue
        timeout: float | None = None
        if "timeout" in entry and "timeout" not in kind_class.Settings.model_fields:
            try:
                timeout = parse_duration(entry["timeout"])
            except ValueError as error:
                document.issue((*where, "timeout"), str(error))
        needs_system = entry.get("needs_system", True)
        settings_data = {
            key: value
            for key, value in entry.items()
            if key not in CHECK_COMMON_KEYS or key in kind_class.Settings.model_fields
        }
        settings_data.pop("kind", None)
        if "timeout" in kind_class.Settings.model_fields and "timeout" in entry:
            timeout = None  # the kind applies its own timeout
        settings = _validate(document, kind_class.Settings, settings_data, where)
        if settings is not None:
            yield (
                name,
                CheckSpec(
                    kind=str(kind), settings=settings, timeout=timeout, needs_system=bool(needs_system)
                ),
            )


def _check_kinds(raw: Any) -> dict[str, str | None]:
    """Every check the plan writes, valid or not, with its kind if it names one: a gate on a
    check whose settings are wrong is no second mistake."""
    if not isinstance(raw, dict):
        return {}
    return {
        name: (str(entry["kind"]) if isinstance(entry, dict) and entry.get("kind") is not None else None)
        for name in raw
        if isinstance(name, str)
        for entry in [raw[name]]
    }


def _plan_names(raw_system: Any, present: dict[str, str | None]) -> PlanNames:
    system = raw_system if isinstance(raw_system, dict) else {}
    services = _mapping(system.get("services"))
    return PlanNames(
        services=frozenset(map(str, services)),
        with_metrics=frozenset(
            str(name) for name, entry in services.items() if _mapping(entry).get("metrics")
        ),
        proxies=frozenset(map(str, _mapping(system.get("proxies")))),
        checks={name: kind for name, kind in present.items() if kind is not None},
    )


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _references(
    document: _Document,
    checks: dict[str, CheckSpec],
    raw_system: Any,
    system: BaseModel | None,
    present: dict[str, str | None],
) -> set[str]:
    """Resolve the services, proxies and checks that checks' settings name (`kill: web`), at
    the line where each is written: otherwise the run would start everything, then fail.
    Returns the checks with a reference that did not resolve."""
    raw = raw_system if isinstance(raw_system, dict) else {}
    defined: dict[str, tuple[str, dict[Any, Any]]] = {
        "service": ("system.services", _mapping(raw.get("services"))),
        "proxy": ("system.proxies", _mapping(raw.get("proxies"))),
        "check": ("checks", dict.fromkeys(present)),
    }
    validated: dict[str, dict[str, Service] | dict[str, ProxyRoute]] = {}
    if isinstance(system, SystemSpec):  # the settings a reference needs are only trusted once valid
        validated = {"service": system.services, "proxy": system.proxies}
    unresolved: set[str] = set()
    for check_name, spec in checks.items():
        for reference in plugins.load_kind(spec.kind).references(spec.settings):
            at: Location = ("checks", check_name, *reference.location)
            section, targets = defined[reference.kind]
            if reference.name not in targets:
                others = sorted(map(str, targets))
                hint = _suggest(reference.name, others) if others else f"; the plan has none ({section})"
                document.issue(at, f"{reference.name!r} is not a {reference.kind} of this plan{hint}")
                unresolved.add(check_name)
                continue
            target = validated.get(reference.kind, {}).get(reference.name)
            for key, wanted in reference.needs.items():
                have = getattr(target, key, None)
                allowed = wanted.split("|")  # `on-failure|always`: either will do; `*`: any, but set
                met = have is not None if wanted == "*" else have in allowed
                if target is not None and not met:
                    needed = key if wanted == "*" else f"{key}: {' or '.join(allowed)}"
                    has = f"has no {key}" if wanted == "*" else f"has {key}: {have}"
                    document.issue(
                        at,
                        f"{reference.purpose or 'this'} needs a {reference.kind} with {needed}; "
                        f"{reference.name!r} {has} "
                        f"({section}.{reference.name})"
                        + (f": {reference.advice}" if reference.advice else ""),
                    )
                    unresolved.add(check_name)
    return unresolved


def _gates(
    document: _Document,
    raw: Any,
    checks: dict[str, CheckSpec],
    present: dict[str, str | None],
    names: PlanNames,
    unresolved: set[str],
    confidence: float = 0.95,
) -> Iterator[GateSpec]:
    """The gates; refused when a gate could only end *not measured*, but not for a check whose
    settings or references are wrong already (one mistake, one message). `confidence`: the
    baseline's, of the intervals a relative percentile gate needs enough values for."""
    if not isinstance(raw, dict):
        document.issue(
            ("gates",), 'expected a mapping of metric name → threshold, e.g. unit.pass_rate: ">= 99%"'
        )
        return
    declared = {name: None if name in unresolved else _declared(spec, names) for name, spec in checks.items()}
    if names.services:
        declared[SERVICE_PREFIX] = service_metric_patterns(names.services, names.with_metrics)
    if HISTORY_PREFIX in present:
        declared[HISTORY_PREFIX] = list(HISTORY_FIGURES)
    for metric, rules in raw.items():
        where: Location = ("gates", metric)
        if not isinstance(metric, str) or not metric:
            document.issue(where, "a gate's key must be a metric name such as unit.pass_rate")
            continue
        prefix = metric.split(".", 1)[0]
        if prefix == HISTORY_PREFIX and prefix not in present:
            document.issue(
                where,
                f"{metric} is computed from the per-test outcomes of a tests check with `junit` reports, "
                "and this plan has none: add one, or drop this gate",
                at_key=True,
            )
            continue
        if not _is_glob(prefix) and present and prefix not in present:
            document.issue(
                where,
                f"no check named {prefix!r} in this plan" + _suggest(prefix, sorted(present)),
                at_key=True,
            )
            continue
        items = rules if isinstance(rules, list) else [rules]
        parsed: list[tuple[GateSpec, Location]] = []
        for index, rule in enumerate(items):
            at: Location = (*where, index) if isinstance(rules, list) else where
            if not isinstance(rule, dict):
                try:
                    rule = {"expr": parse_threshold(rule)}
                except ValueError as error:
                    document.issue(at, str(error))
                    continue
            gate = _validate(document, GateSpec, {"metric": metric, **rule}, at)
            if isinstance(gate, GateSpec):
                parsed.append((gate, at))
        if not parsed:
            continue
        timeframes_only = all(gate.expr.timeframe is not None for gate, _ in parsed)
        problem = _unmeasurable(metric, checks, present, declared, timeframes_only)
        if problem:
            document.issue(where, problem, at_key=True)
            continue
        for gate, at in parsed:
            if gate.expr.relative_to_baseline and metric.rsplit(".", 1)[-1] in ("max", "min"):
                document.issue(
                    at,
                    f"a relative gate ({gate.expr.text!r}) on a maximum or minimum cannot be judged on "
                    "evidence: one value decides it and it has no confidence interval, so it could only "
                    "end not measured; compare a high percentile with the baseline instead "
                    '(….p99 or ….p99_9: "<= +10% baseline"), or hold the maximum to a fixed limit ("< 2s")',
                )
            elif gate.expr.relative_to_baseline and (
                too_few := _too_few_for_percentile(metric, checks.get(prefix), confidence)
            ):
                document.issue(at, too_few)
            elif prefix in (SERVICE_PREFIX, HISTORY_PREFIX) and gate.expr.timeframe is not None:
                document.issue(
                    at,
                    f"a timeframe ({gate.expr.text!r}) applies the threshold to a per-second series, and "
                    f"the {prefix}.* metrics are figures of the whole run, with no such series",
                )
            elif _has_series(document, gate, checks.get(prefix), at) and _followed(
                document, gate, checks.get(prefix), at
            ):
                yield gate
    yield from _default_gates(checks, raw)
    yield from _default_service_gates(names, raw)
    yield from _default_history_gates(checks, raw)


_PERCENTILE = re.compile(r"p(\d+)(?:[._](\d+))?")


def _too_few_for_percentile(metric: str, spec: CheckSpec | None, confidence: float) -> str | None:
    """Why a relative gate on a percentile could only end *not measured*: its check's settings
    allow fewer values than an interval of that percentile takes (docs/baselines.md)."""
    _, _, within = metric.partition(".")
    statistic = within.rsplit(".", 1)[-1]
    match = _PERCENTILE.fullmatch(statistic)
    if spec is None or match is None or _is_glob(metric):
        return None
    quantile = float(f"{match.group(1)}.{match.group(2) or 0}") / 100
    if not 0 < quantile < 1 or quantile == 0.5:  # the median is judged by the shift of the whole
        return None
    most = plugins.load_kind(spec.kind).most_values(spec.settings, within)
    if most is None:
        return None
    from gonogo.verdict.quantile import values_needed  # scipy: only for such a gate

    needed = values_needed(quantile, confidence)
    if most >= needed:
        return None
    return (
        f"a relative gate on the {statistic} is judged by its {confidence:.0%} confidence interval, which "
        f"takes at least {needed} values, and this check gives at most {most} a run: it could only end "
        "not measured; raise the iterations, or compare the median (….p50) with the baseline"
    )


def _default_gates(checks: dict[str, CheckSpec], raw: dict[Any, Any]) -> Iterator[GateSpec]:
    """The kinds' own gates for each check the plan's `gates` say nothing of by name."""
    gated = {metric.split(".", 1)[0] for metric in raw if isinstance(metric, str)}
    for name, spec in checks.items():
        if name in gated:
            continue
        for metric, rule in plugins.load_kind(spec.kind).default_gates(spec.settings).items():
            fields = {"expr": parse_threshold(rule)} if isinstance(rule, str) else dict(rule)
            yield GateSpec.model_validate({"metric": f"{name}.{metric}", **fields})


# Every service must stay up and stop cleanly unless the plan's gates say what to hold it to.
SERVICE_DEFAULT_GATES = {"exits.unplanned": "== 0", "shutdown.clean": "== 1"}


def _default_service_gates(names: PlanNames, raw: dict[Any, Any]) -> Iterator[GateSpec]:
    """The run-level gates of every service, unless a gate of the plan names a service metric."""
    if any(isinstance(metric, str) and metric.split(".", 1)[0] == SERVICE_PREFIX for metric in raw):
        return
    for service in sorted(names.services):
        for metric, rule in SERVICE_DEFAULT_GATES.items():
            yield GateSpec(metric=f"{SERVICE_PREFIX}.{service}.{metric}", expr=parse_threshold(rule))


# A flaky test is a risk, not proof of a defect: the default gate warns (half credit in the tests
# dimension) without blocking a release on its own; a plan that writes `history.flaky_tests` decides.
HISTORY_DEFAULT_GATES = {"flaky_tests": {"expr": "== 0", "severity": "should"}}


def _outcome_checks(checks: dict[str, CheckSpec]) -> list[str]:
    """The checks that store per-test outcomes, which the history of flaky tests reads."""
    kinds = {name: plugins.load_kind(spec.kind) for name, spec in checks.items()}
    return [name for name, kind in kinds.items() if kind.writes_test_outcomes(checks[name].settings)]


def _default_history_gates(checks: dict[str, CheckSpec], raw: dict[Any, Any]) -> Iterator[GateSpec]:
    """`history.flaky_tests == 0` as a should gate when a check stores per-test outcomes, unless a
    gate of the plan names a history metric."""
    if not _outcome_checks(checks):
        return
    if any(isinstance(metric, str) and metric.split(".", 1)[0] == HISTORY_PREFIX for metric in raw):
        return
    for metric, rule in HISTORY_DEFAULT_GATES.items():
        yield GateSpec.model_validate({"metric": f"{HISTORY_PREFIX}.{metric}", **rule})


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _declared(spec: CheckSpec, names: PlanNames) -> list[str] | None:
    """What a check can record, as patterns; None when its kind does not say."""
    found = plugins.load_kind(spec.kind).metric_names(spec.settings, names)
    return None if found is None else list(found)


def _unmeasurable(
    metric: str,
    checks: dict[str, CheckSpec],
    present: dict[str, str | None],
    declared: dict[str, list[str] | None],
    timeframes_only: bool,
) -> str | None:
    """Why a gate could only end *not measured*: its metric is none its check can record (or, for
    a glob, none any check can). A gate with only timeframes reads per-second series, which
    `_has_series` checks. None: it can be measured, or a kind does not say."""

    def patterns(name: str) -> list[str] | None:
        found = declared.get(name)
        if found is None:
            return None
        series = (
            plugins.load_kind(checks[name].kind).series_metrics if name in checks else None
        ) or frozenset()
        return [*found, *series] if timeframes_only else found

    prefix, _, rest = metric.partition(".")
    if not present:
        return None  # a plan without checks yet: nothing to hold its gates against
    if _is_glob(metric):
        candidates = [name for name in present if _is_glob(prefix) or name == prefix]
        for name in candidates:
            found = patterns(name) if name in declared else None
            if found is None or any(overlaps(metric, f"{name}.{pattern}") for pattern in found):
                return None
        recordable = [f"{name}.{pattern}" for name in candidates for pattern in patterns(name) or []]
        close = difflib.get_close_matches(metric, recordable, n=1, cutoff=0.6)
        hint = f"; the closest metric is {close[0]}" if close else ""
        return f"the glob {metric!r} matches no metric that a check of this plan can record{hint}"
    found = declared.get(prefix) if prefix in declared else None
    if timeframes_only and not _named_series(rest, checks.get(prefix), found):
        known = patterns(prefix) if prefix in declared else None
        if known is None or matches(rest, known):
            return None  # a metric the check records: `_has_series` says whether it has a series
        # a name the check records not at all (a typo): said as such, not as a timeframe problem
    if found is None or matches(rest, found):
        return None
    if prefix == SERVICE_PREFIX:
        service = rest.split(".", 1)[0]
        if not any(pattern.startswith(f"{service}.") for pattern in found):
            services = sorted({pattern.split(".", 1)[0] for pattern in found})
            return f"no service named {service!r} in this plan" + _suggest(service, services)
        return f"the run records no metric {metric!r} of its services" + _closest_metric(
            SERVICE_PREFIX, rest, found
        )
    if prefix == HISTORY_PREFIX:
        return f"the run records no metric {metric!r} from its history" + _closest_metric(
            HISTORY_PREFIX, rest, found
        )
    spec = checks[prefix]
    return (
        f"check {prefix!r} ({spec.kind}) records no metric {rest!r} with its settings, so this gate "
        "could only end not measured" + _closest_metric(prefix, rest, found)
    )


def _named_series(name: str, check: CheckSpec | None, declared: list[str] | None) -> bool:
    """Whether `name` is the series of something the check names (`endpoint.*.latency.p95`),
    which then must be one its settings have: the series of an endpoint it does not load would
    only end *not measured*."""
    series = plugins.load_kind(check.kind).series_metrics if check is not None else None
    named = [pattern for pattern in series or () if "*" in pattern]
    return declared is not None and matches(name, named)


def _closest_metric(check: str, name: str, patterns: list[str]) -> str:
    """'; did you mean ...?' with the closest declared name; a pattern's `*` taken from `name`
    where the parts line up (`endpoint.*.latency.p95` for `endpoint.x.latency.p42`)."""
    parts = name.split(".")
    candidates: list[str] = []
    for pattern in patterns:
        pattern_parts = pattern.split(".")
        if "*" not in pattern:
            candidates.append(pattern)
        elif len(pattern_parts) == len(parts):
            pairs = zip(pattern_parts, parts, strict=True)
            candidates.append(".".join(given if "*" in part else part for part, given in pairs))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    stem = name.rpartition(".")[0]
    siblings = sorted({c.rpartition(".")[2] for c in candidates if stem and c.rpartition(".")[0] == stem})
    if close and 1 < len(siblings) <= 12:
        # `latency.p42`: the last part is what is wrong; list what it may be.
        return f"; did you mean {check}.{close[0]}? ({check}.{stem} records {', '.join(siblings)})"
    if close:
        return f"; did you mean {check}.{close[0]}?"
    shown = sorted(candidates, key=lambda c: (len(c), c))[:8]
    return f"; it records e.g. {', '.join(shown)} (see docs/metrics.md)" if shown else ""


def _has_series(document: _Document, gate: GateSpec, check: CheckSpec | None, at: Location) -> bool:
    """A gate with a timeframe reads its metric's per-second series: refuse one on a metric its
    check kind records no series of, which could only end *not measured* after the whole run."""
    prefix, _, name = gate.metric.partition(".")
    if gate.expr.timeframe is None or check is None or any(c in name for c in "*?["):
        return True
    series = plugins.load_kind(check.kind).series_metrics
    if series is None or matches(name, series):
        return True
    plain = sorted(pattern for pattern in series if "*" not in pattern)
    # `endpoint.*.rps` beside `rps`: said once, not once per metric
    stems = sorted({p[: -len(n)] for p in series if "*" in p for n in plain if p.endswith(f".{n}")})
    also = f" (each also as {' and '.join(f'{stem}<metric>' for stem in stems)})" if stems else ""
    offer = f"only for {', '.join(plain)}{also}" if series else "for none of its metrics"
    close = difflib.get_close_matches(name, series, n=1)
    document.issue(
        at,
        f"a timeframe ({gate.expr.text!r}) applies the threshold to a per-second series, and a "
        f"{check.kind} check records one {offer}" + (f"; did you mean {prefix}.{close[0]}?" if close else ""),
    )
    return False


def _followed(document: _Document, gate: GateSpec, check: CheckSpec | None, at: Location) -> bool:
    """Refuse `abort_on_fail` on a metric its check kind does not follow while it runs: such a
    gate could never stop the check, only fail after it."""
    if not gate.abort_on_fail or check is None:
        return True
    live = plugins.load_kind(check.kind).live_metrics
    name = gate.metric.partition(".")[2]
    if live is None:
        return True
    if _is_glob(name):
        if any(overlaps(name, pattern) for pattern in live):
            return True
    elif matches(name, live):
        return True
    offer = f"only {', '.join(sorted(live))}" if live else "none of its metrics"
    document.issue(
        (*at, "abort_on_fail"),
        f"abort_on_fail stops a check when its gate fails while the check runs, and a {check.kind} "
        f"check follows {offer} while it runs: this gate could never stop it (it is still judged "
        "after the run; drop abort_on_fail)",
    )
    return False


def _dimension_typos(document: _Document, data: dict[Any, Any], score: BaseModel | None) -> None:
    """A score weight or a gate's `dimension` one letter away from a built-in dimension is a
    typo, which would otherwise silently weigh nothing or open a dimension of its own.
    Other names are kept: a plugin kind may measure a dimension of its own."""

    def check(name: str, location: Location, at_key: bool) -> None:
        if name in DIMENSIONS:
            return
        close = difflib.get_close_matches(name, DIMENSIONS, n=1, cutoff=0.8)
        if close:
            document.issue(
                location,
                f"unknown dimension {name!r}; did you mean {close[0]!r}? "
                f"(dimensions: {', '.join(DIMENSIONS)})",
                at_key=at_key,
            )

    if isinstance(score, Score):
        for name in score.weights:
            check(name, ("score", "weights", name), at_key=True)
    gates = data.get("gates")
    if isinstance(gates, dict):
        for metric, rules in gates.items():
            items = rules if isinstance(rules, list) else [rules]
            for index, rule in enumerate(items):
                if isinstance(rule, dict) and isinstance(rule.get("dimension"), str):
                    at: Location = ("gates", metric, index) if isinstance(rules, list) else ("gates", metric)
                    check(rule["dimension"], (*at, "dimension"), at_key=False)


def _strings(value: Any, location: Location) -> Iterator[tuple[Location, str]]:
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*location, index))


def _lonely_ports(document: _Document, data: dict[Any, Any]) -> None:
    """A `{port.NAME}` that a client uses (a base URL, a readiness probe) and that appears
    nowhere else in the plan has no listener: gonogo picks a fresh port for every name, so no
    service was told to listen there. Almost always a typo (`{port.apii}`)."""
    mentions: dict[str, int] = {}
    clients: list[tuple[Location, str]] = []
    for location, text in _strings(data, ()):
        for match in PLACEHOLDER.finditer(text):
            if match.group(1).startswith("port."):
                mentions[match.group(1)[5:]] = mentions.get(match.group(1)[5:], 0) + 1
        last = location[-1] if location else None
        probe = len(location) >= 2 and location[-2] == "ready" and last in ("http", "tcp")
        if last == "base_url" or probe:
            clients.append((location, text))
    for location, text in clients:
        for match in PLACEHOLDER.finditer(text):
            name = match.group(1).removeprefix("port.")
            if match.group(1).startswith("port.") and mentions.get(name) == 1:
                others = [other for other in mentions if other != name]
                close = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
                hint = f"; did you mean {{port.{close[0]}}}?" if close else ""
                document.issue(
                    location,
                    f"nothing listens on {{port.{name}}}: it appears nowhere else in the plan, and gonogo "
                    f"picks a fresh free port for every name, so no service was told to use it{hint}",
                )


def load_plan(path: Path | str) -> Plan:
    """Read and validate the plan at `path` (a file, or a directory holding gonogo.yaml)."""
    plan_path = Path(path)
    if plan_path.is_dir():
        plan_path = plan_path / "gonogo.yaml"
    plan_path = plan_path.resolve()
    try:
        raw = plan_path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{plan_path}: no such plan file; create one with `gonogo init`") from None
    except OSError as error:
        raise UserError(f"{plan_path}: cannot read the plan: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{plan_path}: the plan is not UTF-8 text (byte {error.start})") from None
    return parse_plan(text, plan_path)
