"""Evaluation: metrics on answers, FR score baselines, reports and a leakage check.

Importing this package loads no torch, matplotlib or wandb; each function imports what it needs.
"""

from depictqa.eval.baselines import pair_choice, pair_scores, rating_baselines, run_baselines
from depictqa.eval.correlation import bradley_terry, correlation, fit_logistic, logistic4, srcc_plcc
from depictqa.eval.voting import load_mos, official_srcc_plcc, official_voting, voting_scores
from depictqa.eval.description import description
from depictqa.eval.leakage import check_leakage
from depictqa.eval.metrics import (
    CONFIDENCE_EDGES,
    confidence,
    identification,
    identification_accuracy,
    identification_score,
    official_multi_score,
    official_single_score,
    rating,
    rating_accuracy,
)
from depictqa.eval.parsing import CATEGORIES, exact_label, parse_choice, parse_labels, register_synonym
from depictqa.eval.records import EvalInputError, load_ground_truth, load_predictions, match
from depictqa.eval.report import log_to_wandb, markdown, write_report
from depictqa.eval.truth import RecordError, gt_choice, gt_label_answer, gt_labels

__all__ = [
    "CATEGORIES", "CONFIDENCE_EDGES", "EvalInputError", "RecordError", "bradley_terry", "check_leakage",
    "confidence", "correlation", "description", "exact_label", "fit_logistic", "gt_choice",
    "gt_label_answer", "gt_labels", "identification", "identification_accuracy", "identification_score",
    "load_ground_truth", "load_mos", "load_predictions", "log_to_wandb", "logistic4", "markdown", "match",
    "official_multi_score", "official_single_score", "official_srcc_plcc", "official_voting", "pair_choice",
    "pair_scores", "parse_choice", "parse_labels", "rating", "rating_accuracy", "rating_baselines",
    "register_synonym", "run_baselines", "srcc_plcc", "voting_scores", "write_report",
]
