"""The official SRCC/PLCC "voting" protocol and the official MOS file.

Each full-reference pair's chosen image gets the answer's confidence and the other 1 - confidence;
an image's score is the mean of what it received over all its pairs. Per reference group a
4-parameter logistic maps the scores to MOS and SRCC and PLCC are computed on the fitted values;
the figure is the mean over groups. Written from the definition in the DepictQA evaluation; the
logistic keeps the official parameterisation and starting point so that the fit (and the ties
where it saturates) come out the same.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from depictqa.eval.records import EvalInputError
from depictqa.eval.truth import assessed_key, task_kind


def voting_scores(comparisons: Sequence[tuple[str, str, float]]) -> dict[str, float]:
    """Official voting: each ``(winner, loser, confidence)`` gives the winner ``confidence`` and
    the loser ``1 - confidence``; an image's score is the mean of what it received."""
    got: dict[str, list[float]] = defaultdict(list)
    for win, lose, conf in comparisons:
        got[win].append(conf)
        got[lose].append(1.0 - conf)
    return {k: float(np.mean(v)) for k, v in got.items()}


def official_logistic(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The logistic of the official voting script, parameterised as there (``b4`` signed)."""
    return (b1 - b2) / (1 + np.exp(-(x - b3) / b4)) + b2


def official_srcc_plcc(pred: Sequence[float], mos: Sequence[float]) -> dict[str, Any]:
    """SRCC and PLCC as the official voting script computes them: fit :func:`official_logistic`
    (``p0 = [max mos, min mos, mean pred, std pred / 4]``, 10000 evaluations), then both
    correlations ON THE FITTED VALUES. Where the fit saturates, fitted values tie and SRCC sees
    the ties (so it can differ from the SRCC of the raw scores). A failed fit (the official
    script stops there) falls back to the raw scores with ``logistic_fit`` false."""
    import warnings

    import torch
    from scipy.optimize import OptimizeWarning, curve_fit
    from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

    p, m = np.asarray(pred, float), np.asarray(mos, float)
    out: dict[str, Any] = {"n": len(p), "srcc": float("nan"), "plcc": float("nan"), "logistic_fit": False}
    if len(p) < 2:
        return out
    fitted = p
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(official_logistic, p, m, p0=[m.max(), m.min(), p.mean(), p.std() / 4.0],
                                  maxfev=10000)
        candidate = official_logistic(p, *params)
        if np.all(np.isfinite(candidate)):
            fitted, out["logistic_fit"] = candidate, True
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError):
        pass  # too few points or no convergence: report on the raw scores, flagged
    if np.std(fitted) == 0 or np.std(m) == 0:
        return out
    t = torch.tensor(fitted, dtype=torch.float64), torch.tensor(m, dtype=torch.float64)
    out["srcc"] = float(spearman_corrcoef(*t))
    out["plcc"] = float(pearson_corrcoef(*t))
    return out


MosGroups = dict[str, dict[str, float]]  # reference -> {distorted image path: MOS}


def load_mos(path: str | Path) -> MosGroups:
    """Read the official MOS file ``{reference: {"dist_paths": [...], "mos_list": [...]}}``.

    Paths are kept as written: they are matched to the ``image_A`` / ``image_B`` strings of the
    ground truth, as the official script does. Errors name the file, the reference and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"MOS file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise EvalInputError(f"MOS file {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise EvalInputError(f"MOS file {path} must map each reference to "
                             '{"dist_paths": [...], "mos_list": [...]}, got a ' + type(data).__name__)
    groups: MosGroups = {}
    for ref, entry in data.items():
        where = f"MOS file {path}: reference {ref!r}"
        if not isinstance(entry, dict):
            raise EvalInputError(f"{where}: expected {{'dist_paths', 'mos_list'}}, got {type(entry).__name__}")
        paths, scores = entry.get("dist_paths"), entry.get("mos_list")
        if not isinstance(paths, list) or not all(isinstance(x, str) for x in paths):
            raise EvalInputError(f"{where}: field 'dist_paths' must be a list of paths")
        if not isinstance(scores, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                   for x in scores):
            raise EvalInputError(f"{where}: field 'mos_list' must be a list of numbers")
        if len(paths) != len(scores):
            raise EvalInputError(f"{where}: 'dist_paths' has {len(paths)} entries, 'mos_list' {len(scores)}")
        groups[str(ref)] = dict(zip(paths, map(float, scores)))
    return groups


def mos_from_records(ground_truth: Sequence[dict[str, Any]]) -> MosGroups:
    """MOS groups from ground-truth fields: assess records' ``mos`` and compare records'
    ``mos_A`` / ``mos_B``, grouped by ``image_ref``."""
    groups: MosGroups = defaultdict(dict)
    for rec in ground_truth:
        ref = str(rec.get("image_ref") or "no-reference")
        if task_kind(rec) == "compare":
            for key, mkey in (("image_A", "mos_A"), ("image_B", "mos_B")):
                if rec.get(mkey) is not None and rec.get(key):
                    groups[ref][rec[key]] = float(rec[mkey])
        elif rec.get("mos") is not None:
            key = assessed_key(rec)
            if rec.get(key):
                groups[ref][rec[key]] = float(rec["mos"])
    return dict(groups)


def official_voting(comparisons: Sequence[tuple[str, str, float]], groups: MosGroups) -> dict[str, Any]:
    """The official voting figure: :func:`voting_scores` over all pairs, then per reference group
    :func:`official_srcc_plcc`, averaged over the groups (a group whose correlation is undefined
    is counted in ``n_groups_undefined`` and left out of the mean, where the official mean would
    be NaN; images without a vote are left out and counted, where the official script stops)."""
    scores = voting_scores(comparisons)
    per_group, unvoted = {}, 0
    for ref, mos in groups.items():
        keys = [k for k in mos if k in scores]
        unvoted += len(mos) - len(keys)
        if len(keys) >= 2:
            per_group[ref] = official_srcc_plcc([scores[k] for k in keys], [mos[k] for k in keys])
    finite = [g for g in per_group.values() if not math.isnan(g["srcc"]) and not math.isnan(g["plcc"])]
    return {"srcc": _mean([g["srcc"] for g in finite]), "plcc": _mean([g["plcc"] for g in finite]),
            "n_groups": len(finite), "n_groups_undefined": len(per_group) - len(finite),
            "n_fit_failed": sum(not g["logistic_fit"] for g in per_group.values()),
            "n_images_without_votes": unvoted, "groups": per_group}




def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
