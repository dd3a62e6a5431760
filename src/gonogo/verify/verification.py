"""Verifying a run: its verdict recomputed, its artifacts and plan file hashed, its reports
compared with what the evidence renders now. What this does and does not protect against:
docs/verify.md."""

from __future__ import annotations

__all__ = ["Verification", "report_format", "run_of_report_file", "verify_report_file", "verify_run"]

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonogo.errors import UserError
from gonogo.evidence import ReportFileRecord, Store
from gonogo.report import FORMATS, RunReport, collect, render
from gonogo.verify.compare import FieldDifference, compare_json
from gonogo.verify.files import artifact_mismatches, plan_file_findings
from gonogo.verify.history import verify_flaky_history
from gonogo.verify.recompute import recompute_verdict

_SUFFIXES = {".json": "json", ".md": "md", ".xml": "junit", ".html": "html", ".htm": "html"}
_MAX_DIFFERENCES = 20  # per file: an item removed from a list shifts every item after it
_MD_DIGEST = re.compile(r"Evidence digest `([0-9a-f]{64})`")
_MD_RUN = re.compile(r"^Run `([^`]+)`", re.MULTILINE)
_JUNIT_PROPERTY = r'<property name="gonogo\.{}" value="([^"]+)"'
_HTML_META = r'<meta name="gonogo-{}" content="([^"]+)"'


@dataclass
class Verification:
    report: RunReport  # the run as the store has it now
    mismatches: list[str] = field(default_factory=list)  # each one a failure of verification
    warnings: list[str] = field(default_factory=list)  # could not be checked, or worth knowing
    checked: list[str] = field(default_factory=list)  # what was checked and found as recorded

    @property
    def verified(self) -> bool:
        return not self.mismatches


def verify_run(store: Store, run_id: str, *, plan_path: Path | None, run_dir: Path | None) -> Verification:
    """Recompute the verdict, hash the artifacts and the plan file, and compare the reports in
    `run_dir` (the run's folder) when given."""
    result = Verification(collect(store, run_id))
    _verify_evidence(store, result, plan_path)
    if run_dir is not None and not run_dir.is_dir():
        result.warnings.append(f"no report folder {run_dir}: no report file was checked")
    elif run_dir is not None:
        for format_name, (file_name, _) in FORMATS.items():
            path = run_dir / file_name
            if path.is_file():
                _verify_report(store, result, path, format_name)
            else:
                result.warnings.append(f"{file_name}: not in {run_dir} (regenerate it with `gonogo report`)")
    return result


def verify_report_file(store: Store, path: Path, *, plan_path: Path | None) -> Verification:
    """Verify the run a report file belongs to, and the file against its evidence."""
    format_name = report_format(path)
    result = Verification(collect(store, store.resolve_run(run_of_report_file(path, format_name)).id))
    _verify_evidence(store, result, plan_path)
    _verify_report(store, result, path, format_name)
    return result


def report_format(path: Path) -> str:
    format_name = _SUFFIXES.get(path.suffix.lower())
    if format_name is None:
        raise UserError(
            f"{path}: not a report gonogo writes (report.json, summary.md, gates.junit.xml, report.html); "
            "to verify a run, give its id or 'latest'"
        )
    return format_name


def run_of_report_file(path: Path, format_name: str) -> str:
    """The id of the run a report file says it is about."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the report: {error}") from None
    found: str | None = None
    if format_name == "json":
        try:
            document = json.loads(text)
            found = document["run"]["id"] if isinstance(document["run"]["id"], str) else None
        except (ValueError, KeyError, TypeError):
            found = None
    else:
        pattern = {
            "md": _MD_RUN,
            "junit": re.compile(_JUNIT_PROPERTY.format("run_id")),
            "html": re.compile(_HTML_META.format("run")),
        }.get(format_name, _MD_RUN)
        match = pattern.search(text)
        found = match.group(1) if match else None
    if not found:
        raise UserError(
            f"{path}: cannot tell which run this report is about (no run id in it); "
            "verify the run itself: gonogo verify RUN"
        )
    return found


def _verify_evidence(store: Store, result: Verification, plan_path: Path | None) -> None:
    report, run = result.report, result.report.run
    if run.status == "running":
        result.warnings.append(f"run {run.id} is still running: its evidence is not complete yet")
    if report.verdict is None:
        result.warnings.append(
            f"run {run.id} reached no verdict ({run.status}): there is nothing to recompute"
        )
    else:
        found = recompute_verdict(
            run,
            store.plan_text(run.id),
            report.metrics,
            store.samples(run.id),
            report.verdict,
            report.checks,
            store,
            report.baseline,
        )
        result.mismatches += found
        if not found:
            result.checked.append(
                f"verdict recomputed from {len(report.metrics)} metrics with the plan stored with the run: "
                f"{report.verdict.decision}, {len(report.verdict.gates)} gates, as stored"
            )
            baseline = report.verdict.baseline
            if baseline is not None and baseline.runs:
                runs = ", ".join(baseline.runs)
                result.checked.append(
                    f"relative gates recomputed against baseline run{'s' if len(baseline.runs) > 1 else ''} "
                    f"{runs} ({baseline.how}), from their metrics and histograms as stored now: as stored"
                )
    shas = {a.sha256 for a in report.artifacts} | {
        m.artifact_sha256 for m in report.metrics if m.artifact_sha256
    }
    found = artifact_mismatches(report, {sha256: store.artifact_path(sha256) for sha256 in shas})
    result.mismatches += found
    if not found:
        result.checked.append(f"artifact files ({len(shas)}): each one's content matches its sha256")
    history = verify_flaky_history(store, report)
    result.mismatches += history.mismatches
    result.warnings += history.warnings
    result.checked += history.checked
    plan_file = plan_path if plan_path is not None else Path(run.plan_path)
    if plan_file.is_dir():
        plan_file = plan_file / "gonogo.yaml"
    mismatches, warnings = plan_file_findings(plan_file, run.plan_hash)
    result.mismatches += mismatches
    result.warnings += warnings
    if not mismatches and not warnings:
        result.checked.append(f"plan file {plan_file.name}: unchanged since the run")


def _verify_report(store: Store, result: Verification, path: Path, format_name: str) -> None:
    label = path.name
    raw = path.read_bytes()
    fresh = render(result.report, format_name)
    if raw == fresh.encode():
        result.checked.append(f"{label}: matches the evidence")
        return
    sha256 = hashlib.sha256(raw).hexdigest()
    written = [
        r for r in store.report_files(result.report.run.id) if r.format == format_name and r.sha256 == sha256
    ]
    text = raw.decode("utf-8", errors="replace")
    recorded_any = bool(store.report_files(result.report.run.id))
    if format_name == "json":
        _verify_json(result, label, text, fresh, written, older=not recorded_any)
    elif written:
        _verify_written(store, result, label, text, format_name, written[-1])
    elif not recorded_any:
        # Runs from before gonogo recorded the reports it writes: an older rendering and an
        # edit look the same, so say so instead of calling it either.
        result.warnings.append(
            f"{label}: written by an older gonogo, which recorded no hash of it: it cannot be told from "
            f"an edited copy ({_first_difference(text, fresh)}); regenerate it with `gonogo report "
            f"{result.report.run.id} --format {format_name} -o {label}`"
        )
    else:
        result.mismatches.append(
            f"{label}: the file was edited: it matches neither what the evidence renders nor any version "
            f"gonogo wrote (sha256 {sha256[:12]}…); {_first_difference(text, fresh)}"
        )


def _verify_json(
    result: Verification,
    label: str,
    text: str,
    fresh: str,
    written: list[ReportFileRecord],
    *,
    older: bool = False,
) -> None:
    """`older`: the run is from before gonogo recorded its reports; fields one side lacks are
    then another version's rendering, but every value both have must still agree."""
    try:
        document = json.loads(text)
    except ValueError as error:
        result.mismatches.append(f"{label}: no longer valid JSON ({error})")
        return
    evidence = json.loads(fresh)
    differences = _allow_later_signoffs(result, label, document, evidence, compare_json(document, evidence))
    if written or older:
        # Written by gonogo: a field that only one side has comes from another gonogo version.
        renderer = [d for d in differences if d.kind in ("missing", "extra")]
        if renderer:
            result.warnings.append(
                f"{label}: as gonogo wrote it, with {len(renderer)} field(s) another gonogo version renders "
                f"differently (e.g. {renderer[0].where})"
            )
        differences = [d for d in differences if d.kind not in ("missing", "extra")]
    for difference in differences[:_MAX_DIFFERENCES]:
        result.mismatches.append(f"{label}: {difference.describe()}")
    if len(differences) > _MAX_DIFFERENCES:
        result.mismatches.append(f"{label}: and {len(differences) - _MAX_DIFFERENCES} more differences")
    if not differences:
        result.checked.append(f"{label}: every field matches the evidence")


def _allow_later_signoffs(
    result: Verification, label: str, report: Any, evidence: Any, differences: list[FieldDifference]
) -> list[FieldDifference]:
    """A report written before later sign-offs shows the sign-off state of then: not an edit,
    as long as the sign-offs it lists are the first ones the store has."""
    if not isinstance(report, dict) or not isinstance(report.get("signoff"), dict):
        return differences
    theirs, ours = evidence.get("signoff") or {}, report["signoff"]
    listed, stored = ours.get("signoffs"), theirs.get("signoffs")
    if not isinstance(listed, list) or not isinstance(stored, list) or len(listed) >= len(stored):
        return differences
    same_start = all(
        not compare_json(_without_state(a), _without_state(b)) for a, b in zip(listed, stored, strict=False)
    )
    if not same_start:
        return differences
    result.warnings.append(
        f"{label}: written before {len(stored) - len(listed)} later sign-off(s); it shows the sign-off "
        "state of then (regenerate it with `gonogo report`)"
    )
    return [d for d in differences if not d.where.startswith("signoff") and d.where != "verdict.outcome"]


def _without_state(signoff: Any) -> Any:
    # Whether a sign-off counts can change with later ones; what was signed cannot.
    return (
        {k: v for k, v in signoff.items() if k not in ("counts", "why_not")}
        if isinstance(signoff, dict)
        else signoff
    )


def _verify_written(
    store: Store, result: Verification, label: str, text: str, format_name: str, written: ReportFileRecord
) -> None:
    pattern = {
        "md": _MD_DIGEST,
        "junit": re.compile(_JUNIT_PROPERTY.format("evidence_sha256")),
        "html": re.compile(_HTML_META.format("evidence-digest")),
    }.get(format_name, _MD_DIGEST)
    match = pattern.search(text)
    now = result.report.evidence_digest
    when = f"{written.written_at:%Y-%m-%d %H:%M:%S} UTC"
    if match and match.group(1) != now:
        result.mismatches.append(
            f"{label}: gonogo wrote it at {when} on evidence digest {match.group(1)[:12]}…, but the "
            f"store's evidence now digests to {now[:12]}…: the evidence changed since"
        )
    else:
        result.warnings.append(
            f"{label}: as gonogo wrote it at {when}, on the evidence the store has now; "
            f"{_changed_since(store, result, written)}: regenerate it with `gonogo report`"
        )


def _changed_since(store: Store, result: Verification, written: ReportFileRecord) -> str:
    """Why a report gonogo wrote on this run's evidence renders differently now: a sign-off
    recorded since, else what the report shows of the plan's other runs."""
    later = [s for s in store.signoffs(result.report.run.id) if s.signed_at > written.written_at]
    if later:
        return f"{len(later)} sign-off{'s' if len(later) != 1 else ''} recorded since"
    return (
        "no sign-off since, so what changed is what it shows of the plan's other runs (the trend over "
        "earlier runs: one of them was added, edited or deleted since, a baseline run among them), or "
        "how this version of gonogo renders it"
    )


def _first_difference(text: str, fresh: str) -> str:
    mine, theirs = text.splitlines(), fresh.splitlines()
    for number, (a, b) in enumerate(zip(mine, theirs, strict=False), start=1):
        if a != b:
            return (
                f"first difference at line {number}: the file has {_clip(a)!r}, "
                f"the evidence gives {_clip(b)!r}"
            )
    if len(mine) != len(theirs):
        return f"the file has {len(mine)} lines, the evidence gives {len(theirs)}"
    return "they differ in line endings or trailing whitespace"


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= 100 else line[:97] + "…"
