import numpy as np
import pytest
from scipy import stats

from depictqa.eval import bradley_terry, correlation, fit_logistic, logistic4, match, srcc_plcc, voting_scores


def test_srcc_and_raw_pearson_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    pred = np.round(rng.normal(size=30), 1)  # rounding makes ties
    mos = pred + rng.normal(scale=0.5, size=30)
    r = srcc_plcc(pred, mos)
    assert r["srcc"] == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-6)
    assert r["pearson"] == pytest.approx(stats.pearsonr(pred, mos).statistic, abs=1e-6)
    assert r["logistic_fit"] and r["plcc"] >= r["pearson"] - 1e-3


def test_logistic_fit_recovers_a_monotone_mapping():
    x = np.linspace(-3, 3, 40)
    true = (5.0, 1.0, 0.5, 0.8)
    y = logistic4(x, *true)
    params = fit_logistic(x, y)
    assert np.allclose(logistic4(x, *params), y, atol=1e-4)
    assert srcc_plcc(x, y)["plcc"] == pytest.approx(1.0, abs=1e-6)
    assert srcc_plcc(x, y)["pearson"] < 0.99  # raw Pearson is hurt by the non-linearity


def test_voting_is_the_official_mean():
    s = voting_scores([("a", "b", 0.9), ("a", "c", 0.6), ("c", "b", 0.8)])
    assert s == pytest.approx({"a": 0.75, "b": (0.1 + 0.2) / 2, "c": (0.4 + 0.8) / 2})


def test_bradley_terry_recovers_known_ordering():
    rng = np.random.default_rng(1)
    strength = {"i0": -2.0, "i1": -0.7, "i2": 0.3, "i3": 1.1, "i4": 2.2}
    names = list(strength)
    comps = []
    for _ in range(600):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
        comps.append((a, b, 1.0) if rng.random() < p else (b, a, 1.0))
    fitted = bradley_terry(comps)
    assert sorted(fitted, key=fitted.get) == names
    assert stats.pearsonr([fitted[n] for n in names], [strength[n] for n in names]).statistic > 0.98


def test_correlation_from_pairwise_answers(tmp_path):
    mos = {"x0.png": 1.0, "x1.png": 2.0, "x2.png": 3.0, "x3.png": 4.0, "x4.png": 5.0}
    gt = [{"id": n, "task": "quality_single_A", "image_ref": "r.png", "image_A": n, "mos": m,
           "_root": str(tmp_path)} for n, m in mos.items()]
    preds = []
    names = list(mos)
    for i in range(5):
        for j in range(i + 1, 5):
            gid = f"p{i}{j}"
            gt.append({"id": gid, "task": "quality_compare", "image_ref": "r.png",
                       "image_A": names[i], "image_B": names[j], "A_better_B": False,
                       "_root": str(tmp_path)})
            preds.append({"id": gid, "text": "Image B", "confidence": 0.8})
    r = correlation(match(preds, gt).pairs, gt)
    for est in ("voting", "bradley_terry"):
        assert r[est]["per_group_mean"]["srcc"] == pytest.approx(1.0)
        assert r[est]["global"]["n"] == 5
