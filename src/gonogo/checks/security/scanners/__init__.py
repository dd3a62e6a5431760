"""Scanners' findings as evidence: SARIF 2.1.0 from any tool, Bandit JSON and pip-audit JSON,
read from the plan's files or produced by running Bandit or pip-audit when installed.

`collect_scanners` gives one `PartResult` per `scanners:` entry of the plan, its part named
`scanners:<label>` (`sarif`, `bandit`, `pip-audit`; a second entry of one kind is `sarif_2`).
Every report read is stored as an artifact (`scanners/<path>`) before it is parsed, so the
evidence is kept even when it cannot be counted. The tally holds `results` (results read),
`suppressed`, `baseline_absent` and `not_failures` (SARIF), `files` (SARIF files read, or
files Bandit scanned), `lines`/`nosec` (Bandit), `dependencies`/`skipped` (pip-audit).

A source that cannot be counted — a glob matching no file, a file that is not the report it
should be, a scanner not installed, failing or unable to reach its service — is *not
measured*, with the reason; never a clean result.
"""

from __future__ import annotations

__all__ = ["collect_scanners"]

from collections.abc import Sequence

from gonogo.checks.base import CheckContext
from gonogo.checks.security.findings import PartResult
from gonogo.checks.security.scanners.bandit import collect_bandit
from gonogo.checks.security.scanners.pip_audit import collect_pip_audit
from gonogo.checks.security.scanners.sarif import collect_sarif
from gonogo.checks.security.settings import ScannerSource
from gonogo.inputs import unique_keys


def collect_scanners(sources: Sequence[ScannerSource], ctx: CheckContext) -> list[PartResult]:
    """Read (or produce, then read) each source's report: one PartResult per source."""
    labels, _ = unique_keys(_kind(source) for source in sources)
    results = []
    for source, label in zip(sources, labels, strict=True):
        part = f"scanners:{label}"
        if source.sarif is not None:
            results.append(collect_sarif(source.sarif, ctx, part))
        elif source.bandit is not None:
            results.append(collect_bandit(source.bandit, ctx, part, label))
        else:
            assert source.pip_audit is not None  # ScannerSource holds exactly one
            results.append(collect_pip_audit(source.pip_audit, ctx, part, label))
    return results


def _kind(source: ScannerSource) -> str:
    if source.sarif is not None:
        return "sarif"
    return "bandit" if source.bandit is not None else "pip-audit"
