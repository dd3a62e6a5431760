"""The `gonogo` command. Exit codes: 0 GO, 1 NO-GO, 2 bad plan or usage, 3 run not completed,
4 GO pending the sign-offs the plan requires. `gonogo verify`: 0 verified, 1 a mismatch.
`gonogo compare`: 0 the same, 1 a functional difference or a slower latency."""

from __future__ import annotations

__all__ = ["main"]

import difflib
import hashlib
import json
import os
import shlex
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gonogo import __version__
from gonogo.errors import GonogoError, PlanError, RunFailed, UserError
from gonogo.units import format_value

# The store (SQLAlchemy), the runner (system, faults, check kinds), the reports and the plan
# loader are imported inside the commands that use them: `gonogo --help` and `gonogo validate`
# would otherwise pay for all of them (0.6 s) on every call.
if TYPE_CHECKING:
    from gonogo.evidence import ArtifactRecord, RunRecord, Store
    from gonogo.plan import Plan
    from gonogo.report import RunReport

# The names of gonogo.report.FORMATS (tests/cli/test_plan_commands.py holds them equal).
REPORT_FORMATS = ("json", "md", "junit", "html")

EXIT_GO, EXIT_NO_GO, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
EXIT_PENDING_SIGNOFF = 4  # GO, but a sign-off the plan requires is missing: not released yet
EXIT_VERIFIED, EXIT_MISMATCH = 0, 1  # gonogo verify
EXIT_SAME, EXIT_DIFFERENT = 0, 1  # gonogo compare: 1 = a functional difference or a slower latency


class _Console(Console):
    """A console that goes quiet when its reader goes away (`gonogo run | head`).

    rich's default exits 1 there, which reads as NO-GO and leaves the run unfinished; the
    run goes on instead, stores its evidence and exits with its verdict's code.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _discard(self.file)


def _discard(stream: object) -> None:
    """Point a closed pipe's file descriptor at /dev/null, so that later writes and the
    interpreter's last flush succeed silently."""
    try:
        fileno = stream.fileno()  # type: ignore[attr-defined]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fileno)
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


# Logs in CI are read in wide viewers: do not wrap them at 80 columns.
console = _Console(highlight=False, width=None if sys.stdout.isatty() else 160)
errors = _Console(stderr=True, highlight=False, soft_wrap=True)

PLAN_OPTION = click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The plan whose evidence to read (default: ./gonogo.yaml if present).",
)
OUTPUT_OPTION = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
STORE_OPTION = click.option(
    "--store",
    "store_url",
    envvar="GONOGO_STORE",
    default=None,
    help="Evidence store URL: sqlite:///path.db or postgresql://user@host/db "
    "(default: sqlite in .gonogo/ beside the plan; env GONOGO_STORE).",
)


def _state_dir(plan_path: Path | None) -> Path:
    if plan_path is not None:
        base = plan_path if plan_path.is_dir() else plan_path.parent
    else:
        base = Path.cwd()
    return base.resolve() / ".gonogo"


def _store_url(store_url: str | None, state_dir: Path) -> str:
    return store_url or f"sqlite:///{state_dir / 'gonogo.db'}"


def _open_store(
    store_url: str | None, plan_path: Path | None, *, create: bool = False
) -> tuple[Store, str, Path]:
    """The evidence store: `--store`, else `.gonogo/` beside the plan (or here). Only a run
    creates the default one; reading where there is none says so instead of making one."""
    from gonogo.evidence import Store

    state_dir = _state_dir(plan_path)
    url = _store_url(store_url, state_dir)
    if url.startswith("sqlite:///") and not store_url:
        if not create and not (state_dir / "gonogo.db").exists():
            where = "beside the plan" if plan_path is not None else "in this folder (no gonogo.yaml here)"
            raise UserError(
                f"no evidence store {where}: {state_dir / 'gonogo.db'} does not exist; run `gonogo run` "
                "first, or point at the plan with --plan PATH or at a store with --store URL"
            )
        state_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(url, artifacts_dir=state_dir / "artifacts")
    return store, url, state_dir


def _default_plan(plan_path: Path | None) -> Path | None:
    if plan_path is not None:
        return plan_path
    candidate = Path("gonogo.yaml")
    return candidate if candidate.exists() else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gonogo")
def cli() -> None:
    """gonogo: is this service ready for production? GO or NO-GO, with the evidence."""


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing gonogo.yaml.")
def init(directory: Path, force: bool) -> None:
    """Write a commented starter gonogo.yaml into DIRECTORY."""
    target = directory / "gonogo.yaml"
    if target.exists() and not force:
        raise UserError(f"{target} already exists; use --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    starter = files("gonogo.plan").joinpath("starter.yaml").read_text(encoding="utf-8")
    target.write_text(starter.replace("{project}", directory.resolve().name), encoding="utf-8")
    console.print(f"wrote {target}; edit it, then run [bold]gonogo validate[/] and [bold]gonogo run[/]")


@cli.command()
@click.argument("plan", type=click.Path(path_type=Path), default="gonogo.yaml")
def validate(plan: Path) -> None:
    """Check a plan without running it (exit 2 on any error)."""
    from gonogo import plugins
    from gonogo.plan import load_plan, service_order

    loaded = load_plan(plan)
    console.print(f"[green]✓[/] {loaded.path} is a valid plan: [bold]{loaded.name}[/]")
    services = service_order(dict(loaded.system.services))
    if services:
        console.print(f"  services (start order): {', '.join(services)}")
    if loaded.system.base_url:
        console.print(f"  base URL: {loaded.system.base_url}")
    for name, spec in loaded.checks.items():
        console.print(f"  check {name}: {spec.kind}")
        described = plugins.load_kind(spec.kind).describe(spec.settings)
        if described:
            console.print(f"    {escape(described)}", soft_wrap=True)
    console.print(f"  {len(loaded.gates)} gates, minimum score {loaded.score.minimum:g}")
    if loaded.has_relative_gates:
        policy = loaded.baseline
        console.print(
            f"  relative gates compare with the run pinned with `gonogo baseline set`, else the last "
            f"{policy.runs} passing run(s) (confidence {policy.confidence:.0%}; docs/baselines.md)",
            soft_wrap=True,
        )
    for gate in loaded.gates:
        notes: list[str] = [gate.severity] if gate.severity != "must" else []
        notes += ["abort_on_fail"] if gate.abort_on_fail else []
        if gate.metric in loaded.default_gate_metrics:
            check = gate.metric.split(".", 1)[0]
            if check == "service":
                notes.append("every service's own, as no gate names a service metric")
            elif check == "history":
                notes.append("the default for a plan with per-test outcomes, as no gate names history")
            else:
                notes.append(f"the {loaded.checks[check].kind} kind's own, as no gate names {check}")
        said = f" ({'; '.join(notes)})" if notes else ""
        console.print(f"    {escape(gate.metric)} {escape(gate.expr.text)}{escape(said)}", soft_wrap=True)


_ISOLATED = "GONOGO_ISOLATED_NETWORK"


def _reexec_in_network_namespace() -> NoReturn:
    """Start this same command again inside a new network namespace (it never returns)."""
    from gonogo.faults.network import run_in_new_network_namespace

    argv = run_in_new_network_namespace([sys.executable, "-m", "gonogo", *sys.argv[1:]])
    probe = subprocess.run(
        [*argv[: argv.index("--")], "--", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        why = probe.stderr.strip() or f"exit {probe.returncode}"
        raise UserError(f"--isolated-network: this machine does not allow a new network namespace ({why})")
    os.environ[_ISOLATED] = "1"
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@cli.command()
@click.argument("plan", type=click.Path(path_type=Path), default="gonogo.yaml")
@STORE_OPTION
@click.option("--keep-scratch", is_flag=True, help="Keep the services' data directory ({run_dir}).")
@click.option(
    "--isolated-network",
    is_flag=True,
    help="Run in a new network namespace with only loopback: packet-loss and partition faults "
    "(iptables) then work without touching the host's firewall.",
)
def run(plan: Path, store_url: str | None, keep_scratch: bool, isolated_network: bool) -> None:
    """Run the readiness run: start the system, run the checks, print gates and verdict."""
    from gonogo.plan import load_plan
    from gonogo.report import print_summary
    from gonogo.run import execute
    from gonogo.run.progress import ProgressPrinter

    loaded = load_plan(plan)
    if isolated_network and os.environ.get(_ISOLATED) != "1":
        _reexec_in_network_namespace()
    store, url, state_dir = _open_store(store_url, loaded.path, create=True)
    with store, ProgressPrinter(console) as progress:
        store.mark_stale_runs_aborted()
        outcome = execute(
            loaded,
            store,
            store_url=url,
            state_dir=state_dir,
            progress=progress,
            keep_scratch=keep_scratch,
        )
    print_summary(outcome.report, console)
    console.print(f"reports: {outcome.reports['json'].parent}/")
    for name, path in outcome.reports.items():
        console.print(f"  {name:6} {path}")
    if outcome.status != "completed":
        sys.exit(EXIT_INCOMPLETE)
    sys.exit(_verdict_exit_code(outcome.report))


def _verdict_exit_code(report: RunReport) -> int:
    if report.verdict is None or report.verdict.decision != "GO":
        return EXIT_NO_GO
    return EXIT_PENDING_SIGNOFF if report.signoff is not None and not report.signoff.complete else EXIT_GO


@cli.command()
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@PLAN_OPTION
@STORE_OPTION
def history(limit: int, plan_path: Path | None, store_url: str | None) -> None:
    """List earlier runs, newest first."""
    store, _, _ = _open_store(store_url, _default_plan(plan_path))
    with store:
        store.mark_stale_runs_aborted()
        runs = store.list_runs(limit)
        verdicts = {record.id: _history_verdict(store, record) for record in runs}
    if not runs:
        console.print("no runs yet; start one with [bold]gonogo run[/]")
        return
    table = Table("run", "plan", "started (UTC)", "duration", "status", "verdict")
    for record in runs:
        duration = (
            format_value((record.ended_at - record.started_at).total_seconds(), "seconds")
            if record.ended_at
            else "—"
        )
        table.add_row(
            record.id,
            record.name,
            f"{record.started_at:%Y-%m-%d %H:%M:%S}",
            duration,
            record.status,
            verdicts[record.id],
        )
    console.print(table)


def _history_verdict(store: Store, record: RunRecord) -> str:
    """An interrupted or incomplete run's NO-GO says only that it did not finish: show that.
    A GO that waits for sign-offs says so (only those runs are read whole, for their digest)."""
    from gonogo.report import collect

    if record.status == "aborted":
        return "interrupted"
    if record.status == "failed":
        return "not completed"
    if record.decision == "GO":
        verdict = store.verdict(record.id)
        if verdict is not None and verdict.signoff is not None:
            return collect(store, record.id).outcome
    return record.decision or "—"


@cli.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@PLAN_OPTION
@STORE_OPTION
def show(run_ref: str, plan_path: Path | None, store_url: str | None) -> None:
    """Show one run: its status, checks, metrics, gates and verdict."""
    from gonogo.report import collect, print_summary

    store, _, _ = _open_store(store_url, _default_plan(plan_path))
    with store:
        store.mark_stale_runs_aborted()
        report = collect(store, store.resolve_run(run_ref).id)
    record = report.run
    console.print(
        f"[bold]run {record.id}[/]  plan {escape(record.name)}  status [bold]{record.status}[/]"
        f"  started {record.started_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if record.message:
        console.print(f"  {escape(record.message)}")
    checks = Table("check", "kind", "status", "message", title="Checks", title_justify="left")
    for check in report.checks:
        checks.add_row(check.name, check.kind, check.status, escape(check.message))
    console.print(checks)
    metrics = Table("metric", "value", "dimension", title="Metrics", title_justify="left")
    metrics.add_column("source", no_wrap=True, overflow="ellipsis", max_width=70)
    for metric in report.metrics:
        metrics.add_row(
            metric.full_name, format_value(metric.value, metric.unit), metric.dimension, escape(metric.source)
        )
    console.print(metrics)
    if report.resources:
        resources = Table(
            "service", "resource", "samples", "min", "mean", "max", "last",
            title="Resources of the services", title_justify="left",
        )  # fmt: skip
        for item in report.resources:
            shown = [format_value(v, item.unit) for v in (item.minimum, item.mean, item.maximum, item.last)]
            resources.add_row(item.labels.get("service", "—"), item.name, str(item.samples), *shown)
        console.print(resources)
    if report.artifacts:
        console.print(_artifact_table(report))
    if report.verdict is not None:
        print_summary(report, console)


def _artifact_table(report: RunReport) -> Table:
    table = Table("check", "artifact", "size", "type", "sha256", title="Artifacts", title_justify="left")
    for artifact in report.artifacts:
        table.add_row(
            artifact.check or "(run)",
            escape(artifact.name),
            format_value(artifact.size, "bytes"),
            artifact.media_type,
            artifact.sha256[:12],
        )
    return table


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("name", required=False)
@click.option("--check", "check_name", default=None, help="The check that stored NAME, when several did.")
@OUTPUT_OPTION
@PLAN_OPTION
@STORE_OPTION
def artifacts(
    run_ref: str,
    name: str | None,
    check_name: str | None,
    output: Path | None,
    plan_path: Path | None,
    store_url: str | None,
) -> None:
    """List the artifacts of RUN, or write the one called NAME out of the store.

    NAME is an artifact's name as listed (or the start of its sha256); --check picks among
    artifacts of the same name stored by different checks.
    """
    from gonogo.report import collect

    store, _, _ = _open_store(store_url, _default_plan(plan_path))
    with store:
        report = collect(store, store.resolve_run(run_ref).id)
        if name is None:
            console.print(_artifact_table(report))
            console.print(f"write one out: gonogo artifacts {report.run.id} NAME [--check CHECK] -o FILE")
            return
        artifact = _pick_artifact(report, name, check_name)
        path = store.artifact_path(artifact.sha256)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise GonogoError(
            f"artifact {name!r} of run {report.run.id} is recorded, but its file {path} cannot be read "
            f"({error.strerror or error}): the evidence was removed or damaged"
        ) from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != artifact.sha256:
        # Never hand out altered evidence as if it were what was recorded.
        raise GonogoError(
            f"artifact {name!r} of run {report.run.id} was altered: its file {path} now hashes to "
            f"{actual[:12]}…, not the recorded {artifact.sha256[:12]}…; nothing written "
            "(`gonogo verify` checks every artifact)"
        )
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        output.write_bytes(content)
        console.print(
            f"wrote {output} ({format_value(len(content), 'bytes')}, sha256 {artifact.sha256[:12]})"
        )


def _pick_artifact(report: RunReport, name: str, check_name: str | None) -> ArtifactRecord:
    candidates = [a for a in report.artifacts if check_name is None or (a.check or "") == check_name]
    found = [a for a in candidates if a.name == name]
    if not found and len(name) >= 6 and all(c in "0123456789abcdef" for c in name):
        found = list({a.sha256: a for a in candidates if a.sha256.startswith(name)}.values())
    if len(found) == 1:
        return found[0]
    where = f" of check {check_name!r}" if check_name is not None else ""
    if not found:
        names = sorted({a.name for a in candidates})
        close = difflib.get_close_matches(name, names, n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else f" (list them with `gonogo artifacts {report.run.id}`)"
        )
        raise UserError(f"run {report.run.id} has no artifact {name!r}{where}{hint}")
    # The run's own artifacts (service logs) belong to no check: `--check ''` picks them.
    checks = ", ".join(f"--check {shlex.quote(a.check or '')}" for a in found)
    raise UserError(f"several checks stored an artifact {name!r}: pick one with {checks}")


@cli.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@click.option("--format", "format_name", type=click.Choice(["terminal", *REPORT_FORMATS]), default="terminal")
@OUTPUT_OPTION
@PLAN_OPTION
@STORE_OPTION
def report(
    run_ref: str, format_name: str, output: Path | None, plan_path: Path | None, store_url: str | None
) -> None:
    """Render the report of a run from its stored evidence.

    A file written with -o is recorded in the store (its sha256), so that `gonogo verify FILE`
    can tell it from an edited copy.
    """
    from gonogo.report import collect, print_summary, render
    from gonogo.report.recorded import record_report_file

    store, _, _ = _open_store(store_url, _default_plan(plan_path))
    with store:
        document = collect(store, store.resolve_run(run_ref).id)
        if output is not None and format_name != "terminal":
            output.write_text(render(document, format_name), encoding="utf-8")
            record_report_file(store, document.run.id, format_name, output)
            console.print(f"wrote {output}")
            return
    if format_name == "terminal":
        print_summary(document, console)
        return
    sys.stdout.write(render(document, format_name))


def _fraction(_: click.Context, __: click.Parameter, value: str) -> float:
    """`5%` or `0.05` → 0.05."""
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(
            f"expected a percentage such as 5% (or a fraction such as 0.05), not {value!r}"
        ) from None


@cli.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="[RUN_B]", default="latest")
@click.option(
    "--format", "format_name", type=click.Choice(["terminal", "md", "json", "html"]), default="terminal"
)
@OUTPUT_OPTION
@click.option(
    "--tolerance",
    default="5%",
    show_default=True,
    callback=_fraction,
    help="A latency shift smaller than this share of A's median is no change, however significant.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 0.999),
    default=0.95,
    show_default=True,
    help="The confidence level of the shift's interval (and 1 - the p-value's threshold).",
)
@PLAN_OPTION
@STORE_OPTION
def compare(
    run_a: str,
    run_b: str,
    format_name: str,
    output: Path | None,
    tolerance: float,
    confidence: float,
    plan_path: Path | None,
    store_url: str | None,
) -> None:
    """Compare run RUN_B (default: latest) with run RUN_A (the reference): functional parity of
    the journeys and tests, latency shifts with their confidence intervals, metrics, gates and
    verdicts.

    Exit 0 when nothing differs functionally and no latency is slower; 1 otherwise (docs/compare.md).
    """
    from gonogo.report.comparison import compare_runs
    from gonogo.report.comparison_render import COMPARE_FORMATS, print_comparison

    store, _, _ = _open_store(store_url, _default_plan(plan_path))
    with store:
        store.mark_stale_runs_aborted()
        comparison = compare_runs(store, run_a, run_b, tolerance=tolerance, confidence=confidence)
    if format_name == "terminal":
        if output is not None:
            raise UserError("--output needs --format md, json or html (the terminal view is printed)")
        print_comparison(comparison, console)
    else:
        text = COMPARE_FORMATS[format_name](comparison)
        if output is not None:
            output.write_text(text, encoding="utf-8")
            console.print(f"wrote {output}")
        else:
            sys.stdout.write(text)
    sys.exit(EXIT_DIFFERENT if comparison.regressed else EXIT_SAME)


@cli.group()
def baseline() -> None:
    """Pin, show or clear the run that relative gates ("<= +10% baseline") compare with.

    A pinned run wins; without one, a run compares with the last N passing runs of its plan
    (`baseline: {runs: N}` in the plan, 5 by default). See docs/baselines.md.
    """


@baseline.command("set")
@click.argument("run_ref", metavar="RUN")
@PLAN_OPTION
@STORE_OPTION
def baseline_set(run_ref: str, plan_path: Path | None, store_url: str | None) -> None:
    """Pin RUN (an id, a unique prefix or 'latest') as the baseline of its plan.

    Refused for a run of another plan, one still running or not completed, or one without a
    verdict. Every setting is kept: `gonogo baseline show` lists them.
    """
    import getpass

    loaded = _baseline_plan(plan_path)
    store, _, _ = _open_store(store_url, loaded.path)
    with store:
        store.mark_stale_runs_aborted()
        run = store.resolve_run(run_ref)
        store.set_baseline(loaded.name, run.id, set_by=getpass.getuser())
    console.print(
        f"baseline of plan [bold]{escape(loaded.name)}[/]: run {run.id} ({run.decision}, started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC); the next runs' relative gates compare with it"
    )
    if run.decision != "GO":
        console.print(f"[yellow]note:[/] run {run.id} was {run.decision}: its figures become the reference")
    if not loaded.has_relative_gates:
        console.print('[yellow]note:[/] the plan has no relative gate (e.g. "<= +10% baseline") yet')


@baseline.command("show")
@PLAN_OPTION
@STORE_OPTION
def baseline_show(plan_path: Path | None, store_url: str | None) -> None:
    """Show what the next run of the plan compares with, and the history of its settings."""
    from gonogo.evidence.baselines import choose_baseline

    loaded = _baseline_plan(plan_path)
    store, _, _ = _open_store(store_url, loaded.path)
    with store:
        store.mark_stale_runs_aborted()
        choice = choose_baseline(store, loaded.name, loaded.baseline.runs)
        runs = [store.resolve_run(run_id) for run_id in choice.runs]
        history = store.baseline_history(loaded.name, limit=10)
    console.print(f"plan [bold]{escape(loaded.name)}[/]: the next run compares with {escape(choice.detail)}")
    if runs:
        table = Table(
            "run", "started (UTC)", "status", "verdict", title="Baseline runs", title_justify="left"
        )
        for record in runs:
            started = f"{record.started_at:%Y-%m-%d %H:%M:%S}"
            table.add_row(record.id, started, record.status, record.decision or "—")
        console.print(table)
    if not loaded.has_relative_gates:
        console.print(
            '[yellow]note:[/] the plan has no relative gate (e.g. "<= +10% baseline"): nothing uses it'
        )
    if history:
        table = Table("when (UTC)", "by", "setting", title="Settings, newest first", title_justify="left")
        for setting in history:
            what = f"pinned run {setting.run_id}" if setting.run_id else "cleared"
            table.add_row(f"{setting.set_at:%Y-%m-%d %H:%M:%S}", escape(setting.set_by), what)
        console.print(table)


@baseline.command("clear")
@PLAN_OPTION
@STORE_OPTION
def baseline_clear(plan_path: Path | None, store_url: str | None) -> None:
    """Unpin the plan's baseline: runs compare with the last N passing runs again."""
    import getpass

    loaded = _baseline_plan(plan_path)
    store, _, _ = _open_store(store_url, loaded.path)
    with store:
        previous = store.baseline_setting(loaded.name)
        store.clear_baseline(loaded.name, set_by=getpass.getuser())
    was = (
        f" (was run {previous.run_id})" if previous is not None and previous.run_id else " (none was pinned)"
    )
    console.print(
        f"baseline of plan [bold]{escape(loaded.name)}[/] cleared{was}; the next runs compare with the last "
        f"{loaded.baseline.runs} passing run(s)"
    )


def _baseline_plan(plan_path: Path | None) -> Plan:
    """The plan whose baseline is meant: --plan, else ./gonogo.yaml."""
    from gonogo.plan import load_plan

    found = _default_plan(plan_path)
    if found is None:
        raise UserError(
            "no plan given and no gonogo.yaml in this folder: a baseline belongs to a plan; "
            "give it with --plan PATH"
        )
    return load_plan(found)


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--role", required=True, help="The role you sign off as; one the run's plan requires.")
@click.option(
    "--confidence",
    type=click.IntRange(0, 10),
    required=True,
    help="How confident you are that it is ready, 0-10; counts from the plan's min_confidence.",
)
@click.option("--note", default="", help="What you looked at, or why.")
@PLAN_OPTION
@STORE_OPTION
def approve(
    run_ref: str, role: str, confidence: int, note: str, plan_path: Path | None, store_url: str | None
) -> None:
    """Sign off RUN's GO in a role its plan requires (signoff: in the plan).

    Records who (OS user, git identity of the plan's folder), when, and the evidence digest
    of what was signed; the run's reports are written again to show it. A NO-GO run, or a role
    the plan does not require, is refused (exit 2).
    """
    from gonogo.approval import approve as approve_run
    from gonogo.report import collect
    from gonogo.report.recorded import write_recorded_reports
    from gonogo.report.terminal import signoff_lines

    store, _, state_dir = _open_store(store_url, _default_plan(plan_path))
    with store:
        run_id = store.resolve_run(run_ref).id
        signoff = approve_run(store, collect(store, run_id), role=role, confidence=confidence, note=note)
        report = collect(store, run_id)
        run_dir = state_dir / "runs" / run_id
        if run_dir.is_dir():
            write_recorded_reports(store, report, run_dir)
    console.print(f"recorded: {escape(role)} sign-off by {escape(signoff.user)}, confidence {confidence}")
    if report.signoff is not None and signoff not in report.signoff.counted.values():
        why = dict(report.signoff.not_counted).get(signoff, "a later sign-off counts")
        console.print(f"[yellow]it does not count:[/] {escape(why)}")
    console.print(f"run {run_id}: [bold]{escape(report.outcome)}[/]")
    for line in signoff_lines(report):
        console.print(line)


@cli.command()
@click.argument("target", metavar="RUN|REPORT", default="latest")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The plan file to check against the plan the run stored (default: the plan's path at "
    "the run); its store is read unless --store is given (default store: ./gonogo.yaml's, else "
    "the report's).",
)
@STORE_OPTION
def verify(target: str, plan_path: Path | None, store_url: str | None) -> None:
    """Recompute a run's gates, score and verdict from its evidence; check its artifacts, plan
    file and reports (exit 1 naming each mismatch, 0 when everything matches).

    RUN (an id, a prefix or 'latest') checks the reports in the run's folder; REPORT (a
    report.json, summary.md, gates.junit.xml or report.html) checks that file.
    """
    from gonogo.report.terminal import signoff_lines
    from gonogo.verify import verify_report_file, verify_run

    given = Path(target)
    is_file = given.suffix.lower() in (".json", ".md", ".xml", ".html", ".htm") or given.is_file()
    where = _default_plan(plan_path)
    if is_file and where is None and store_url is None and given.is_file():
        where = _plan_of_report(given)
    store, _, state_dir = _open_store(store_url, where)
    with store:
        if is_file:
            if not given.is_file():
                raise UserError(f"{given}: no such report file")
            result = verify_report_file(store, given, plan_path=plan_path)
        else:
            run_id = store.resolve_run(target).id
            result = verify_run(store, run_id, plan_path=plan_path, run_dir=state_dir / "runs" / run_id)
    console.print(f"[bold]run {result.report.run.id}[/] ({escape(result.report.run.name)}): "
                  f"[bold]{escape(result.report.outcome)}[/]")  # fmt: skip
    # One finding per line, never wrapped: they are read in CI logs and searched for.
    for line in result.checked:
        console.print(f"  [green]✓[/] {escape(line)}", soft_wrap=True)
    for line in result.warnings:
        console.print(f"  [yellow]![/] {escape(line)}", soft_wrap=True)
    for line in result.mismatches:
        console.print(f"  [bold red]✗[/] {escape(line)}", soft_wrap=True)
    for line in signoff_lines(result.report):
        console.print(line)
    if result.verified:
        console.print("[green]verified:[/] the verdict, the artifacts and the reports match the evidence")
        sys.exit(EXIT_VERIFIED)
    console.print(f"[bold red]not verified:[/] {len(result.mismatches)} mismatch(es)")
    sys.exit(EXIT_MISMATCH)


def _plan_of_report(report: Path) -> Path | None:
    """Where the store of a report file is, when no plan or store is given: the report in its
    run's folder (`<plan folder>/.gonogo/runs/<run id>/`), or the plan path report.json names."""
    run_dir = report.resolve().parent
    if run_dir.parent.name == "runs" and run_dir.parent.parent.name == ".gonogo":
        return run_dir.parent.parent.parent
    try:
        plan_path = json.loads(report.read_text(encoding="utf-8"))["run"]["plan_path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(plan_path) if isinstance(plan_path, str) else None


@cli.command("mark-aborted", hidden=True)
@click.argument("run_id")
@click.option("--store", "store_url", required=True)
@click.option("--artifacts", type=click.Path(path_type=Path), required=True)
def mark_aborted(run_id: str, store_url: str, artifacts: Path) -> None:
    """Called by the reaper when gonogo died mid-run: close the run as aborted.

    Only runs whose owner process is gone are touched, so a run that did finish keeps
    its status even if this fires late.
    """
    from gonogo.evidence import Store

    with Store.open(store_url, artifacts_dir=artifacts) as store:
        store.mark_stale_runs_aborted()


def _fail(message: str, code: int) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="gonogo", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", EXIT_INCOMPLETE)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_USAGE)
    except PlanError as error:
        errors.print(f"[bold red]the plan has {len(error.issues)} problem(s):[/]")
        for issue in error.issues:
            errors.print(f"  {escape(str(issue))}")
        sys.exit(EXIT_USAGE)
    except UserError as error:
        _fail(str(error), EXIT_USAGE)
    except (RunFailed, GonogoError) as error:
        _fail(str(error), EXIT_INCOMPLETE)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INCOMPLETE)
    except BrokenPipeError:  # the reader of our output went away (`gonogo report ... | head`)
        _discard(sys.stdout)
        sys.exit(EXIT_INCOMPLETE)
    except Exception:  # a bug: exit 3 (never 1, which would read as NO-GO), with the traceback
        errors.print_exception()
        _fail("gonogo failed unexpectedly (a bug; the traceback is above)", EXIT_INCOMPLETE)
