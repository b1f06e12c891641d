"""Generation-based validation during training: identification and rating accuracy of greedy
``single`` answers on the held-out stream, so checkpoints can be chosen by a task metric."""

from __future__ import annotations

from typing import Any

import torch

from depictqa.batch import Batch
from depictqa.eval.metrics import identification_accuracy, rating_accuracy
from depictqa.eval.truth import gt_labels
from depictqa.prompts import IGNORE


def prompt_batch(batch: Batch, rows: list[int], pad_id: int) -> Batch:
    """The prompts (answers cut off) of samples ``rows`` of a padded or packed training batch, left-padded."""
    from depictqa.infer.batching import Prepared, Request, collate_left

    prepared, image_start = [], _image_offsets(batch)
    for i in rows:
        where = batch.sample_ids == i
        ids, mask, labels = batch.input_ids[where], batch.image_mask[where], batch.labels[where]
        answer = (labels != IGNORE).nonzero()
        cut = int(answer[0]) if len(answer) else len(ids)
        pixels = batch.pixels[image_start[i]:image_start[i] + batch.num_images[i]]
        task = batch.tasks[i]
        request = Request(task=task, reference=task.reference, query="", images={}, key=batch.info.keys[i])
        prepared.append(Prepared(request, ids[:cut].cpu(), mask[:cut].cpu(), list(pixels)))
    return collate_left(prepared, pad_id)


def _image_offsets(batch: Batch) -> list[int]:
    offsets, start = [], 0
    for n in batch.num_images:
        offsets.append(start)
        start += n
    return offsets


class GenerationValidator:
    """Callable ``(task_module, batch) -> {"identification_acc": .., "rating_acc": ..}``."""

    def __init__(self, max_new_tokens: int = 12) -> None:
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def __call__(self, task_module: Any, batch: Batch) -> dict[str, float]:
        model = task_module.model
        rows = [i for i in range(batch.num_samples) if batch.info.styles[i] == "single" and batch.tasks[i].quality]
        if not rows:
            return {}
        prompts = prompt_batch(batch, rows, model.tokenizer.pad_token_id or 0).to(batch.input_ids.device)
        ids = model.generate(prompts, max_new_tokens=self.max_new_tokens)
        texts = model.tokenizer.batch_decode(ids, skip_special_tokens=True)
        out: dict[str, float] = {}
        meta = batch.info.meta
        ident = [(t, gt_labels(meta[i])) for t, i in zip(texts, rows) if batch.tasks[i].kind == "assess"]
        rate = [(t, bool(meta[i]["A_better_B"])) for t, i in zip(texts, rows)
                if batch.tasks[i].kind == "compare" and meta[i].get("A_better_B") is not None]
        if ident:
            out["identification_acc"] = identification_accuracy(*zip(*ident))
        if rate:
            out["rating_acc"] = rating_accuracy(*zip(*rate))
        return out
