"""The `chaostoolkit` check kind: run a Chaos Toolkit experiment, or ingest its journal, as evidence.

`load_experiment` / `parse_experiment` check an experiment file against typed models with
located errors; `parse_journal` / `parse_journal_data` reduce a journal to a `JournalSummary`.
Both are usable without a check context. See docs/chaostoolkit.md.
"""

from gonogo.checks.chaostoolkit.check import ChaosToolkitCheck
from gonogo.checks.chaostoolkit.experiment import Experiment, load_experiment, parse_experiment
from gonogo.checks.chaostoolkit.journal import (
    ActivityRun,
    JournalSummary,
    SteadyState,
    parse_journal,
    parse_journal_data,
)
from gonogo.checks.chaostoolkit.settings import ChaosToolkitSettings, RollbackStrategy

__all__ = [
    "ActivityRun",
    "ChaosToolkitCheck",
    "ChaosToolkitSettings",
    "Experiment",
    "JournalSummary",
    "RollbackStrategy",
    "SteadyState",
    "load_experiment",
    "parse_experiment",
    "parse_journal",
    "parse_journal_data",
]
