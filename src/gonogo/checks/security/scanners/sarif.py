"""SARIF 2.1.0 reports from any tool, read as findings.

Every run of every file counts, each under its own tool (`tool.driver.name`). A result is a
finding when it is a failure that still stands:

- `kind` other than `fail` (the default) — `pass`, `notApplicable`, `informational`, `review`,
  `open` — is an outcome, not a defect: counted in the tally as `not_failures`;
- `baselineState: absent` means fixed since the baseline: counted as `baseline_absent`;
- a suppression whose `status` is absent or `accepted` hides it: counted as `suppressed`
  (one `underReview` or `rejected` does not: the result still counts).

Severity: the rule's (or the result's) `security-severity` property as GitHub reads it —
critical ≥ 9.0, high ≥ 7.0, medium ≥ 4.0, else low; without it the result's `level`, the rule's
`defaultConfiguration.level`, or SARIF's default `warning`: error → high, warning → medium,
note → low, none → info. Rules are found by `rule`/`ruleIndex`/`ruleId` in the driver or the
extension the result's `toolComponent` names (and, as tools such as Qodana need, by id in any
extension). Category: `dependencies` for a dependency scanner (Trivy, Grype, OSV-Scanner, …),
an advisory id (CVE-, GHSA-, …) or a manifest/lock file location; `code` otherwise.

A file that is not SARIF 2.1.0, or whose structure cannot be counted (no `runs`, a result that
is not an object, an unknown `kind`), makes the part *not measured*: a report read in part is
no evidence.
"""

from __future__ import annotations

__all__ = ["SarifError", "SarifReading", "collect_sarif", "read_sarif"]

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gonogo.checks.base import CheckContext
from gonogo.checks.security.findings import (
    Category,
    Finding,
    PartResult,
    Severity,
    Tally,
    severity_from_score,
)
from gonogo.checks.security.scanners._reports import (
    ReportError,
    display,
    excerpt,
    find_reports,
    first_line,
    read_report,
)
from gonogo.errors import GonogoError

_WHAT = "a SARIF 2.1.0 report"
_KINDS = ("fail", "pass", "notApplicable", "informational", "review", "open")
_LEVELS: dict[str, Severity] = {"error": "high", "warning": "medium", "note": "low", "none": "info"}
_BASELINE_STATES = ("new", "unchanged", "updated", "absent")
_SUPPRESSION_STATUSES = ("accepted", "underReview", "rejected")

# Tools whose results are vulnerable dependencies (matched in the lower-cased driver name).
_DEPENDENCY_SCANNERS = (
    "trivy",
    "grype",
    "osv-scanner",
    "osv scanner",
    "dependabot",
    "snyk open source",
    "npm audit",
    "yarn audit",
    "pip-audit",
    "safety",
    "dependency-check",
    "retire",
    "govulncheck",
    "cargo-audit",
    "bundler-audit",
    "mend",
    "whitesource",
    "xray",
    "anchore",
)
# Rule names by which Trivy tells its other scanners' results (misconfiguration, secrets).
_NOT_DEPENDENCY_RULES = ("misconfiguration", "secret")
_ADVISORY_ID = re.compile(
    r"^(CVE-\d{4}-\d+|GHSA(-[0-9a-z]{4}){3}|PYSEC-|RUSTSEC-|GO-\d{4}-|OSV-|SNYK-)", re.I
)
_MANIFESTS = frozenset(
    {
        "pipfile", "pipfile.lock", "poetry.lock", "pyproject.toml", "uv.lock", "pdm.lock",
        "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml",
        "go.mod", "go.sum", "cargo.toml", "cargo.lock", "gemfile", "gemfile.lock", "pom.xml",
        "build.gradle", "build.gradle.kts", "gradle.lockfile", "composer.json", "composer.lock",
        "packages.config", "packages.lock.json", "mix.lock", "pubspec.lock", "podfile.lock",
        "conanfile.txt", "vcpkg.json",
    }
)  # fmt: skip
_REQUIREMENTS = re.compile(r"^(.*requirements.*\.(txt|in)|constraints.*\.txt)$")
# Tools whose snippet is the secret they found: it is not copied into gonogo's reports.
_SECRET_SCANNERS = ("gitleaks", "trufflehog", "detect-secrets", "ggshield", "secretlint")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


class SarifError(GonogoError):
    """The document is not SARIF 2.1.0 gonogo can count; the message says where and why."""


@dataclass
class SarifReading:
    """What one SARIF file says: its findings, the tally, and notes for the reader."""

    findings: list[Finding] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    notes: list[str] = field(default_factory=list)
    runs_with_results: int = 0


def collect_sarif(patterns: Sequence[str], ctx: CheckContext, part: str) -> PartResult:
    """Read every SARIF file the patterns name (paths or globs, relative to the plan)."""
    result = PartResult(part)
    try:
        paths = find_reports(patterns, ctx, _WHAT)
        readings = []
        for path in paths:
            document = read_report(path, ctx, what=_WHAT, media_type="application/sarif+json")
            try:
                readings.append(read_sarif(document, display(path, ctx)))
            except SarifError as error:
                raise ReportError(str(error)) from None
    except ReportError as error:
        result.not_measured = str(error)
        return result
    for reading in readings:
        result.findings += reading.findings
        result.tally.merge(reading.tally)
        result.notes += reading.notes
    if not any(reading.runs_with_results for reading in readings):
        result.not_measured = (
            f"no run in {', '.join(patterns)} has a `results` array: the tools reported no analysis"
        )
    return result


def read_sarif(document: Any, report: str) -> SarifReading:
    """The findings of a parsed SARIF document; `report` names the file in messages."""
    log = _object(document, report, "the document")
    version = log.get("version")
    if version != "2.1.0":
        said = "no `version`" if version is None else f"`version` {version!r}"
        raise SarifError(f"{report}: not SARIF 2.1.0 ({said}); expected {_WHAT}")
    runs = _array(log.get("runs"), report, "`runs`")
    reading = SarifReading()
    reading.tally.add("files")
    for run_index, run in enumerate(runs):
        _Run(_object(run, report, f"runs[{run_index}]"), run_index, report, reading).read()
    return reading


def _object(value: Any, report: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SarifError(f"{report}: {where} is not an object; expected {_WHAT}")
    return value


def _array(value: Any, report: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        said = "missing" if value is None else "not an array"
        raise SarifError(f"{report}: {where} is {said}; expected {_WHAT}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    """A descriptive member, or an empty one: tolerated when absent or odd."""
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _Component:
    """The driver or one extension: its rules, by position and by id."""

    name: str
    rules: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    message_strings: dict[str, Any]

    @classmethod
    def of(cls, component: dict[str, Any]) -> _Component:
        listed = component.get("rules")
        # Positions are kept (an odd entry becomes an empty rule): `ruleIndex` points into them.
        rules = [_dict(rule) for rule in listed] if isinstance(listed, list) else []
        by_id: dict[str, dict[str, Any]] = {}
        for rule in rules:
            by_id.setdefault(_str(rule.get("id")), rule)
        return cls(_str(component.get("name")), rules, by_id, _dict(component.get("globalMessageStrings")))


class _Run:
    """One run: its tool, rules and artifacts, and the results read into `reading`."""

    def __init__(self, run: dict[str, Any], index: int, report: str, reading: SarifReading) -> None:
        self.run, self.index, self.report, self.reading = run, index, report, reading
        where = f"runs[{index}]"
        tool = _object(run.get("tool"), report, f"{where}.tool")
        driver = _object(tool.get("driver"), report, f"{where}.tool.driver")
        self.tool = _str(driver.get("name")).strip()
        if not self.tool:
            raise SarifError(f"{report}: {where}.tool.driver has no `name`; expected {_WHAT}")
        self.driver = _Component.of(driver)
        extensions = tool.get("extensions")
        self.extensions = (
            [_Component.of(_dict(ext)) for ext in extensions] if isinstance(extensions, list) else []
        )
        artifacts = run.get("artifacts")
        self.artifacts = [_dict(artifact) for artifact in artifacts] if isinstance(artifacts, list) else []
        self.dependency_tool = any(name in self.tool.lower() for name in _DEPENDENCY_SCANNERS)
        self.kinds: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()

    def read(self) -> None:
        where = f"runs[{self.index}]"
        if "results" not in self.run or self.run["results"] is None:
            self.reading.notes.append(
                f"{self.report}: {where} ({self.tool}) has no `results`: the tool reported no analysis"
            )
            return
        results = _array(self.run["results"], self.report, f"{where}.results")
        self.reading.runs_with_results += 1
        self.reading.tally.add("runs")
        for result_index, result in enumerate(results):
            self._result(_object(result, self.report, f"{where}.results[{result_index}]"), result_index)
        self._notes()

    def _notes(self) -> None:
        head = f"{self.report}: {self.tool}"
        if self.kinds:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.kinds.items()))
            self.reading.notes.append(f"{head}: {kinds} — outcomes, not defects: not counted")
        if self.suppressed:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.suppressed.items()))
            self.reading.notes.append(f"{head}: suppressed results ({kinds}), accepted: not counted")
        for invocation in self.run.get("invocations") or []:
            if isinstance(invocation, dict) and invocation.get("executionSuccessful") is False:
                self.reading.notes.append(
                    f"{head} reported its run as not successful (executionSuccessful: false): "
                    "its results may be incomplete"
                )
                break

    def _result(self, result: dict[str, Any], index: int) -> None:
        where = f"runs[{self.index}].results[{index}]"
        tally = self.reading.tally
        tally.add("results")
        kind = self._choice(result, "kind", _KINDS, where) or "fail"
        if kind != "fail":
            tally.add("not_failures")
            self.kinds[kind] += 1
            return
        baseline = self._choice(result, "baselineState", _BASELINE_STATES, where)
        if baseline == "absent":
            tally.add("baseline_absent")
            return
        suppressions = self._suppressions(result, where)
        hiding = [how for how, status in suppressions if status in ("", "accepted")]
        if hiding:
            tally.add("suppressed")
            self.suppressed[hiding[0]] += 1
            return
        statuses = [status for _, status in suppressions]
        self.reading.findings.append(self._finding(result, index, baseline, statuses))

    def _choice(self, result: dict[str, Any], name: str, allowed: Sequence[str], where: str) -> str | None:
        value = result.get(name)
        if value is None:
            return None
        if value not in allowed:
            raise SarifError(
                f"{self.report}: {where}.{name} is {value!r}; expected one of {', '.join(allowed)}"
            )
        return str(value)

    def _suppressions(self, result: dict[str, Any], where: str) -> list[tuple[str, str]]:
        """The kind and status of each suppression (status "" when it has none: accepted)."""
        value = result.get("suppressions")
        if value is None:
            return []
        suppressions = []
        for number, suppression in enumerate(_array(value, self.report, f"{where}.suppressions")):
            entry = _object(suppression, self.report, f"{where}.suppressions[{number}]")
            status = entry.get("status")
            if status is not None and status not in _SUPPRESSION_STATUSES:
                raise SarifError(
                    f"{self.report}: {where}.suppressions[{number}].status is {status!r}; "
                    f"expected one of {', '.join(_SUPPRESSION_STATUSES)}"
                )
            suppressions.append((_str(entry.get("kind")) or "unspecified kind", status or ""))
        return suppressions

    def _finding(
        self, result: dict[str, Any], index: int, baseline: str | None, statuses: list[str]
    ) -> Finding:
        component, rule = self._rule(result)
        rule_id = (
            _str(result.get("ruleId")) or _str(_dict(result.get("rule")).get("id")) or _str(rule.get("id"))
        )
        where, uri, snippet, location_message = self._location(result)
        message = self._message(result, rule, component)
        severity, basis = self._severity(result, rule, index)
        category = self._category(rule_id, rule, uri)
        short = _str(_dict(rule.get("shortDescription")).get("text")) or first_line(message)
        title = first_line(f"{rule_id}: {short}" if rule_id else short, 200)
        request = message
        if location_message and location_message not in message:
            request += f"\n{location_message}"
        if snippet:
            secret_tool = any(name in self.tool.lower() for name in _SECRET_SCANNERS)
            shown = "<redacted: the secret the scanner found>" if secret_tool else snippet.strip()
            request += f"\n{where}: {shown}"
        state = f"; baselineState {baseline}" if baseline else ""
        review = f"; suppression {'/'.join(statuses)} (still counted)" if statuses else ""
        rule_shown = rule_id or "(none)"
        position = f"runs[{self.index}].results[{index}]"
        return Finding(
            rule=f"sarif:{self.tool}/{rule_id or '(no rule)'}",
            title=title or f"{self.tool} result",
            severity=severity,
            category=category,
            operation=where,
            request=excerpt(request),
            response=f"{self.tool} rule {rule_shown}: {basis}{state}{review}; {self.report} {position}",
            reproduction=f"jq '.{position}' {self.report}  # {self.tool} rule {rule_id}",
            fix=self._fix(rule, rule_id, where),
            source=self.tool,
            details={
                "report": self.report,
                "run": self.index,
                "result": index,
                "rule_id": rule_id,
                "level": _str(result.get("level"))
                or _str(_dict(rule.get("defaultConfiguration")).get("level")),
                "baseline_state": baseline,
                "suppressions": statuses,
                # Tells apart two results of one rule at one place (two packages in one image).
                "parameter": self._instance(result, message),
            },
        )

    def _rule(self, result: dict[str, Any]) -> tuple[_Component, dict[str, Any]]:
        """The result's rule and the component holding it; an empty rule when not described."""
        reference = _dict(result.get("rule"))
        rule_id = _str(result.get("ruleId")) or _str(reference.get("id"))
        index = _int(reference.get("index"))
        if index is None:
            index = _int(result.get("ruleIndex"))
        component = self._component(_dict(reference.get("toolComponent")))
        if component is not None:
            if index is not None and 0 <= index < len(component.rules):
                rule = component.rules[index]
                if not rule_id or _str(rule.get("id")) == rule_id:
                    return component, rule
            if rule_id in component.by_id:
                return component, component.by_id[rule_id]
        for candidate in [self.driver, *self.extensions]:
            if rule_id and rule_id in candidate.by_id:
                return candidate, candidate.by_id[rule_id]
        return component or self.driver, {}

    def _component(self, reference: dict[str, Any]) -> _Component | None:
        """The component a toolComponentReference names (none: the driver)."""
        if not reference:
            return self.driver
        index = _int(reference.get("index"))
        if index is not None and 0 <= index < len(self.extensions):
            return self.extensions[index]
        name = _str(reference.get("name"))
        return next((ext for ext in self.extensions if name and ext.name == name), None)

    def _location(self, result: dict[str, Any]) -> tuple[str, str, str, str]:
        """Where (`uri:line`, uriBaseId left out), the uri, the snippet, the location's message."""
        for location in result.get("locations") or []:
            location = _dict(location)
            physical = _dict(location.get("physicalLocation"))
            artifact = _dict(physical.get("artifactLocation"))
            uri = _str(artifact.get("uri")) or self._artifact_uri(artifact)
            region = _dict(physical.get("region"))
            said = _str(_dict(location.get("message")).get("text"))
            if uri:
                line = _int(region.get("startLine"))
                snippet = _str(_dict(region.get("snippet")).get("text"))
                return (f"{uri}:{line}" if line else uri), uri, snippet, said
            for logical in location.get("logicalLocations") or []:
                logical = _dict(logical)
                name = _str(logical.get("fullyQualifiedName")) or _str(logical.get("name"))
                if name:
                    return name, "", "", said
        target = _str(_dict(result.get("analysisTarget")).get("uri"))
        return (target or "(no location in the report)"), target, "", ""

    def _artifact_uri(self, artifact: dict[str, Any]) -> str:
        index = _int(artifact.get("index"))
        if index is None or not 0 <= index < len(self.artifacts):
            return ""
        return _str(_dict(self.artifacts[index].get("location")).get("uri"))

    def _message(self, result: dict[str, Any], rule: dict[str, Any], component: _Component) -> str:
        message = _dict(result.get("message"))
        text = _str(message.get("text")) or _str(message.get("markdown"))
        if not text and message.get("id"):
            strings = {**component.message_strings, **_dict(rule.get("messageStrings"))}
            text = _str(_dict(strings.get(_str(message.get("id")))).get("text"))
        arguments = [str(argument) for argument in message.get("arguments") or []]

        def argument(match: re.Match[str]) -> str:
            number = int(match.group(1))
            return arguments[number] if number < len(arguments) else match.group(0)

        return _PLACEHOLDER.sub(argument, text) if arguments else text

    def _severity(self, result: dict[str, Any], rule: dict[str, Any], index: int) -> tuple[Severity, str]:
        for owner, properties in (("result", result.get("properties")), ("rule", rule.get("properties"))):
            value = _dict(properties).get("security-severity")
            if value is None:
                continue
            score = _score(value)
            if score is not None:
                return severity_from_score(score), f"security-severity {value} on the {owner}"
            self.reading.notes.append(
                f"{self.report}: runs[{self.index}].results[{index}]: security-severity {value!r} on the "
                f"{owner} is not a number; the level was used"
            )
        level = result.get("level")
        source = "the result's level"
        if level is None:
            level = _dict(rule.get("defaultConfiguration")).get("level")
            source = "the rule's default level"
        if level is None:
            return "medium", "level warning (SARIF's default: no level given)"
        if level not in _LEVELS:
            raise SarifError(
                f"{self.report}: runs[{self.index}].results[{index}]: {source} is {level!r}; "
                f"expected one of {', '.join(_LEVELS)}"
            )
        return _LEVELS[level], f"{source} {level}"

    def _category(self, rule_id: str, rule: dict[str, Any], uri: str) -> Category:
        if self.dependency_tool and not any(
            word in _str(rule.get("name")).lower() for word in _NOT_DEPENDENCY_RULES
        ):
            return "dependencies"
        if _ADVISORY_ID.match(rule_id):
            return "dependencies"
        name = PurePosixPath(uri.split("?")[0]).name.lower()
        return "dependencies" if name in _MANIFESTS or _REQUIREMENTS.match(name) else "code"

    def _fix(self, rule: dict[str, Any], rule_id: str, where: str) -> str:
        help_text = _str(_dict(rule.get("help")).get("text")) or _str(_dict(rule.get("help")).get("markdown"))
        paragraph = help_text.strip().split("\n\n")[0] if help_text else ""
        uri = _str(rule.get("helpUri"))
        if paragraph and uri:
            return f"{excerpt(paragraph, 400)} ({uri})"
        if paragraph or uri:
            return excerpt(paragraph, 400) or f"See {uri}"
        return (
            f"Fix what {self.tool} rule {rule_id or '(none)'} reports at {where}, or accept the risk "
            "with an `ignore:` entry and its reason."
        )

    @staticmethod
    def _instance(result: dict[str, Any], message: str) -> str:
        for name in ("fingerprints", "partialFingerprints"):
            prints = _dict(result.get(name))
            for key in sorted(prints):
                value = prints[key]
                if isinstance(value, str) and value:
                    return value
        return excerpt(message, 200)


def _score(value: Any) -> float | None:
    """`security-severity` as a number: a string ("7.5") or a JSON number, finite and ≥ 0."""
    if isinstance(value, bool):
        return None
    try:
        score = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    return score if math.isfinite(score) and score >= 0 else None
