"""Evaluation: hidden real-mask pixels on the user's cube (model beside the baselines),
scores against the synthetic world's truth."""

from gapfill.evaluate.auto import fill_auto, load_report
from gapfill.evaluate.hidden import (
    EvaluateConfig,
    EvaluateReport,
    TargetResult,
    evaluate,
    markdown,
    method_choice,
    print_report,
    simulate_hidden,
)
from gapfill.evaluate.truth import score_against_truth

__all__ = [
    "fill_auto",
    "load_report",
    "EvaluateConfig",
    "EvaluateReport",
    "TargetResult",
    "evaluate",
    "markdown",
    "method_choice",
    "print_report",
    "simulate_hidden",
    "score_against_truth",
]
