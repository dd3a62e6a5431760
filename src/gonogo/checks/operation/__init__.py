"""The `operation` check kind: deploy, rollback, backup and restore exercised under load."""

from gonogo.checks.operation.check import OperationCheck

__all__ = ["OperationCheck"]
