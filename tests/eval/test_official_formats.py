"""Every official meta variant, scored as the official scripts score it (expected values by hand)."""

import json

import pytest

from depictqa.eval import EvalInputError, gt_choice, gt_labels, identification, load_ground_truth, match, rating
from depictqa.eval.evaluate import evaluate
from depictqa.labels import DISTORTIONS


def _write(tmp_path, name, records):
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def _multi(i, classes, answer):
    """A record of an official multi-distortion meta: plural fields, no task, no style."""
    return {"id": f"m{i}", "image_ref": None, "image_A": f"m{i}.png", "image_B": None,
            "query": "What distortions does this image have? Answer the question using a single word or phrase.",
            "answer": answer, "distortion_classes": classes,
            "distortion_names": [f"{c}_x" for c in classes], "severities": [2] * len(classes)}


def test_official_multi_distortion_meta(tmp_path):
    gt = load_ground_truth(_write(tmp_path, "multi.json", [
        _multi(0, ["blur", "noise"], "Blur and noise"),
        _multi(1, ["blur", "noise"], "Blur and noise"),
        _multi(2, ["blur", "noise"], "Blur and noise"),
        _multi(3, ["darken", "compression"], "Insufficient brightness and compression"),
        _multi(4, ["noise"], "Noise"),
    ]))
    preds = [{"id": "m0", "text": "noise and Blur", "confidence": 0.9},   # same set: 1
             {"id": "m1", "text": "Blur", "confidence": 0.55},            # 1 of max(1, 2): 1/2
             {"id": "m2", "text": "Blur and noise and pixelation"},       # 2 of max(3, 2): 2/3
             {"id": "m3", "text": "Compression", "confidence": 0.97},     # 1/2
             {"id": "m4", "text": "Noise and blur", "confidence": 0.7}]   # 1 of max(2, 1): 1/2
    res = evaluate(match(preds, gt).pairs, gt, ["identification", "confidence"])
    ident = res["identification"]
    assert ident["n_multi"] == 5 and ident["n_single"] == 0  # a multi meta is scored as one, even "Noise"
    assert ident["multi_accuracy"] == pytest.approx((1 + 1 / 2 + 2 / 3 + 1 / 2 + 1 / 2) / 5)
    assert gt_labels(gt[3]) == {DISTORTIONS["darken"][0], DISTORTIONS["compression"][0]}
    bins = {b["lo"]: b for b in res["confidence"]["bins"]}
    assert bins[0.8]["n"] == 1 and bins[0.8]["accuracy"] == 1.0      # 0.9 lies in (0.8, 0.9]
    assert bins[0.5]["accuracy"] == 0.5 and bins[0.95]["accuracy"] == 0.5
    assert res["confidence"]["n_missing_confidence"] == 1


def test_answer_only_meta(tmp_path):
    """No task, no distortion fields, no A_better_B: the truth comes from the answer."""
    gt = load_ground_truth(_write(tmp_path, "answers.json", [
        {"id": "s0", "image_ref": "r.png", "image_A": "a.png", "image_B": None, "query": "q", "answer": "Noise"},
        {"id": "s1", "image_ref": "r.png", "image_A": "a.png", "image_B": None, "query": "q", "answer": "Blur"},
        {"id": "s2", "image_ref": "r.png", "image_A": "a.png", "image_B": None, "query": "q", "answer": "None"},
        {"id": "c0", "image_ref": "r.png", "image_A": "a.png", "image_B": "b.png", "query": "q", "answer": "Image A"},
        {"id": "c1", "image_ref": "r.png", "image_A": "a.png", "image_B": "b.png", "query": "q", "answer": "Image B"},
        {"id": "c2", "image_ref": None, "image_A": "a.png", "image_B": "b.png", "query": "q",
         "answer": "Image A shows heavy noise, while Image B is only slightly blurred. Therefore, Image B is better."},
    ]))
    assert [gt_choice(r) for r in gt[3:]] == ["A", "B", "B"]
    preds = [{"id": "s0", "text": "Noise "}, {"id": "s1", "text": "blur"}, {"id": "s2", "text": "None"},
             {"id": "c0", "text": "Image A"}, {"id": "c1", "text": "Image A"}, {"id": "c2", "text": "Image B"}]
    res = evaluate(match(preds, gt).pairs, gt, ["identification", "rating"])
    # exact match after stripping, case included (the official rule): "blur" != "Blur"
    assert res["identification"]["single_accuracy"] == pytest.approx(2 / 3)
    assert res["identification"]["single_partial_credit"] == 1.0  # the parsed variant forgives case
    assert res["rating"]["n"] == 3 and res["rating"]["accuracy"] == pytest.approx(2 / 3)


def test_refab_meta_with_a_better_b_and_official_dict_distortions():
    gt = [{"id": "p", "image_ref": "r", "image_A": "a", "image_B": "b", "A_better_B": False,
           "distortions_A": {"distortion_classes": ["noise"], "distortion_names": ["noise_x"], "severities": [3]}},
          {"id": "t", "image_ref": "r", "image_A": "a", "image_B": "b", "A_better_B": None}]
    res = rating(match([{"id": "p", "text": "Image B"}, {"id": "t", "text": "Image A"}], gt).pairs)
    assert res["accuracy"] == 1.0 and res["n_ties_skipped"] == 1
    single = {"id": "a", "task": "quality_single_A", "image_A": "a",
              "distortions_A": {"distortion_classes": ["contrast_weaken", "blur"]}}
    assert gt_labels(single) == {DISTORTIONS["contrast_weaken"][0], DISTORTIONS["blur"][0]}


def test_single_distortion_headline_is_exact_match_and_partial_credit_has_its_own_name():
    gt = [{"id": str(i), "task": "quality_single_A_noref", "image_A": "a", "answer": "Noise",
           "distortion_class": "noise", "distortion_name": "noise_gaussian", "severity": 2} for i in range(2)]
    r = identification(match([{"id": "0", "text": "Noise"}, {"id": "1", "text": "Noise and blur"}], gt).pairs)
    assert r["single_accuracy"] == 0.5                       # official: exact match
    assert r["single_partial_credit"] == pytest.approx(0.75)  # 1 and 1/2
    assert r["n_multi"] == 0


def test_older_labels_are_read_as_today_s_labels():
    legacy = {"id": "x", "task": "quality_single_A", "image_A": "a", "answer": "Contrast strengthen"}
    official = {"id": "y", "task": "quality_single_A", "image_A": "a", "answer": "Overly high contrast"}
    assert gt_labels(legacy) == gt_labels(official) == {DISTORTIONS["contrast_strengthen"][0]}


@pytest.mark.parametrize("record, field", [
    ({"id": "c", "image_ref": "r", "image_A": "a", "image_B": "b", "answer": "Both are fine."}, "answer"),
    ({"id": "c", "image_ref": "r", "image_A": "a", "image_B": "b", "A_better_B": "yes"}, "A_better_B"),
    ({"id": "m", "image_A": "a", "distortion_classes": "blur"}, "distortion_classes"),
    ({"id": "m", "image_A": "a", "distortion_classes": ["blur", "noise"], "severities": [1]}, "severities"),
    ({"id": "m", "image_A": "a", "distortion_classes": ["smudge"]}, "distortion_classes"),
    ({"id": "s", "image_A": "a", "answer": 3}, "answer"),
])
def test_unreadable_record_names_file_record_and_field(tmp_path, record, field):
    path = _write(tmp_path, "bad.json", [{"id": "ok", "image_A": "a", "answer": "Noise"}, record])
    with pytest.raises(EvalInputError) as err:
        load_ground_truth(path)
    message = str(err.value)
    assert "bad.json" in message and f"record 1 ({record['id']})" in message and field in message


def test_failed_inference_record_is_readable_by_the_official_rules():
    from depictqa.eval import official_single_score
    from depictqa.infer.run_meta import record

    failed = record("x", "image missing")
    assert failed["text"] == "" and failed["error"] == "image missing" and failed["confidence"] is None
    assert official_single_score(failed["text"], "Noise") == 0.0  # the official scripts call text.strip()


def test_older_error_records_with_null_text_still_load(tmp_path):
    from depictqa.eval import load_predictions

    path = _write(tmp_path, "p.json", [{"id": "x", "text": None, "confidence": None, "error": "boom"}])
    assert load_predictions(path)[0]["text"] == ""
    _write(tmp_path, "q.json", [{"id": "x", "text": None}])  # null text without an error is refused
    with pytest.raises(EvalInputError, match="record 0 .x. 'text'"):
        load_predictions(tmp_path / "q.json")
