"""Gates, score and decision: from measured metrics to GO or NO-GO with reasons."""

from gonogo.verdict.decision import decide, dimension_scores, overall_score
from gonogo.verdict.gates import describe_gate, evaluate_gates

__all__ = ["decide", "describe_gate", "dimension_scores", "evaluate_gates", "overall_score"]
