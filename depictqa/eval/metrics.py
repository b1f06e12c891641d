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
from depictqa.eval.truth import (gt_choice, gt_choice_answer, gt_label_answer, gt_labels, gt_severity,
                                 is_multi_distortion, task_kind)

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


def official_single_score(pred_text: str, gt_answer: str) -> float:
    """Official single-distortion (and rating) rule: exact match after stripping, case included."""
    return float(str(pred_text).strip() == str(gt_answer).strip())


def official_multi_score(pred_text: str, gt_answer: str) -> float:
    """Official multi-distortion rule on the answer text: labels are the pieces between "and"
    (stripped, lower-cased); the same set scores 1, else each predicted label found in the truth
    scores 1/max(|pred|, |gt|). Split on the bare substring "and", as the official script does."""
    pred = sorted({p.strip().lower() for p in str(pred_text).strip().split("and")})
    gt = sorted(g.strip().lower() for g in str(gt_answer).strip().split("and"))
    if pred == gt:
        return 1.0
    return sum(1.0 / max(len(pred), len(gt)) for p in pred if p in gt)


def identification(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Identification accuracy over assess records, split into single- and multi-distortion.

    Headline (official): ``single_accuracy`` is the exact match of the stripped answer with the
    bare label answer; ``multi_accuracy`` the official multi-distortion rule on the answer text
    (records from multi-distortion metas, or whose truth has two or more labels). Variants with
    their own names: ``*_partial_credit`` read labels out of free text (sentences, older label
    wordings) and give partial credit to every image. Breakdowns by category and severity use the
    official score; the confusion matrix (single-distortion images) the labels read.
    ``items`` keeps per-record scores for calibration.
    """
    single, multi, single_pc, multi_pc, items = [], [], [], [], []
    by_cat: dict[str, list[float]] = defaultdict(list)
    by_sev: dict[str, list[float]] = defaultdict(list)
    confusion: Counter[tuple[str, str]] = Counter()
    unparsed = no_truth = 0
    for gt, pred in pairs:
        if task_kind(gt) != "assess" or gt.get("style") in ("level", "brief", "detail"):
            continue  # label questions only: sentence answers are scored by `description`
        truth = gt_labels(gt)
        if not truth:
            no_truth += 1  # neither distortion fields nor an answer: nothing to score against
            continue
        text = str(pred.get("text") or "")
        found = parse_labels(text)
        unparsed += not found
        is_multi = is_multi_distortion(gt)
        rule = official_multi_score if is_multi else official_single_score
        score = rule(text, gt_label_answer(gt))
        credit = identification_score(found, truth)
        items.append({"id": gt["id"], "score": score, "correct": score == 1.0,
                      "confidence": pred.get("confidence")})
        (multi if is_multi else single).append(score)
        (multi_pc if is_multi else single_pc).append(credit)
        for label in truth:
            by_cat[label].append(score)
        if not is_multi:
            confusion[(next(iter(truth)), _confusion_column(found))] += 1
        sev = gt_severity(gt)
        by_sev["clean" if truth == {CLEAN} else str(sev) if sev is not None else "unknown"].append(score)
    rows = [c for c in (*CATEGORIES, CLEAN) if any(r == c for r, _ in confusion)]
    rows += sorted({r for r, _ in confusion} - set(rows))
    cols = rows + sorted({c for _, c in confusion if c not in rows})
    return {
        "n": len(items), "n_single": len(single), "n_multi": len(multi), "n_unparsed": unparsed,
        "n_no_truth": no_truth,
        "single_accuracy": _mean(single), "multi_accuracy": _mean(multi), "accuracy": _mean(single + multi),
        "single_partial_credit": _mean(single_pc), "multi_partial_credit": _mean(multi_pc),
        "per_category": {k: {"n": len(v), "accuracy": _mean(v)} for k, v in sorted(by_cat.items())},
        "per_severity": {k: {"n": len(v), "accuracy": _mean(v)} for k, v in sorted(by_sev.items())},
        "confusion": {"rows": rows, "cols": cols,
                      "counts": [[confusion[(r, c)] for c in cols] for r in rows]},
        "items": items,
    }


def rating(pairs: Sequence[Pair]) -> dict[str, Any]:
    """A/B accuracy over compare records.

    ``accuracy`` (official): the stripped answer equals "Image A" / "Image B" exactly.
    ``accuracy_parsed_choice``: the choice read from free text (sentences too) is right;
    unreadable answers count as wrong (``n_unparsed``). The truth is ``A_better_B``, or the
    ground-truth answer when the record has no ``A_better_B``; ties (``A_better_B`` null) and
    records with no truth at all are skipped and counted.
    """
    items, unparsed, ties, no_truth = [], 0, 0, 0
    exact, parsed, fr, nr = [], [], [], []
    for gt, pred in pairs:
        if task_kind(gt) != "compare":
            continue
        truth = gt_choice(gt)
        if truth in ("tie", None):
            ties += truth == "tie"
            no_truth += truth is None
            continue
        text = str(pred.get("text") or "")
        choice = parse_choice(text)
        unparsed += choice is None
        hit = official_single_score(text, gt_choice_answer(gt))
        exact.append(hit)
        parsed.append(float(choice == truth))
        (fr if gt.get("image_ref") else nr).append(hit)
        items.append({"id": gt["id"], "score": hit, "correct": hit == 1.0, "choice": choice,
                      "confidence": pred.get("confidence")})
    return {"n": len(exact), "n_unparsed": unparsed, "n_ties_skipped": ties, "n_no_truth": no_truth,
            "accuracy": _mean(exact), "accuracy_parsed_choice": _mean(parsed),
            "accuracy_fr": _mean(fr), "accuracy_nr": _mean(nr), "items": items}


def _official_bin(conf: float, edges: Sequence[float]) -> int:
    """The official bin of a confidence: ``lo < c <= hi`` after rounding to 6 digits (the
    official scripts round because confidences can exceed 1 by float error); 0 joins the first."""
    c = round(conf, 6)
    for i, hi in enumerate(edges[1:]):
        if c <= hi:
            return i
    return len(edges) - 2


def confidence(items: Sequence[dict[str, Any]],
               edges: Sequence[float] = CONFIDENCE_EDGES, n_bins: int = 10) -> dict[str, Any]:
    """Accuracy per confidence bin (official) and expected calibration error.

    ``items`` are ``{"confidence": float | None, "score": float, "correct": bool}`` (from
    :func:`identification` and :func:`rating`). A bin's accuracy is the mean official score of its
    items (so multi-distortion partial credit counts as the official script counts it); bins are
    ``(lo, hi]`` as there. Items without a confidence are counted, not scored. ``ece`` is
    torchmetrics' L1 calibration error on ``n_bins`` uniform bins with ``correct`` (score 1) as the
    target; ``ece_official_bins`` uses the official uneven edges, which torchmetrics cannot take,
    so it is summed here.
    """
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    scored = [(float(it["confidence"]), float(it.get("score", it.get("correct", 0))), bool(it.get("correct")))
              for it in items if isinstance(it.get("confidence"), (int, float))]
    missing = len(items) - len(scored)
    grouped: list[list[tuple[float, float]]] = [[] for _ in edges[1:]]
    for c, score, _ in scored:
        grouped[_official_bin(c, edges)].append((c, score))
    bins = [{"lo": lo, "hi": hi, "n": len(inside), "accuracy": _mean([y for _, y in inside]),
             "mean_confidence": _mean([c for c, _ in inside])}
            for lo, hi, inside in zip(edges[:-1], edges[1:], grouped)]
    result: dict[str, Any] = {"n": len(scored), "n_missing_confidence": missing, "bins": bins,
                              "ece": float("nan"), "ece_official_bins": float("nan"),
                              "accuracy": _mean([y for _, y, _ in scored]),
                              "mean_confidence": _mean([c for c, _, _ in scored])}
    if scored:
        conf = torch.tensor([min(max(c, 0.0), 1.0) for c, _, _ in scored])
        target = torch.tensor([int(ok) for _, _, ok in scored])
        result["ece"] = float(binary_calibration_error(conf, target, n_bins=n_bins, norm="l1"))
        result["ece_official_bins"] = sum(
            b["n"] / len(scored) * abs(b["accuracy"] - b["mean_confidence"])
            for b in bins if b["n"])
    return result
