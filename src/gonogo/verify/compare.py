"""Comparing a report.json field by field with the one the evidence renders now."""

from __future__ import annotations

__all__ = ["FieldDifference", "compare_json"]

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

# A list item is named by the first of these it has, so a difference reads
# `metrics[12] unit.pass_rate value` rather than `metrics[12].value`.
_ITEM_LABELS = ("full_name", "metric", "role", "name")


@dataclass(frozen=True)
class FieldDifference:
    where: str  # e.g. "metrics[12] unit.pass_rate value", "verdict.score"
    kind: Literal["value", "missing", "extra", "length"]
    in_report: Any
    in_evidence: Any

    def describe(self) -> str:
        if self.kind == "missing":
            return f"{self.where} is missing (the evidence gives {_shown(self.in_evidence)})"
        if self.kind == "extra":
            return f"{self.where} is not in what the evidence gives (the report has {_shown(self.in_report)})"
        if self.kind == "length":
            return f"{self.where} lists {self.in_report} items, the evidence {self.in_evidence}"
        return f"{self.where} {_shown(self.in_report)}, the evidence says {_shown(self.in_evidence)}"


def compare_json(report: Any, evidence: Any) -> list[FieldDifference]:
    """Every difference between the report's value and the evidence's, by field path."""
    return _compare(report, evidence, "", ".")


def _compare(report: Any, evidence: Any, where: str, separator: str) -> list[FieldDifference]:
    """`separator`: what goes before the next key (a space after a labelled list item)."""
    if isinstance(report, dict) and isinstance(evidence, dict):
        found: list[FieldDifference] = []
        for key, value in evidence.items():
            inner = f"{where}{separator}{key}" if where else str(key)
            if key not in report:
                found.append(FieldDifference(inner, "missing", None, value))
            else:
                found += _compare(report[key], value, inner, ".")
        for key, value in report.items():
            if key not in evidence:
                found.append(
                    FieldDifference(f"{where}{separator}{key}" if where else str(key), "extra", value, None)
                )
        return found
    if isinstance(report, list) and isinstance(evidence, list):
        found = []
        if len(report) != len(evidence):
            found.append(FieldDifference(where, "length", len(report), len(evidence)))
        for index, (mine, theirs) in enumerate(zip(report, evidence, strict=False)):
            label = _label(theirs)
            found += _compare(mine, theirs, f"{where}[{index}]{label}", " " if label else ".")
        return found
    if _same(report, evidence):
        return []
    return [FieldDifference(where, "value", report, evidence)]


def _label(item: Any) -> str:
    if isinstance(item, dict):
        for key in _ITEM_LABELS:
            if isinstance(item.get(key), str):
                return f" {item[key]}"
    return ""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b) and type(a) is type(b)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "…"
