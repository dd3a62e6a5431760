"""The `security` check kind (orchestration; being built, see issue 9)."""

from __future__ import annotations

__all__ = ["SecurityCheck"]

from gonogo.checks.base import CheckContext, CheckKind, CheckOutcome
from gonogo.checks.security.settings import SecuritySettings


class SecurityCheck(CheckKind[SecuritySettings]):
    kind = "security"
    Settings = SecuritySettings
    series_metrics = frozenset[str]()

    def run(self, settings: SecuritySettings, ctx: CheckContext) -> CheckOutcome:
        return CheckOutcome("error", "the security check is not built yet")
