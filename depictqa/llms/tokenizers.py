"""Tokenizers: load a model's own, train a small byte-level BPE on the data (tiny recipes), or
take a pretrained one by name (:data:`NAMED`: ``minilm``, see :mod:`depictqa.llms.words`).

Training uses the ``tokenizers`` library; the result is a ``PreTrainedTokenizerFast`` that saves
and loads like any Hugging Face tokenizer, so a checkpoint carries it.
"""

from __future__ import annotations

from typing import Any, Iterable

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
IMAGE_TAGS = ("<Img-Reference>", "</Img-Reference>", "<Img-A>", "</Img-A>", "<Img-B>", "</Img-B>",
              "<Img>", "</Img>")


def train_bpe(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with BOS/EOS/PAD and the image tags as
    single special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [PAD, BOS, EOS, *IMAGE_TAGS]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   clean_up_tokenization_spaces=False)


def load_tokenizer(path: str, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, **kwargs)
    if tok.pad_token is None:
        # LLaMA-family tokenizers ship without a pad token; padding positions are masked anyway.
        tok.pad_token = tok.unk_token or tok.eos_token
    return tok


def minilm() -> Any:
    """all-MiniLM-L6-v2's WordPiece tokenizer with BOS/EOS and the image tags as special tokens."""
    from depictqa.llms.words import minilm_tokenizer

    return minilm_tokenizer({"bos_token": BOS, "eos_token": EOS, "additional_special_tokens": list(IMAGE_TAGS)})


# Pretrained tokenizers a recipe selects by name (``model.llm.tokenizer: minilm``); a name here
# wins over a folder of the same name.
NAMED = {"minilm": minilm}
