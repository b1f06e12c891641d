"""SRCC / PLCC between predicted quality and MOS, from scores or from pairwise answers.

The headline is the official "voting" figure: the chosen image of each full-reference pair gets
the answer's confidence, the other 1 - confidence, an image's score is the mean of what it got;
per reference group a 4-parameter logistic is fitted to the MOS and SRCC and PLCC are computed on
the fitted values; the groups are averaged. A Bradley-Terry fit of the same outcomes (who beat
whom, not only how often an image won: the better estimator on sparse or unbalanced pairs) is
reported beside it under its own name, as are predicted ``score`` fields.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from depictqa.eval.parsing import parse_choice
from depictqa.eval.truth import assessed_key, task_kind
from depictqa.eval.voting import MosGroups, mos_from_records, official_voting

Pair = tuple[dict[str, Any], dict[str, Any]]


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -60, 60)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def _logistic4_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # analytic Jacobian: with finite differences a parameter starting at exactly 0 (b3 for
    # centred scores) gets a zero-width step and never moves
    width = abs(b4) + 1e-12
    u = np.clip((x - b3) / width, -60, 60)
    s = 1.0 / (1.0 + np.exp(-u))
    ds = (b1 - b2) * s * (1 - s)
    return np.stack([s, 1 - s, -ds / width, -ds * u / width * np.sign(b4 or 1.0)], -1)


def fit_logistic(x: Sequence[float], y: Sequence[float]) -> np.ndarray | None:
    """Fit :func:`logistic4` mapping ``x`` to ``y``; ``None`` if it does not converge."""
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    x, y = np.asarray(x, float), np.asarray(y, float)
    p0 = [y.max(), y.min(), float(np.mean(x)), float(np.std(x)) or 1.0]
    try:
        with warnings.catch_warnings():
            # a singular covariance (perfect fit) is fine here: only the parameters are used
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic4, x, y, p0=p0, jac=_logistic4_jac, maxfev=20000)
    except (RuntimeError, ValueError, OptimizeWarning):
        return None
    return params


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    import torch
    from torchmetrics.functional import pearson_corrcoef

    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(pearson_corrcoef(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))


def srcc_plcc(pred: Sequence[float], mos: Sequence[float]) -> dict[str, float]:
    """SRCC, PLCC after the 4-parameter logistic fit, and raw Pearson, via torchmetrics.

    ``plcc`` falls back to the raw Pearson (``logistic_fit`` False) when the fit fails or there
    are fewer than 5 points (4 parameters would interpolate them).
    """
    import torch
    from torchmetrics.functional import spearman_corrcoef

    p, m = np.asarray(pred, float), np.asarray(mos, float)
    out = {"n": len(p), "srcc": float("nan"), "plcc": float("nan"), "pearson": float("nan"),
           "logistic_fit": False}
    if len(p) < 2 or np.std(p) == 0 or np.std(m) == 0:
        return out
    out["srcc"] = float(spearman_corrcoef(torch.tensor(p, dtype=torch.float64),
                                          torch.tensor(m, dtype=torch.float64)))
    out["pearson"] = out["plcc"] = _pearson(p, m)
    params = fit_logistic(p, m) if len(p) >= 5 else None
    if params is not None:
        fitted = logistic4(p, *params)
        if np.std(fitted) > 0:
            out["plcc"], out["logistic_fit"] = _pearson(fitted, m), True
    return out


def bradley_terry(comparisons: Sequence[tuple[str, str, float]], l2: float = 1e-2) -> dict[str, float]:
    """Bradley-Terry strengths (log scale, mean 0) from soft outcomes.

    Each comparison counts ``confidence`` of a win for the winner and ``1 - confidence`` for the
    loser. A small L2 penalty keeps strengths finite when one image wins every comparison. Fitted
    with scipy L-BFGS (no BT package is a dependency; the likelihood is a few lines).
    """
    from scipy.optimize import minimize

    names = sorted({n for w, l_, _ in comparisons for n in (w, l_)})
    if not names:
        return {}
    idx = {n: i for i, n in enumerate(names)}
    w = np.array([idx[c[0]] for c in comparisons])
    l_ = np.array([idx[c[1]] for c in comparisons])
    c = np.array([c[2] for c in comparisons], float)

    def nll(s: np.ndarray) -> tuple[float, np.ndarray]:
        d = s[w] - s[l_]
        p = 1.0 / (1.0 + np.exp(-d))  # P(winner beats loser)
        eps = 1e-12
        loss = -(c * np.log(p + eps) + (1 - c) * np.log(1 - p + eps)).sum() + l2 * (s ** 2).sum()
        g_d = -(c - p)  # d loss / d d
        grad = np.zeros_like(s)
        np.add.at(grad, w, g_d)
        np.add.at(grad, l_, -g_d)
        return float(loss), grad + 2 * l2 * s

    res = minimize(nll, np.zeros(len(names)), jac=True, method="L-BFGS-B")
    s = res.x - res.x.mean()
    return {n: float(s[idx[n]]) for n in names}


def _summarise(scores: dict[str, float], groups: MosGroups) -> dict[str, Any]:
    """depictqa's view: SRCC of the raw scores and PLCC after a fit, mean over groups and pooled."""
    per_group, pooled_p, pooled_m = {}, [], []
    for ref, mos in groups.items():
        keys = [k for k in mos if k in scores]
        p, m = [scores[k] for k in keys], [mos[k] for k in keys]
        pooled_p += p
        pooled_m += m
        if len(keys) >= 3:
            per_group[ref] = srcc_plcc(p, m)
    finite = [g for g in per_group.values() if not math.isnan(g["srcc"])]
    return {"per_group_mean": {"srcc": _nanmean([g["srcc"] for g in finite]),
                               "plcc": _nanmean([g["plcc"] for g in finite]), "n_groups": len(finite)},
            "global": srcc_plcc(pooled_p, pooled_m), "groups": per_group}


def _nanmean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def correlation(pairs: Sequence[Pair], ground_truth: Sequence[dict[str, Any]],
                mos: MosGroups | None = None) -> dict[str, Any]:
    """SRCC/PLCC against MOS from pairwise answers and from ``score`` fields.

    ``voting`` is the official figure (:func:`official_voting`) over the full-reference pairs.
    Variants with their own names: ``bradley_terry`` (strengths fitted per reference from the same
    soft outcomes) and ``score`` (predicted ``score`` fields of assess records), both reported as
    SRCC of the raw scores and PLCC after a logistic fit, mean over groups and pooled. ``mos``
    is the official MOS file (:func:`load_mos`); without it MOS comes from the ground-truth fields.
    """
    groups = mos if mos is not None else mos_from_records(ground_truth)
    result: dict[str, Any] = {"n_images_with_mos": sum(len(g) for g in groups.values()),
                              "n_mos_groups": len(groups)}
    scored: dict[str, float] = {}
    comps: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    skipped = no_conf = 0
    for gt, pred in pairs:
        if task_kind(gt) == "assess" and isinstance(pred.get("score"), (int, float)):
            scored[gt.get(assessed_key(gt))] = float(pred["score"])
        elif task_kind(gt) == "compare":
            choice = parse_choice(str(pred.get("text") or ""))
            conf = pred.get("confidence")
            if choice is None or not gt.get("image_ref"):
                skipped += 1  # voting uses full-reference pairs with a readable answer only
                continue
            no_conf += not isinstance(conf, (int, float))
            a, b = gt["image_A"], gt["image_B"]
            win, lose = (a, b) if choice == "A" else (b, a)
            # without a confidence the winner takes the whole vote (the official script without --confidence)
            comps[str(gt["image_ref"])].append((win, lose, float(conf) if isinstance(conf, (int, float)) else 1.0))
    if scored:
        result["score"] = _summarise(scored, groups)
    if comps:
        result["n_pairs"] = sum(len(c) for c in comps.values())
        result["n_pairs_skipped"] = skipped
        result["n_pairs_without_confidence"] = no_conf
        result["voting"] = official_voting([c for cs in comps.values() for c in cs], groups)
        strengths = {k: v for cs in comps.values() for k, v in bradley_terry(cs).items()}
        result["bradley_terry"] = _summarise(strengths, groups)
    return result
