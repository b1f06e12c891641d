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
    assert r["voting"]["srcc"] == pytest.approx(1.0, abs=1e-5) and r["voting"]["n_groups"] == 1
    assert r["bradley_terry"]["per_group_mean"]["srcc"] == pytest.approx(1.0)
    assert r["bradley_terry"]["global"]["n"] == 5


# An image's voting score is what it received; one pair per image against an image outside the
# MOS file sets it exactly. Scores 0 and .05, and .95 and 1, lie far out on the logistic's tails.
TIE_SCORES = [0.0, 0.05, 0.495, 0.5, 0.505, 0.95, 1.0]
TIE_MOS = [1.2, 0.8, 2.0, 3.0, 4.0, 5.2, 4.8]


def mos_tie_fixture(tmp_path):
    """A refAB meta, answers and an official MOS file whose logistic fit saturates.

    By hand: the least-squares logistic has b1 = 5, b2 = 1 (the tail means), b3 = .5 and
    b4 = .005 / ln 3, which passes exactly through the middle three points, so the fitted values
    are [1, 1, 2, 3, 4, 5, 5]: the tails TIE. SRCC(fitted, MOS): ranks [1.5, 1.5, 3, 4, 5, 6.5, 6.5]
    vs [2, 1, 3, 4, 5, 7, 6] -> 27 / sqrt(27 * 28) = sqrt(27/28). PLCC(fitted, MOS) = 18 /
    sqrt(18 * 18.16). The SRCC of the raw scores is 1 - 6 * 4 / (7 * 48) = 13/14 instead.
    """
    import json

    gt, preds = [], []
    for i, s in enumerate(TIE_SCORES):
        gt.append({"id": f"p{i}", "image_ref": "ref.png", "image_A": f"d{i}.png", "image_B": f"other{i}.png",
                   "query": "Which is better?"})
        preds.append({"id": f"p{i}", "text": "Image A" if s >= 0.5 else "Image B",
                      "confidence": s if s >= 0.5 else 1 - s})
    mos = {"ref.png": {"dist_paths": [f"d{i}.png" for i in range(7)], "mos_list": TIE_MOS}}
    for name, data in (("gt.json", gt), ("pred.json", preds), ("mos.json", mos)):
        (tmp_path / name).write_text(json.dumps(data))
    return tmp_path / "pred.json", tmp_path / "gt.json", tmp_path / "mos.json"


def test_official_voting_computes_srcc_on_the_fitted_values(tmp_path):
    from depictqa.eval import load_ground_truth, load_mos, load_predictions, official_srcc_plcc

    pred, gt_path, mos_path = mos_tie_fixture(tmp_path)
    gt = load_ground_truth(gt_path)
    r = correlation(match(load_predictions(pred), gt).pairs, gt, load_mos(mos_path))
    assert r["voting"]["srcc"] == pytest.approx((27 / 28) ** 0.5, abs=1e-5)
    assert r["voting"]["plcc"] == pytest.approx((18 / 18.16) ** 0.5, abs=1e-5)
    assert r["voting"]["n_groups"] == 1 and r["voting"]["n_fit_failed"] == 0
    raw = srcc_plcc(TIE_SCORES, TIE_MOS)  # depictqa's variant ranks the raw scores
    assert raw["srcc"] == pytest.approx(13 / 14)
    assert official_srcc_plcc(TIE_SCORES, TIE_MOS)["srcc"] == pytest.approx((27 / 28) ** 0.5, abs=1e-5)


@pytest.mark.parametrize("content, culprit", [
    ({"ref.png": {"dist_paths": ["a.png"], "mos_list": [1, 2]}}, "'ref.png'"),
    ({"ref.png": {"dist_paths": ["a.png"]}}, "mos_list"),
    ({"ref.png": {"dist_paths": "a.png", "mos_list": [1]}}, "dist_paths"),
    ([1, 2], "must map each reference"),
])
def test_bad_mos_file_names_the_culprit(tmp_path, content, culprit):
    import json

    from depictqa.eval import EvalInputError, load_mos

    (tmp_path / "mos.json").write_text(json.dumps(content))
    with pytest.raises(EvalInputError, match="mos.json") as err:
        load_mos(tmp_path / "mos.json")
    assert culprit in str(err.value)
