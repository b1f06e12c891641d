import numpy as np
import pytest
import torch

from depictqa.prompts import IGNORE, PromptBuilder
from tests.conftest import TEXTS


@pytest.fixture(scope="module")
def tokenizer():
    from depictqa.llms.tokenizers import train_bpe

    official = PromptBuilder(None, "depictqa-vicuna").fixed_texts()
    return train_bpe([*official, *TEXTS], vocab_size=400)


def test_official_compare_layout_token_for_token(tokenizer):
    """The expected sequence is written out here from the official layout, piece by piece."""
    builder = PromptBuilder(tokenizer, "depictqa-vicuna")
    enc = builder.encode("quality_compare", True, "Which image is better?", "Image A", [3, 2, 2])
    system = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
              "helpful, detailed, and polite answers to the human's questions. As an AI assistant, you are "
              "performing an image quality assessment task. A high-quality Reference Image is provided to "
              "assist the evaluation.")
    tok = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    IMG = None
    expected = ([tokenizer.bos_token_id] + tok(system + "\n\n </s> Reference Image: <Img-Reference>") + [IMG] * 3
                + tok("</Img-Reference>\n\n </s> Image A: <Img-A>") + [IMG] * 2
                + tok("</Img-A>\n\n </s> Image B: <Img-B>") + [IMG] * 2
                + tok("</Img-B>\n\n </s> USER: Which image is better?\n   ASSISTANT: ")
                + tok("Image A\n </s>"))
    got = [None if m else int(i) for i, m in zip(enc.input_ids, enc.image_mask)]
    assert got == expected
    # " </s> " really is the EOS token inside the text
    assert tokenizer.eos_token_id in tok("\n\n </s> ")


BASE = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the human's questions.")
QUALITY = BASE + " As an AI assistant, you are performing an image quality assessment task."
FR = QUALITY + " A high-quality Reference Image is provided to assist the evaluation."
DESCRIPTION = BASE + (" As an AI assistant, you are performing an image detail description task, and your goal is "
                      "to generate a natural language description of an image that accurately and comprehensively "
                      "conveys its visual content.")
E = "\n\n </s> "
# The official layout of every task, written out string by string (text pieces around the image
# slots, then the training target); the query is "Q?" and the answer "A".
OFFICIAL_PIECES = {
    "quality_compare": [FR + E + "Reference Image: <Img-Reference>", "</Img-Reference>" + E + "Image A: <Img-A>",
                        "</Img-A>" + E + "Image B: <Img-B>", "</Img-B>" + E + "USER: Q?\n   ASSISTANT: "],
    "quality_compare_noref": [QUALITY + E + "Image A: <Img-A>", "</Img-A>" + E + "Image B: <Img-B>",
                              "</Img-B>" + E + "USER: Q?\n   ASSISTANT: "],
    "quality_single_A": [FR + E + "Reference Image: <Img-Reference>", "</Img-Reference>" + E + "Image: <Img>",
                         "</Img>" + E + "USER: Q?\n   ASSISTANT: "],
    "quality_single_B": [FR + E + "Reference Image: <Img-Reference>", "</Img-Reference>" + E + "Image: <Img>",
                         "</Img>" + E + "USER: Q?\n   ASSISTANT: "],
    "quality_single_A_noref": [QUALITY + E + "Image: <Img>", "</Img>" + E + "USER: Q?\n   ASSISTANT: "],
    "quality_single_B_noref": [QUALITY + E + "Image: <Img>", "</Img>" + E + "USER: Q?\n   ASSISTANT: "],
    "description": [DESCRIPTION + E + "USER: <Img>", "</Img> Q?   ASSISTANT: "],
}


@pytest.mark.parametrize("task", sorted(OFFICIAL_PIECES))
def test_every_task_matches_the_official_layout_in_training_and_inference(tokenizer, task):
    builder = PromptBuilder(tokenizer, "depictqa-vicuna")
    query = "<image>\nQ?" if task == "description" else "Q?"  # official description queries carry <image>
    for answer, target in (("A", "A\n </s>"), (None, None)):
        assert builder.pieces(task, False, query, answer) == (OFFICIAL_PIECES[task], target)
    enc = builder.encode(task, False, query, "A", [2] * (len(OFFICIAL_PIECES[task]) - 1))
    tok = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    expected = [tokenizer.bos_token_id]
    for i, piece in enumerate(OFFICIAL_PIECES[task]):  # each piece tokenised on its own
        expected += tok(piece) + ([None] * 2 if i < len(OFFICIAL_PIECES[task]) - 1 else [])
    expected += tok("A\n </s>")
    assert [None if m else int(i) for i, m in zip(enc.input_ids, enc.image_mask)] == expected
    assert tok(OFFICIAL_PIECES[task][-1])[-1] != tok(OFFICIAL_PIECES[task][-1].rstrip())[-1]  # the space is kept


def test_single_image_tasks_use_the_generic_tag_and_nr_drops_the_reference(tokenizer):
    builder = PromptBuilder(tokenizer, "depictqa-vicuna")
    fr, _ = builder.pieces("quality_single_B", True, "q?", None)
    nr, _ = builder.pieces("quality_single_A_noref", False, "q?", None)
    assert fr[0].endswith("Reference Image: <Img-Reference>") and fr[1].startswith("</Img-Reference>")
    assert fr[1].endswith("Image: <Img>") and fr[2].startswith("</Img>")
    assert len(nr) == 2 and "Reference" not in "".join(nr) and nr[0].endswith("Image: <Img>")
    assert "Reference Image is provided" in fr[0] and "Reference Image is provided" not in nr[0]
    caption, _ = builder.pieces("description", False, "Describe.", None)
    assert "quality assessment" not in caption[0] and "detail description task" in caption[0]


@pytest.mark.parametrize("template", ["depictqa-vicuna", "compact"])
def test_loss_mask_covers_exactly_the_answer(tokenizer, template):
    builder = PromptBuilder(tokenizer, template)
    answer = "Image A is better than Image B."
    enc = builder.encode("compare", False, "Which image is better?", answer, [4, 4])
    prompt = builder.encode("compare", False, "Which image is better?", None, [4, 4])
    n = len(prompt)
    assert torch.equal(enc.input_ids[:n], prompt.input_ids)
    assert (enc.labels[:n] == IGNORE).all() and (enc.labels[n:] != IGNORE).all()
    assert torch.equal(enc.labels[n:], enc.input_ids[n:])
    decoded = tokenizer.decode(enc.labels[n:], skip_special_tokens=True)
    assert decoded.strip() == answer
    assert enc.labels[-1] == tokenizer.eos_token_id  # the model learns to stop
    assert int(enc.image_mask.sum()) == 8 and not (enc.image_mask & (enc.labels != IGNORE)).any()


def test_chat_template_layout():
    from depictqa.llms.tokenizers import train_bpe

    tok = train_bpe(TEXTS, vocab_size=300)
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    builder = PromptBuilder(tok, "chat")
    pieces, target = builder.pieces("compare", True, "Which is better?", "Image B")
    assert len(pieces) == 4 and pieces[0].startswith("<|system|>") and pieces[-1].endswith("<|assistant|>")
    assert target == "Image B</s>"
    enc = builder.encode("compare", True, "Which is better?", "Image B", [2, 2, 2])
    assert int(enc.image_mask.sum()) == 6


def test_wrong_number_of_images_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="3 image slot"):
        PromptBuilder(tokenizer, "compact").encode("compare", True, "q", "a", [2, 2])
    with pytest.raises(ValueError, match="unknown prompt template"):
        PromptBuilder(tokenizer, "vicuna")


def test_a_tokenizer_trained_on_the_data_keeps_the_template_words_whole():
    # Each prompt holds the template once, so the BPE corpus must weigh it as often as the data;
    # once, "ASSISTANT" stayed nine byte tokens in every training sample.
    from depictqa.build import build_model
    from tests.conftest import tiny_recipe

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(3, 9))) for _ in range(300)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(2000)]  # a corpus whose own words compete for merges
    model = build_model(tiny_recipe("model.llm.tokenizer.train.vocab_size=600"), texts=texts)
    for word in ("USER", "ASSISTANT"):
        assert len(model.tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
