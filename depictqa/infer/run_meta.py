"""Answer official inference meta entries with an :class:`~depictqa.infer.assessor.Assessor`.

The ``depictqa infer`` command (``depictqa/commands/infer.py``) checks its options, reads the meta
and opens the partial results (:mod:`depictqa.infer.meta`), then calls :func:`answer_entries`.
Records keep the official keys ``{id, text, confidence}``; a failed item has ``text`` "" (a string,
so the official scripts can read the file), ``confidence`` null and an ``error``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

# text: generate answers; prefer: P(A better) from one forward pass (compare tasks);
# score: 1-5 quality from one forward pass (single tasks)
MODES = ("text", "prefer", "score")


def answer_entries(assessor: Any, pending: list[dict[str, Any]], task: str, root: Path, partial: Any, *,
                   mode: str = "text", style: str = "brief", both_orders: bool = False, batch_size: int = 8,
                   generation: dict[str, Any] | None = None, done: int = 0,
                   progress: bool = True) -> tuple[int, float]:
    """Answer ``pending`` chunk by chunk, adding records to ``partial``; returns (images read, seconds).

    ``done`` is the count of entries already answered (where the progress bar starts).
    """
    from tqdm import tqdm

    from depictqa.infer.meta import image_count, to_request

    per_item = image_count(task)
    images, start = 0, time.perf_counter()
    with tqdm(total=done + len(pending), initial=done, unit="item", desc=f"infer {task}", file=sys.stderr,
              disable=not progress) as bar:
        for lo in range(0, len(pending), batch_size):
            chunk = pending[lo:lo + batch_size]
            requests = [to_request(e, task, root, None) for e in chunk]
            records = answer_requests(assessor, requests, mode=mode, style=style, both_orders=both_orders,
                                      generation=generation)
            images += per_item * sum(1 for r in records if not r.get("error"))
            partial.add(records)
            bar.update(len(chunk))
    return images, time.perf_counter() - start


def answer_requests(assessor: Any, requests: list[Any], *, mode: str = "text", style: str = "brief",
                    both_orders: bool = False, generation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One output record per request, in order (see :data:`MODES`)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    ids = [r.key for r in requests]
    if mode == "text":
        results = assessor.answer(requests, style, **(generation or {}))
        return [record(i, r.error, text=r.text, confidence=r.confidence, probabilities=r.probabilities)
                for i, r in zip(ids, results)]
    refs = [r.images.get("ref") for r in requests]
    if mode == "prefer":
        # The official query may ask for a paragraph; preference reads the single-answer question.
        results = assessor.prefer([r.images["a"] for r in requests], [r.images["b"] for r in requests], refs,
                                  both_orders=both_orders)
        if not both_orders:
            return [record(i, p.error, text=p.text, confidence=p.confidence, probabilities=p.probabilities,
                           p_a=p.p_a) for i, p in zip(ids, results)]
        return [record(i, p.error, **({} if p.error else p.both_orders_answer())) for i, p in zip(ids, results)]
    results = assessor.score([r.images["a"] for r in requests], refs)
    records = []
    for i, s in zip(ids, results):
        best = max(s.probabilities, key=s.probabilities.get) if s.probabilities else None
        records.append(record(i, s.error, text=best, confidence=s.probabilities[best] if best else None,
                              score=s.score, probabilities=s.probabilities))
    return records


def record(eid: str, error: str | None, **fields: Any) -> dict[str, Any]:
    """An output record. An error record keeps the official keys, ``text`` an empty string (the
    official evaluation scripts call ``text.strip()``) and ``confidence`` null, and says what went
    wrong in ``error``."""
    if error:
        return {"id": eid, "text": "", "confidence": None, "error": error}
    rec = {"id": eid, "text": fields.pop("text"), "confidence": fields.pop("confidence")}
    rec.update({k: v for k, v in fields.items() if v is not None})
    return rec
