"""SRCC / PLCC between predicted quality and MOS, from scores or from pairwise answers.

Pairwise answers become per-image scores two ways: the official "voting" mean (the chosen image
gets the answer's confidence, the other 1 - confidence, an image's score is the mean) and a
Bradley-Terry fit, which uses who beat whom rather than only how often an image won, so it is
the better estimator when the comparison graph is sparse or unbalanced. Both are computed per
reference group (the official protocol averages over groups) and globally.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from depictqa.eval.parsing import parse_choice
from depictqa.eval.records import image_path, task_kind

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


def voting_scores(comparisons: Sequence[tuple[str, str, float]]) -> dict[str, float]:
    """Official voting: each ``(winner, loser, confidence)`` gives the winner ``confidence`` and
    the loser ``1 - confidence``; an image's score is the mean of what it received."""
    got: dict[str, list[float]] = defaultdict(list)
    for win, lose, conf in comparisons:
        got[win].append(conf)
        got[lose].append(1.0 - conf)
    return {k: float(np.mean(v)) for k, v in got.items()}


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


def _mos_table(ground_truth: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Image path -> MOS, from assess records with ``mos`` and compare records with ``mos_A/B``."""
    table: dict[str, float] = {}
    for rec in ground_truth:
        if task_kind(rec) == "compare":
            for key, mkey in (("image_A", "mos_A"), ("image_B", "mos_B")):
                if rec.get(mkey) is not None and rec.get(key):
                    table[str(image_path(rec, key))] = float(rec[mkey])
        elif rec.get("mos") is not None:
            key = "image_B" if str(rec.get("task", "")).startswith("quality_single_B") else "image_A"
            if rec.get(key):
                table[str(image_path(rec, key))] = float(rec["mos"])
    return table


def _summarise(scores_by_group: dict[str, dict[str, float]], mos: dict[str, float]) -> dict[str, Any]:
    groups, pooled_p, pooled_m = {}, [], []
    for group, scores in scores_by_group.items():
        keys = [k for k in scores if k in mos]
        p, m = [scores[k] for k in keys], [mos[k] for k in keys]
        pooled_p += p
        pooled_m += m
        if len(keys) >= 3:
            groups[group] = srcc_plcc(p, m)
    finite = [g for g in groups.values() if not math.isnan(g["srcc"])]
    return {"per_group_mean": {"srcc": float(np.mean([g["srcc"] for g in finite])) if finite else float("nan"),
                               "plcc": float(np.mean([g["plcc"] for g in finite])) if finite else float("nan"),
                               "n_groups": len(finite)},
            "global": srcc_plcc(pooled_p, pooled_m), "groups": groups}


def correlation(pairs: Sequence[Pair], ground_truth: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """SRCC/PLCC from ``score`` fields and from pairwise answers (voting and Bradley-Terry).

    Reported headline: the per-reference-group mean (official protocol); global pooled values
    are given alongside. Images without a MOS are ignored; a source with no data is absent.
    """
    mos = _mos_table(ground_truth)
    result: dict[str, Any] = {"n_images_with_mos": len(mos),
                              "reported": "mean over reference groups (official); global also shown"}
    scored: dict[str, dict[str, float]] = defaultdict(dict)
    comps: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    skipped = 0
    for gt, pred in pairs:
        group = str(gt.get("image_ref") or "no-reference")
        if task_kind(gt) == "assess" and isinstance(pred.get("score"), (int, float)):
            key = "image_B" if str(gt.get("task", "")).startswith("quality_single_B") else "image_A"
            scored[group][str(image_path(gt, key))] = float(pred["score"])
        elif task_kind(gt) == "compare":
            choice = parse_choice(pred.get("text", ""))
            conf = pred.get("confidence")
            if choice is None or not gt.get("image_ref"):
                skipped += 1  # official voting uses FR pairs with a readable answer only
                continue
            a, b = str(image_path(gt, "image_A")), str(image_path(gt, "image_B"))
            win, lose = (a, b) if choice == "A" else (b, a)
            comps[group].append((win, lose, float(conf) if isinstance(conf, (int, float)) else 1.0))
    if scored:
        result["score"] = _summarise(scored, mos)
    if comps:
        result["n_pairs_skipped"] = skipped
        result["voting"] = _summarise({g: voting_scores(c) for g, c in comps.items()}, mos)
        result["bradley_terry"] = _summarise({g: bradley_terry(c) for g, c in comps.items()}, mos)
    return result
