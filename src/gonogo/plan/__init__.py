"""The plan: what to start, what to check, and what GO means. The only package that knows YAML."""

from gonogo.plan.load import load_plan, parse_plan
from gonogo.plan.model import (
    CheckSpec,
    GateSpec,
    History,
    Plan,
    ReadinessProbe,
    Score,
    Service,
    Signoff,
    SystemSpec,
    service_order,
)

__all__ = [
    "CheckSpec",
    "GateSpec",
    "History",
    "Plan",
    "ReadinessProbe",
    "Score",
    "Service",
    "Signoff",
    "SystemSpec",
    "load_plan",
    "parse_plan",
    "service_order",
]
