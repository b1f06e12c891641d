"""``model.llm.output_vocab: answers``: the LM head scores only the tokens the data's answers use.
Its training loss is the full head's with the other words ruled out; ``fit`` builds it from every
answer of the data; checkpoints rebuild it without the data; generation emits only its words."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch
import torch.nn.functional as F

from depictqa.llms.answer_head import AnswerHead
from depictqa.llms.hf import build_hf
from tests.conftest import TEXTS, random_image, tiny_recipe, write_tiny_shards

LM = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
          num_key_value_heads=2, tie_word_embeddings=False)


def _lm(**kwargs):
    torch.manual_seed(0)
    return build_hf(config=dict(LM), tokenizer={"train": {"vocab_size": 300}}, texts=TEXTS, **kwargs)


def test_the_head_scores_its_ids_and_rules_out_every_other_word():
    lm = _lm()
    full = lm.logits(torch.randn(5, 32)).shape[-1]
    hidden = torch.randn(7, 32)
    before = lm.logits(hidden)
    ids = torch.tensor([3, 40, 41, 77, lm.tokenizer.eos_token_id])
    lm.restrict_output(ids)
    after = lm.logits(hidden)
    assert after.shape == before.shape == (7, full)
    kept = ids.unique()
    torch.testing.assert_close(after[:, kept], before[:, kept])  # the rows are the full head's
    outside = torch.ones(full, dtype=torch.bool)
    outside[kept] = False
    assert bool((after[:, outside] == torch.finfo(after.dtype).min).all())
    # training's view: logits over the kept words only, targets as their rows; the loss equals the
    # full-vocabulary loss with the other words ruled out
    target = kept[torch.tensor([0, 1, 2, 3, 4, 0, 2])]
    logits, rows = lm.answer_logits(hidden, target)
    assert logits.shape == (7, kept.numel()) and torch.equal(kept[rows], target)
    torch.testing.assert_close(F.cross_entropy(logits, rows), F.cross_entropy(after, target))
    assert not torch.allclose(F.cross_entropy(logits, rows), F.cross_entropy(before, target))


def test_a_target_outside_the_head_is_named():
    lm = _lm()
    lm.restrict_output([5, 6, 7])
    with pytest.raises(ValueError, match=r"answer token id\(s\) \[9\] are not among the 3"):
        lm.answer_logits(torch.randn(2, 32), torch.tensor([5, 9]))


def test_restricting_again_keeps_learnt_rows_and_starts_new_ones():
    lm = _lm()
    lm.restrict_output([5, 6, 7])
    head = lm.model.get_output_embeddings()
    with torch.no_grad():
        head.weight.fill_(3.0)
    lm.restrict_output([5, 6, 7])  # the same ids: the same parameter (an optimiser may hold it)
    assert lm.model.get_output_embeddings() is head
    lm.restrict_output([6, 7, 8])
    new = lm.model.get_output_embeddings()
    assert isinstance(new, AnswerHead) and new.ids.tolist() == [6, 7, 8]
    assert bool((new.weight[:2] == 3.0).all()) and not bool((new.weight[2] == 3.0).any())


def test_bad_settings_name_what_to_change():
    with pytest.raises(ValueError, match="tie_word_embeddings: false"):
        build_hf(config={**LM, "tie_word_embeddings": True}, tokenizer={"train": {"vocab_size": 300}}, texts=TEXTS,
                 output_vocab="answers")
    with pytest.raises(ValueError, match="'answers' or null"):
        _lm(output_vocab="all")
    with pytest.raises(ValueError, match="models built from 'config'"):
        build_hf(path="some/model", output_vocab="answers")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_tiny_shards(out / "brief", n=20, prefix="brief")
    return out


def _answers(folder) -> set[str]:
    out = set()
    for path in folder.glob("*.tar"):
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    turns = json.load(io.BytesIO(tar.extractfile(member).read()))["conversations"]
                    out |= {t["value"] for t in turns if t["from"] == "gpt"}
    return out


def test_fit_builds_the_head_from_the_answers_and_a_checkpoint_rebuilds_it(shards, tmp_path):
    from depictqa.checkpoint import load_pretrained
    from depictqa.infer import Assessor
    from depictqa.train import fit

    recipe = tiny_recipe(f"data.sources={{brief: {{shards: '{shards}/brief/*.tar'}}}}", "data.batch_size=4",
                         f"out_dir={tmp_path / 'run'}", "trainer.max_steps=4", "model.llm.output_vocab=answers")
    last = fit(recipe)
    model = load_pretrained(last)
    head = model.llm.model.get_output_embeddings()
    assert isinstance(head, AnswerHead)
    # exactly the tokens of the answers as training targets end them (compact: " {answer}</s>")
    tok = model.tokenizer
    want = {tok.eos_token_id}
    for answer in _answers(shards / "brief"):
        want |= set(tok(f" {answer}</s>", add_special_tokens=False)["input_ids"])
    assert set(head.ids.tolist()) == want and len(want) < len(tok) // 4
    # generation emits only those words (the tiny model barely trained: any of them will do)
    embeds = torch.randn(3, 6, model.llm.hidden_size)
    new = model.llm.generate(inputs_embeds=embeds, attention_mask=torch.ones(3, 6, dtype=torch.long),
                             max_new_tokens=12, do_sample=True, min_new_tokens=12)
    assert new.shape[1] == 12 and set(new.flatten().tolist()) <= want
    # and the library's own generation path answers through it
    answers = Assessor.from_pretrained(last).assess([random_image(1), random_image(2)], style="brief",
                                                    max_new_tokens=8)
    assert all(a.error is None and a.text for a in answers)
