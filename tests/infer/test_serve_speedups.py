"""The serving speed-ups compute what the plain computation does: detail confidence with repeated
sentences encoded once, on the Assessor's device, and image features shared between calls."""

from __future__ import annotations

import pytest
import torch

from depictqa.infer import confidence as C
from tests.infer.conftest import FakeSentenceModel


def decode(ids: list[int]) -> str:
    words = {1: "the", 2: "image", 3: "is", 4: "blurry", 5: "and", 6: "very", 7: "noisy", 8: "dark"}
    return " ".join(words[i] for i in ids)


def one_at_a_time(encoder, text, ids, probs) -> float:
    """The un-deduplicated computation of ONE answer: the answer and each ablation, encoded together."""
    emb = encoder.encode([text, *C.ablated_texts(ids, decode)])
    return C.weighted_confidence((1.0 - emb[1:] @ emb[0]).clamp(min=0.0), probs)


@pytest.fixture
def fake(monkeypatch):
    model = FakeSentenceModel()
    monkeypatch.setattr(C, "_SENTENCE_MODEL", model)
    return model


def test_detail_confidences_encode_each_sentence_once_and_equal_the_per_answer_computation(fake):
    rows = [[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 6, 6, 8], [2, 3, 4, 5, 7], [1, 2, 3, 4, 5, 6, 7]]
    texts = [decode(r) for r in rows]
    probs = [torch.linspace(0.3, 0.9, len(r)) * (1 + i) / 6 for i, r in enumerate(rows)]  # a different p per answer
    got = C.detail_confidences(texts, rows, probs, decode)
    (encoded,) = fake.calls  # ONE encode call ...
    assert len(encoded) == len(set(encoded))  # ... of distinct sentences
    everything = {s for t, r in zip(texts, rows) for s in [t, *C.ablated_texts(r, decode)]}
    assert set(encoded) == everything
    assert len(encoded) < sum(len(r) + 1 for r in rows)  # repeats were skipped
    expected = [one_at_a_time(fake, t, r, p) for t, r, p in zip(texts, rows, probs)]
    assert got == pytest.approx(expected, abs=1e-6)
    assert got[0] != pytest.approx(got[1])  # same answer, different probabilities: kept apart


def test_detail_confidence_of_an_empty_answer_is_none(fake):
    assert C.detail_confidences(["", decode([1, 2])], [[], [1, 2]], [torch.ones(0), torch.ones(2)], decode)[0] is None


def test_the_sentence_model_moves_to_the_requested_device(fake):
    assert C.sentence_model() is fake and next(fake.parameters()).device.type == "cpu"
    C.detail_confidences([decode([1, 2, 4])], [[1, 2, 4]], [torch.ones(3)], decode, device="meta")
    assert next(C.sentence_model().parameters()).device.type == "meta"


def test_the_assessor_passes_its_device_to_detail_confidence(assessor, images, monkeypatch):
    seen = {}

    def spy(texts, ids, probs, decode, device=None):
        seen["device"] = device
        return [0.5] * len(texts)

    monkeypatch.setattr(C, "is_brief", lambda text: False)
    monkeypatch.setattr(C, "detail_confidences", spy)
    assert assessor.assess(images[0], style="detail", max_new_tokens=4).confidence == 0.5
    assert seen["device"] == assessor.device


def count_encoded(model):
    counted = {"images": 0}

    def hook(module, args):
        counted["images"] += args[0].shape[0]

    return counted, model.encoder.register_forward_pre_hook(hook)


def test_shared_image_features_run_the_encoder_once_per_image_and_change_no_result(assessor, images):
    from depictqa.infer.assessor import _pixel_key
    from depictqa.infer.batching import prepare

    a, b = [images[0], images[1], images[0]], [images[1], images[0], images[1]]  # the same pair, asked 3 times
    requests = [assessor._request("compare", {"a": x, "b": y}, "single", None) for x, y in zip(a, b)]
    distinct = {_pixel_key(px) for r in requests for px in prepare(assessor.model, r, assessor.image_cfg).pixels}
    plain_counted, handle = count_encoded(assessor.model)
    try:
        plain_answers = assessor.compare(a, b, style="single", max_new_tokens=6)
        plain_prefs = assessor.prefer(a, b)
    finally:
        handle.remove()
    shared_counted, handle = count_encoded(assessor.model)
    try:
        with assessor.sharing_image_features():
            answers = assessor.compare(a, b, style="single", max_new_tokens=6)
            prefs = assessor.prefer(a, b)
    finally:
        handle.remove()
    assert plain_counted["images"] == 12  # 6 images in each call
    assert 2 <= len(distinct) < 6
    assert shared_counted["images"] == len(distinct)  # each distinct prepared image once, for both calls
    assert assessor.model.feature_cache is None  # forgotten on leaving
    assert [x.text for x in answers] == [x.text for x in plain_answers]
    assert [x.confidence for x in answers] == pytest.approx([x.confidence for x in plain_answers], abs=1e-5)
    assert [x.p_a for x in prefs] == pytest.approx([x.p_a for x in plain_prefs], abs=1e-5)
