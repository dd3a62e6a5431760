"""The readiness run: plan → system → checks → evidence → verdict → reports."""

from gonogo.run.execute import RunOutcome, execute

__all__ = ["RunOutcome", "execute"]
