"""The `load_results` check kind: a load test the team already has, as evidence.

Runs the load test's command (optional), then reads the results file it wrote — k6's
end-of-test summary JSON, Locust's `--json` output or Locust's `PREFIX_stats.csv` — and
records the same metrics as gonogo's own `load` check, so the same gates work on either
(names relative to the check; see docs/metrics.md):

- `requests`, `rps`, `duration` (when the file gives it), `latency.mean`, `.p50`, `.p90`,
  `.p95`, `.p99`, `.p99_9`, `.min`, `.max` — performance; only the figures the file has;
- `errors`, `error_rate` — reliability;
- `endpoint.<name>.<the same>` per endpoint (`endpoints: false` turns them off);
- k6 only: `checks.pass_rate`, and `thresholds.<metric>.ok` (1 when every threshold on
  that k6 metric held, else 0) with `thresholds.ok` over all of them;
- `command.exit_code`, `command.duration` when a command ran;
- the per-second series `rps` and `error_rate` when the file has them (Locust JSON).

The file is stored as an artifact and every metric points at it. A results file only
counts if this run wrote it: when a command runs, files that existed before it started
and were not rewritten are ignored (never deleted). A command that cannot start or times
out, or no fresh file, several matching files, or a file that is missing, empty, over
256 MiB, truncated or of another shape give an `error` outcome and no load metrics.
"""

from __future__ import annotations

__all__ = ["LoadResultsCheck"]

from collections.abc import Mapping
from pathlib import Path

from gonogo.checks.base import ArtifactRef, CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames
from gonogo.checks.command import CommandRun
from gonogo.checks.load_results.formats import parse_results_data, what
from gonogo.checks.load_results.settings import LoadResultsSettings
from gonogo.checks.load_results.summary import LATENCY_FIELDS, LoadSummary, Stats
from gonogo.errors import InputFileError
from gonogo.inputs import MAX_FILE_BYTES, read_bounded
from gonogo.units import format_value

_FORMAT_NAMES = {"k6": "k6 summary", "locust-json": "Locust JSON stats", "locust-csv": "Locust CSV stats"}
_LISTED_FILES = 5
_LISTED_THRESHOLDS = 20


class LoadResultsCheck(CheckKind[LoadResultsSettings]):
    """Ingest a k6 or Locust load test's end-of-test results (running the test first if asked)."""

    kind = "load_results"
    series_metrics = frozenset({"rps", "error_rate"})  # from a Locust JSON file only
    live_metrics = frozenset[str]()  # nothing followed while it runs
    Settings = LoadResultsSettings

    @classmethod
    def metric_names(cls, settings: LoadResultsSettings, plan: PlanNames) -> MetricPatterns:
        # Endpoints and k6 thresholds are named in the results file, only read at run time.
        stats = ["requests", "rps", "errors", "error_rate", *(f"latency.{f}" for f in LATENCY_FIELDS)]
        names = [*stats, "duration", "checks.pass_rate", "thresholds.*.ok", "thresholds.ok"]
        names += [f"endpoint.*.{figure}" for figure in stats] if settings.endpoints else []
        names += ["command.duration", "command.exit_code"] if settings.command is not None else []
        return names

    def run(self, settings: LoadResultsSettings, ctx: CheckContext) -> CheckOutcome:
        return _Run(settings, ctx).run()


class _Run:
    """One execution of the check."""

    def __init__(self, settings: LoadResultsSettings, ctx: CheckContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.command = CommandRun(
            settings, ctx, noun="load-test", reports="results", name="load-test", dimension="performance"
        )
        self.cwd = self.command.cwd
        self.pattern = ctx.expand(settings.file)
        self.notes: list[str] = []
        self.parts: list[str] = []  # the outcome's message

    def run(self) -> CheckOutcome:
        failed = self.command.run([self.pattern], announce=True)
        if failed is not None:
            return failed
        exit_code = self.command.exit_code
        if self.command.summary is not None:
            self.parts.append(self.command.summary)
        if exit_code not in (None, 0):
            self.notes.append(
                f"the command exited {exit_code}; its results were still read (k6 exits 99 "
                "when thresholds fail, Locust 1 when a request failed); gate on command.exit_code "
                "to require a clean exit"
            )
        found = self._results_file()
        if isinstance(found, str):
            return self._error(found)
        display = self.command.display(found)
        self.ctx.progress(f"reading {display}")
        try:
            data = read_bounded(found, what(self.settings.format), max_bytes=MAX_FILE_BYTES)
        except InputFileError as error:
            return self._error(str(error))
        # Stored before parsing: a file we refuse is evidence too.
        artifact = self.ctx.store_artifact(
            data, name=self.command.artifact_name(found), media_type=_media_type(found, data)
        )
        try:
            summary = parse_results_data(data, str(found), self.settings.format)
        except InputFileError as error:
            return self._error(str(error))
        self._record(summary, display, artifact)
        return CheckOutcome("completed", "; ".join(self.parts), [*self.notes, *_threshold_details(summary)])

    # -- the results file --------------------------------------------------------------------

    def _results_file(self) -> Path | str:
        """The one results file this run counts, or why there is none."""
        found = self.command.find([self.pattern], "results")
        if found.stale_note is not None:
            self.notes.append(found.stale_note)
        fresh = found.fresh
        if not fresh:
            if not self.command.ran:
                return f"no results file: nothing matches {self.pattern} in {self.cwd}"
            return f"the command wrote no results file: nothing new matches {self.pattern} in {self.cwd}"
        if len(fresh) > 1:
            names = ", ".join(self.command.display(path) for path in fresh[:_LISTED_FILES])
            more = f" and {len(fresh) - _LISTED_FILES} more" if len(fresh) > _LISTED_FILES else ""
            return (
                f"{len(fresh)} results files match {self.pattern}: {names}{more}; "
                "results of different runs cannot be added up, so make `file` match exactly one"
            )
        return fresh[0]

    # -- metrics ------------------------------------------------------------------------------

    def _record(self, summary: LoadSummary, display: str, artifact: ArtifactRef) -> None:
        self.notes.extend(summary.notes)
        source = f"{display} ({_FORMAT_NAMES[summary.format]})"
        if self.command.text:
            source += f" written by `{self.command.text}`"
        if summary.window is not None:
            self.command.window = summary.window  # the load test's own span
        self._stats("", summary.total, source, summary.latency_note, artifact)
        if summary.duration is not None:
            self.command.record("duration", summary.duration, "seconds", source, artifact)
        if summary.checks_pass_rate is not None:
            self.command.record(
                "checks.pass_rate", summary.checks_pass_rate, "ratio", source, artifact, "reliability"
            )
        self._thresholds(summary, source, artifact)
        if self.settings.endpoints:
            for endpoint in summary.endpoints:
                labels = {"endpoint": endpoint.name}
                if endpoint.method:
                    labels["method"] = endpoint.method
                prefix = f"endpoint.{endpoint.key}."
                self._stats(prefix, endpoint.stats, source, summary.latency_note, artifact, labels)
        if summary.per_second:
            self.ctx.record_series(
                "rps",
                "per_second",
                [(second.second, float(second.requests)) for second in summary.per_second],
            )
            self.ctx.record_series(
                "error_rate",
                "ratio",
                [(s.second, s.failures / s.requests) for s in summary.per_second if s.requests > 0],
            )
        self.parts.append(_describe(summary, display))

    def _stats(
        self,
        prefix: str,
        stats: Stats,
        source: str,
        latency_note: str,
        artifact: ArtifactRef,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if stats.requests is not None:
            self.command.record(f"{prefix}requests", stats.requests, "count", source, artifact, labels=labels)
        if stats.rps is not None:
            self.command.record(f"{prefix}rps", stats.rps, "per_second", source, artifact, labels=labels)
        if stats.errors is not None:
            self.command.record(
                f"{prefix}errors", stats.errors, "count", source, artifact, "reliability", labels
            )
        if stats.error_rate is not None:
            self.command.record(
                f"{prefix}error_rate", stats.error_rate, "ratio", source, artifact, "reliability", labels
            )
        latency_source = f"{source}; {latency_note}" if latency_note else source
        for field_name, seconds in stats.latency.items():
            self.command.record(
                f"{prefix}latency.{field_name}", seconds, "seconds", latency_source, artifact, labels=labels
            )

    def _thresholds(self, summary: LoadSummary, source: str, artifact: ArtifactRef) -> None:
        if not summary.thresholds:
            return
        by_key: dict[str, list[tuple[str, bool, bool, str]]] = {}
        for result in summary.thresholds:
            by_key.setdefault(result.key, []).append(
                (result.expression, result.ok, result.reliability, result.metric)
            )
        for key, results in by_key.items():
            held = all(ok for _, ok, _, _ in results)
            dimension = "reliability" if any(reliable for _, _, reliable, _ in results) else "performance"
            labels = {"k6_metric": results[0][3], "thresholds": "; ".join(expr for expr, _, _, _ in results)}
            self.command.record(
                f"thresholds.{key}.ok", 1 if held else 0, "number", source, artifact, dimension, labels
            )
        every = all(result.ok for result in summary.thresholds)
        self.command.record("thresholds.ok", 1 if every else 0, "number", source, artifact)

    # -- helpers ------------------------------------------------------------------------------

    def _error(self, message: str) -> CheckOutcome:
        details = list(self.notes)
        if self.command.output_tail:
            details.append("last output of the command: " + " ⏎ ".join(self.command.output_tail))
        if self.parts:
            message += " (" + "; ".join(self.parts) + ")"
        return CheckOutcome("error", message, details)


def _media_type(path: Path, data: bytes) -> str:
    if path.suffix.lower() == ".csv":
        return "text/csv"
    return "application/json" if data.lstrip()[:1] in (b"{", b"[") else "text/plain"


def _describe(summary: LoadSummary, display: str) -> str:
    total = summary.total
    figures: list[str] = []
    if total.requests is not None:
        figures.append(f"{total.requests} requests")
    if total.error_rate is not None:
        figures.append(f"{format_value(total.error_rate, 'ratio')} errors")
    if total.latency.p95 is not None:
        figures.append(f"p95 {format_value(total.latency.p95, 'seconds')}")
    if total.rps is not None:
        figures.append(format_value(total.rps, "per_second"))
    if summary.thresholds:
        held = sum(1 for result in summary.thresholds if result.ok)
        figures.append(f"k6 thresholds: {held} of {len(summary.thresholds)} held")
    text = f"{_FORMAT_NAMES[summary.format]} {display}"
    return f"{text}: {', '.join(figures)}" if figures else f"{text}: no request figures"


def _threshold_details(summary: LoadSummary) -> list[str]:
    failed = [result for result in summary.thresholds if not result.ok]
    details = [
        f"k6 threshold failed: {result.metric} {result.expression}" for result in failed[:_LISTED_THRESHOLDS]
    ]
    if len(failed) > _LISTED_THRESHOLDS:
        details.append(f"... and {len(failed) - _LISTED_THRESHOLDS} more failed k6 thresholds")
    return details
