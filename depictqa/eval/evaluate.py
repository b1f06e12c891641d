"""Compute named metrics on matched (prediction, ground truth) pairs.

The ``depictqa evaluate`` command (``depictqa/commands/evaluate.py``), the demo and
:mod:`depictqa.eval.report` share this; each metric imports what it needs only when asked for.
"""

from __future__ import annotations

from typing import Any

METRICS = ("identification", "rating", "confidence", "correlation", "description")


def evaluate(pairs: list[tuple[dict[str, Any], dict[str, Any]]], ground_truth: list[dict[str, Any]],
             metrics: list[str], use_embeddings: bool = True,
             mos: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Compute the named metrics on matched pairs; returns ``{metric: result dict}``.

    ``mos``: the official MOS file read by :func:`depictqa.eval.voting.load_mos` (reference ->
    {image path: MOS}); without it ``correlation`` takes MOS from the ground-truth fields.
    """
    # importlib, not ``from depictqa.eval import correlation``: the package re-exports functions
    # under the submodules' names, so the attribute is the function, not the module
    from importlib import import_module

    corr = import_module("depictqa.eval.correlation")
    desc = import_module("depictqa.eval.description")
    m = import_module("depictqa.eval.metrics")

    results: dict[str, Any] = {}
    ident = rate = None
    if "identification" in metrics or "confidence" in metrics:
        ident = m.identification(pairs)
    if "rating" in metrics or "confidence" in metrics:
        rate = m.rating(pairs)
    if "identification" in metrics:
        results["identification"] = ident
    if "rating" in metrics:
        results["rating"] = rate
    if "confidence" in metrics:
        results["confidence"] = m.confidence((ident or {}).get("items", []) + (rate or {}).get("items", []))
    if "correlation" in metrics:
        results["correlation"] = corr.correlation(pairs, ground_truth, mos)
    if "description" in metrics:
        results["description"] = desc.description(pairs, use_embeddings=use_embeddings)
    return results
