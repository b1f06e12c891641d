"""Accuracy metrics: distortion identification, A/B rating, and confidence calibration.

The list-of-strings helpers (:func:`identification_accuracy`, :func:`rating_accuracy`) are what
training-time validation calls; the record-level functions take matched ``(gt, prediction)``
pairs from :func:`depictqa.eval.records.match` and return plain dicts that the report renders.
Scoring follows the official DepictQA rule (see docs/evaluation.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

from depictqa.eval.parsing import CATEGORIES, CLEAN, labels_of, parse_choice, parse_labels
from depictqa.eval.records import gt_labels, gt_severity, task_kind

Pair = tuple[dict[str, Any], dict[str, Any]]
CONFIDENCE_EDGES: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def identification_score(pred: set[str], gt: set[str]) -> float:
    """Official rule: exact set match scores 1, else each correct label 1/max(|pred|, |gt|)."""
    if pred == gt:
        return 1.0
    if not pred or not gt:
        return 0.0
    return len(pred & gt) / max(len(pred), len(gt))


def identification_accuracy(pred_texts: Sequence[str],
                            gt_labels: Sequence[str | Iterable[str]]) -> float:
    """Mean identification score of answers against labels ("Blur and noise" or ["Blur", ...])."""
    if len(pred_texts) != len(gt_labels):
        raise ValueError(f"{len(pred_texts)} answers but {len(gt_labels)} labels")
    if not pred_texts:
        return float("nan")
    scores = [identification_score(parse_labels(p), labels_of(g))
              for p, g in zip(pred_texts, gt_labels)]
    return sum(scores) / len(scores)


def rating_accuracy(pred_texts: Sequence[str], gt_a_better: Sequence[bool]) -> float:
    """Fraction of answers choosing the better image; an unparseable answer counts as wrong."""
    if len(pred_texts) != len(gt_a_better):
        raise ValueError(f"{len(pred_texts)} answers but {len(gt_a_better)} labels")
    if not pred_texts:
        return float("nan")
    hits = [parse_choice(p) == ("A" if a else "B") for p, a in zip(pred_texts, gt_a_better)]
    return sum(hits) / len(hits)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _confusion_column(pred: set[str]) -> str:
    if not pred:
        return "unparsed"
    return next(iter(pred)) if len(pred) == 1 else "multiple"


def identification(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Identification accuracy over assess records, split into single- and multi-distortion.

    Single-distortion (incl. clean) images score by exact match; multi-distortion images get the
    official partial credit. Breakdowns by category and severity, and a confusion matrix over
    single-distortion images, come with it. ``items`` keeps per-record scores for calibration.
    """
    single, multi, items = [], [], []
    by_cat: dict[str, list[float]] = defaultdict(list)
    by_sev: dict[str, list[float]] = defaultdict(list)
    confusion: Counter[tuple[str, str]] = Counter()
    unparsed = 0
    for gt, pred in pairs:
        if task_kind(gt) != "assess":
            continue
        truth, found = gt_labels(gt), parse_labels(pred.get("text", ""))
        unparsed += not found
        score = identification_score(found, truth)
        items.append({"id": gt["id"], "score": score, "correct": score == 1.0,
                      "confidence": pred.get("confidence")})
        if len(truth) <= 1:
            single.append(score)
            label = next(iter(truth))
            by_cat[label].append(score)
            confusion[(label, _confusion_column(found))] += 1
        else:
            multi.append(score)
            for label in truth:
                by_cat[label].append(score)
        sev = gt_severity(gt)
        by_sev["clean" if truth == {CLEAN} else str(sev) if sev is not None else "unknown"].append(score)
    rows = [c for c in (*CATEGORIES, CLEAN) if any(r == c for r, _ in confusion)]
    cols = rows + sorted({c for _, c in confusion if c not in rows})
    return {
        "n": len(items), "n_single": len(single), "n_multi": len(multi), "n_unparsed": unparsed,
        "single_accuracy": _mean(single), "multi_accuracy": _mean(multi),
        "accuracy": _mean(single + multi),
        "per_category": {k: {"n": len(v), "accuracy": _mean(v)} for k, v in sorted(by_cat.items())},
        "per_severity": {k: {"n": len(v), "accuracy": _mean(v)} for k, v in sorted(by_sev.items())},
        "confusion": {"rows": rows, "cols": cols,
                      "counts": [[confusion[(r, c)] for c in cols] for r in rows]},
        "items": items,
    }


def rating(pairs: Sequence[Pair]) -> dict[str, Any]:
    """A/B accuracy over compare records. Unparseable answers count as wrong and are reported;
    gt ties (``A_better_B`` null) are skipped and counted."""
    hits, items, unparsed, ties, fr_hits, nr_hits = [], [], 0, 0, [], []
    for gt, pred in pairs:
        if task_kind(gt) != "compare":
            continue
        a_better = gt.get("A_better_B")
        if a_better is None:
            ties += 1
            continue
        choice = parse_choice(pred.get("text", ""))
        unparsed += choice is None
        hit = choice == ("A" if a_better else "B")
        hits.append(hit)
        (fr_hits if gt.get("image_ref") else nr_hits).append(hit)
        items.append({"id": gt["id"], "correct": hit, "choice": choice,
                      "confidence": pred.get("confidence")})
    parsed = [h for h, it in zip(hits, items) if it["choice"] is not None]
    return {"n": len(hits), "n_unparsed": unparsed, "n_ties_skipped": ties,
            "accuracy": _mean([float(h) for h in hits]),
            "accuracy_parsed": _mean([float(h) for h in parsed]),
            "accuracy_fr": _mean([float(h) for h in fr_hits]),
            "accuracy_nr": _mean([float(h) for h in nr_hits]), "items": items}


def confidence(items: Sequence[dict[str, Any]],
               edges: Sequence[float] = CONFIDENCE_EDGES, n_bins: int = 10) -> dict[str, Any]:
    """Accuracy per confidence bin and expected calibration error.

    ``items`` are ``{"confidence": float | None, "correct": bool}`` (from :func:`identification`
    and :func:`rating`). Items without a confidence are counted, not scored. ``ece`` is
    torchmetrics' L1 calibration error on ``n_bins`` uniform bins; ``ece_official_bins`` uses the
    official uneven edges, which torchmetrics cannot take, so it is summed here.
    """
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    scored = [(float(it["confidence"]), bool(it["correct"])) for it in items
              if isinstance(it.get("confidence"), (int, float))]
    missing = len(items) - len(scored)
    bins = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        inside = [(c, y) for c, y in scored if lo <= c < hi or (last and c == hi)]
        bins.append({"lo": lo, "hi": hi, "n": len(inside),
                     "accuracy": _mean([float(y) for _, y in inside]),
                     "mean_confidence": _mean([c for c, _ in inside])})
    result: dict[str, Any] = {"n": len(scored), "n_missing_confidence": missing, "bins": bins,
                              "ece": float("nan"), "ece_official_bins": float("nan"),
                              "accuracy": _mean([float(y) for _, y in scored]),
                              "mean_confidence": _mean([c for c, _ in scored])}
    if scored:
        conf = torch.tensor([min(max(c, 0.0), 1.0) for c, _ in scored])
        target = torch.tensor([int(y) for _, y in scored])
        result["ece"] = float(binary_calibration_error(conf, target, n_bins=n_bins, norm="l1"))
        result["ece_official_bins"] = sum(
            b["n"] / len(scored) * abs(b["accuracy"] - b["mean_confidence"])
            for b in bins if b["n"])
    return result
