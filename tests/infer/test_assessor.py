"""Batches equal one request at a time; results are typed; bad inputs become error results."""

from __future__ import annotations

import math

import pytest

from depictqa.infer.results import LEVELS, Answer, Preference, Score


def _close(x: float | None, y: float | None, tol: float = 1e-4) -> bool:
    return x is not None and y is not None and math.isclose(x, y, abs_tol=tol)


def test_assess_batch_equals_one_at_a_time(assessor, images):
    batch = assessor.assess(images, style="brief", max_new_tokens=12)
    assert len(batch) == len(images) and all(isinstance(a, Answer) for a in batch)
    for image, got in zip(images, batch):
        alone = assessor.assess(image, style="brief", max_new_tokens=12)
        assert got.text == alone.text and got.num_tokens == alone.num_tokens
        assert _close(got.confidence, alone.confidence)
    assert {a.task for a in batch} == {"quality_single_A_noref"}


def test_fr_compare_batch_equals_one_at_a_time(assessor, images):
    a, b, refs = images[:3], images[1:4], images[2:5]
    batch = assessor.compare(a, b, reference=refs, style="single", max_new_tokens=8)
    for x, y, r, got in zip(a, b, refs, batch):
        alone = assessor.compare(x, y, reference=r, style="single", max_new_tokens=8)
        assert got.text == alone.text and _close(got.confidence, alone.confidence)
        assert got.task == "quality_compare"


def test_score_batch_equals_one_at_a_time_and_is_an_expectation(assessor, images):
    batch = assessor.score(images)
    assert all(isinstance(s, Score) for s in batch)
    for image, got in zip(images, batch):
        alone = assessor.score(image)
        assert _close(got.score, alone.score, 1e-5)
        assert list(got.probabilities) == list(LEVELS)
        assert math.isclose(sum(got.probabilities.values()), 1.0, abs_tol=1e-5)
        expected = sum(w * got.probabilities[lv] for w, lv in zip((5, 4, 3, 2, 1), LEVELS))
        assert math.isclose(got.score, expected, abs_tol=1e-5) and 1.0 <= got.score <= 5.0
        assert 0.0 <= got.normalised <= 1.0


def test_prefer_batch_equals_one_at_a_time_and_reports_both_orders(assessor, images):
    a, b = images[:3], images[2:5]
    batch = assessor.prefer(a, b, reference=images[0], both_orders=True)
    assert all(isinstance(p, Preference) for p in batch)
    for x, y, got in zip(a, b, batch):
        ab, ba = assessor.prefer(x, y, reference=images[0]), assessor.prefer(y, x, reference=images[0])
        assert _close(got.p_a, ab.p_a, 1e-5) and _close(got.p_b_when_first, ba.p_a, 1e-5)
        # order consistency is reported, not forced: the sum need not be 1
        assert 0.0 <= got.order_sum <= 2.0 and _close(got.order_sum, ab.p_a + ba.p_a, 1e-5)
        assert got.text in ("Image A", "Image B") and 0.5 <= got.confidence <= 1.0
        # the answer by both orders: P(A better) when asked A-then-B and when asked B-then-A
        two = got.both_orders_answer()
        assert _close(two["p_a_as_given"], ab.p_a, 1e-5) and _close(two["p_a_swapped"], 1.0 - ba.p_a, 1e-5)
        assert _close(two["p_a"], (ab.p_a + 1.0 - ba.p_a) / 2, 1e-5)
        assert two["text"] == ("Image A" if two["p_a"] >= 0.5 else "Image B")
        assert two["confidence"] == max(two["p_a"], 1.0 - two["p_a"])
    with pytest.raises(ValueError, match="both_orders=True"):
        assessor.prefer(a[0], b[0]).both_orders_answer()


def test_bad_image_gives_an_error_result_and_the_rest_still_run(assessor, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    out = assessor.assess([images[0], str(tmp_path / "missing.png"), str(broken), images[1]], max_new_tokens=4)
    assert out[0].error is None and out[3].error is None and out[0].text is not None
    assert "missing.png" in out[1].error and "broken.png" in out[2].error
    assert out[1].text is None and out[1].confidence is None
    assert assessor.score(str(broken)).error is not None
    assert assessor.prefer(images[0], str(broken)).error is not None


def test_inputs_paths_pil_and_arrays_agree(assessor, images, tmp_path):
    from PIL import Image

    path = tmp_path / "x.png"
    Image.fromarray(images[0]).save(path)
    by_array, by_path, by_pil = (assessor.score(x) for x in (images[0], str(path), Image.open(path)))
    assert _close(by_array.score, by_path.score, 1e-6) and _close(by_pil.score, by_path.score, 1e-6)


def test_mismatched_list_lengths_are_refused(assessor, images):
    with pytest.raises(ValueError, match="image_b"):
        assessor.compare(images[:3], images[:2])
