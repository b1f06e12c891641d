"""A multi-turn conversation trains on every answer, in the official layout of later turns, and on
nothing else (no question, system text or image position carries a label)."""

import pytest
import torch

from depictqa.prompts import IGNORE, PromptBuilder
from tests.conftest import TEXTS


@pytest.fixture(scope="module")
def tokenizer():
    from depictqa.llms.tokenizers import train_bpe

    official = PromptBuilder(None, "depictqa-vicuna").fixed_texts()
    return train_bpe([*official, *TEXTS, "Why is it blurry? Because of motion. And the noise? It is mild."],
                     vocab_size=400)


def _decoded(tokenizer, ids: torch.Tensor) -> str:
    return tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)


@pytest.mark.parametrize("template", ["depictqa-vicuna", "compact"])
def test_every_answer_is_a_target_and_nothing_else(tokenizer, template):
    builder = PromptBuilder(tokenizer, template)
    turns = [("Why is it blurry?", "Because of motion."), ("And the noise?", "It is mild.")]
    enc = builder.encode("quality_single_A", True, "What is wrong with the image?", "Blur and noise", [3, 3],
                         later=turns)
    single = builder.encode("quality_single_A", True, "What is wrong with the image?", "Blur and noise", [3, 3])
    assert torch.equal(enc.input_ids[:len(single)], single.input_ids)  # the first turn is unchanged
    assert (enc.labels[enc.image_mask] == IGNORE).all()
    # the labelled tokens are exactly the answers (each closed by the end of turn), in order
    labelled = enc.labels[enc.labels != IGNORE]
    expected = [builder.later_turn("", a)[1] for a in ("Blur and noise", "Because of motion.", "It is mild.")]
    expected_ids = sum((tokenizer(t, add_special_tokens=False)["input_ids"] for t in expected), [])
    assert labelled.tolist() == expected_ids
    # the later questions are in the input, unlabelled, in the template's later-turn layout
    text = _decoded(tokenizer, enc.input_ids[~enc.image_mask])
    for q, _ in turns:
        assert builder.later_turn(q, "x")[0].strip() in text
    unlabelled = _decoded(tokenizer, enc.input_ids[(enc.labels == IGNORE) & ~enc.image_mask])
    assert "Why is it blurry?" in unlabelled and "Because of motion" not in unlabelled


def test_later_turns_use_the_official_layout(tokenizer):
    builder = PromptBuilder(tokenizer, "depictqa-vicuna")
    assert builder.later_turn("Q?", "A.") == ("USER: Q?\n   ASSISTANT: ", "A.\n </s>")


def test_a_sample_with_several_turns_keeps_them_all(tokenizer):
    """The data path (SampleEncoder) passes every turn of a stored conversation to the prompt."""
    from depictqa.data.datamodule import SampleEncoder
    from depictqa.data.schema import Sample

    conv = [{"from": "human", "value": "What is wrong?"}, {"from": "gpt", "value": "Blur"},
            {"from": "human", "value": "How bad?"}, {"from": "gpt", "value": "Mild."}]
    sample = Sample(key="k", task="assess", reference=False, conversations=conv,
                    images={"a": torch.zeros(3, 28, 28)})
    enc = SampleEncoder(PromptBuilder(tokenizer), patch_size=14, tokens_per_image=lambda h, w: 4)
    item = enc(sample)
    labelled = item.encoded.labels[item.encoded.labels != IGNORE].tolist()
    tok = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert labelled == tok("Blur\n </s>") + tok("Mild.\n </s>")
    prompt_only = enc(sample, with_answer=False).encoded  # inference: the first question, no targets
    assert (prompt_only.labels == IGNORE).all() and len(prompt_only) < len(item.encoded)
