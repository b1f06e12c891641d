import math

import pytest

from depictqa.eval import (confidence, identification, identification_accuracy,
                           identification_score, match, rating, rating_accuracy)


def test_identification_score_official_rule():
    assert identification_score({"Blur", "Noise"}, {"Noise", "Blur"}) == 1.0
    assert identification_score({"Blur"}, {"Blur", "Noise"}) == 0.5
    assert identification_score({"Blur", "Darken", "Noise"}, {"Blur", "Noise"}) == pytest.approx(2 / 3)
    assert identification_score(set(), {"Blur"}) == 0.0


def test_identification_accuracy_on_strings():
    preds = ["Noise", "blur and noise", "Blur", "gibberish"]
    gts = ["Noise", "Noise and blur", ["Blur", "Noise"], "None"]
    assert identification_accuracy(preds, gts) == pytest.approx((1 + 1 + 0.5 + 0) / 4)


def test_rating_accuracy_counts_unparseable_as_wrong():
    assert rating_accuracy(["Image A", "B", "no idea", "Image A is worse than Image B."],
                           [True, True, False, False]) == 0.5


def test_identification_records_breakdowns(assess):
    gt = [assess("1", ["Noise"], 1), assess("2", ["Noise"], 3), assess("3", ["Blur"], 3),
          assess("4", [], None), assess("5", ["Blur", "Noise"], 2)]
    preds = [{"id": "1", "text": "Noise"}, {"id": "2", "text": "Blur"},
             {"id": "3", "text": "Blur"}, {"id": "4", "text": "???"},
             {"id": "5", "text": "Noise"}, {"id": "x", "text": "Noise"}]
    m = match(preds, gt)
    assert m.extra == ["x"] and m.missing == []
    r = identification(m.pairs)
    assert r["n_single"] == 4 and r["n_multi"] == 1 and r["n_unparsed"] == 1
    assert r["single_accuracy"] == 0.5 and r["multi_accuracy"] == 0.5
    assert r["per_category"]["Noise"] == {"n": 3, "accuracy": pytest.approx(0.5)}
    assert r["single_partial_credit"] == 0.5 and r["multi_partial_credit"] == 0.5
    assert r["per_severity"]["3"]["accuracy"] == 0.5
    assert r["per_severity"]["clean"] == {"n": 1, "accuracy": 0.0}
    conf = r["confusion"]
    assert conf["counts"][conf["rows"].index("Noise")][conf["cols"].index("Blur")] == 1
    assert conf["counts"][conf["rows"].index("None")][conf["cols"].index("unparsed")] == 1


def test_rating_records_ties_and_unparsed():
    gt = [{"id": str(i), "task": "quality_compare", "image_ref": "r", "image_A": "a",
           "image_B": "b", "A_better_B": ab} for i, ab in enumerate([True, False, True, None])]
    preds = [{"id": "0", "text": "Image A"}, {"id": "1", "text": "Image A"},
             {"id": "2", "text": "hmm"}, {"id": "3", "text": "Image B"}]
    r = rating(match(preds, gt).pairs)
    assert r["n"] == 3 and r["n_ties_skipped"] == 1 and r["n_unparsed"] == 1
    assert r["accuracy"] == pytest.approx(1 / 3) and r["accuracy_parsed_choice"] == pytest.approx(1 / 3)


def test_rating_headline_is_exact_match_the_parsed_choice_has_its_own_name():
    gt = [{"id": str(i), "task": "quality_compare", "image_ref": "r", "image_A": "a", "image_B": "b",
           "A_better_B": True} for i in range(3)]
    preds = [{"id": "0", "text": " Image A\n"}, {"id": "1", "text": "Image A is better."}, {"id": "2", "text": "image a"}]
    r = rating(match(preds, gt).pairs)
    assert r["accuracy"] == pytest.approx(1 / 3)  # official: stripped text equals "Image A"
    assert r["accuracy_parsed_choice"] == 1.0


def test_confidence_bins_are_the_official_half_open_ones():
    """Official bins are (lo, hi] after rounding to 6 digits; 0 joins the first; a bin's accuracy
    is the mean score (partial credit counts)."""
    items = [{"confidence": 0.5, "score": 1.0, "correct": True}, {"confidence": 0.6000000004, "score": 0.5},
             {"confidence": 0.0, "score": 0.0}, {"confidence": 0.95, "score": 1.0, "correct": True}]
    by_lo = {b["lo"]: b for b in confidence(items)["bins"]}
    assert by_lo[0.0]["n"] == 2 and by_lo[0.0]["accuracy"] == 0.5   # 0.5 and 0 in (0, .5]
    assert by_lo[0.5]["n"] == 1 and by_lo[0.5]["accuracy"] == 0.5   # 0.6000000004 rounds to .6
    assert by_lo[0.9]["n"] == 1 and by_lo[0.95]["n"] == 0


def test_confidence_bins_and_missing():
    items = [{"confidence": 0.55, "correct": True}, {"confidence": 0.58, "correct": False},
             {"confidence": 0.97, "correct": True}, {"confidence": 1.0, "correct": True},
             {"confidence": None, "correct": True}, {"correct": False}]
    r = confidence(items)
    assert r["n"] == 4 and r["n_missing_confidence"] == 2
    by_lo = {b["lo"]: b for b in r["bins"]}
    assert by_lo[0.5]["n"] == 2 and by_lo[0.5]["accuracy"] == 0.5
    assert by_lo[0.95]["n"] == 2 and by_lo[0.95]["accuracy"] == 1.0
    # hand: bin .5 |0.5-0.565|*2/4 ; bin .95 |1-0.985|*2/4
    assert r["ece_official_bins"] == pytest.approx(0.065 / 2 + 0.015 / 2)
    # torchmetrics, 10 uniform bins: same grouping here
    assert r["ece"] == pytest.approx(0.065 / 2 + 0.015 / 2, abs=1e-6)


def test_confidence_all_missing_does_not_crash():
    r = confidence([{"confidence": None, "correct": True}])
    assert r["n"] == 0 and r["n_missing_confidence"] == 1 and math.isnan(r["ece"])
