"""Gates, score and decision: from measured metrics to GO or NO-GO with reasons."""

from gonogo.verdict.decision import decide, dimension_scores, overall_score
from gonogo.verdict.gates import check_series, describe_gate, evaluate_gates
from gonogo.verdict.signoff import SignoffStatus, outcome, signoff_status

__all__ = [
    "SignoffStatus",
    "check_series",
    "decide",
    "describe_gate",
    "dimension_scores",
    "evaluate_gates",
    "outcome",
    "overall_score",
    "signoff_status",
]
