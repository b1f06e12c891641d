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
    """Callable ``(task_module, batch) -> {"identification_acc": .., "rating_acc": ..}``.

    Also keeps the first ``keep_answers`` answers of a validation pass as table rows (images,
    question, answer, truth, confidence = mean probability of the answer's tokens) for a logger
    that shows them; :meth:`take_rows` hands them over and starts the next pass."""

    COLUMNS = ("key", "images", "question", "answer", "truth", "confidence")

    def __init__(self, max_new_tokens: int = 12, keep_answers: int = 16) -> None:
        self.max_new_tokens, self.keep_answers = max_new_tokens, keep_answers
        self.rows: list[tuple[Any, ...]] = []

    def take_rows(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows

    @torch.no_grad()
    def __call__(self, task_module: Any, batch: Batch) -> dict[str, float]:
        model = task_module.model
        rows = [i for i in range(batch.num_samples) if batch.info.styles[i] == "single" and batch.tasks[i].quality]
        if not rows:
            return {}
        prompts = prompt_batch(batch, rows, model.tokenizer.pad_token_id or 0).to(batch.input_ids.device)
        gen = model.generate(prompts, max_new_tokens=self.max_new_tokens, output_logits=True,
                             return_dict_in_generate=True)
        ids = gen.sequences
        texts = model.tokenizer.batch_decode(ids, skip_special_tokens=True)
        out: dict[str, float] = {}
        meta = batch.info.meta
        if len(self.rows) < self.keep_answers:
            self._keep(batch, rows, prompts, texts, ids, gen.logits, model.tokenizer)
        ident = [(t, gt_labels(meta[i])) for t, i in zip(texts, rows) if batch.tasks[i].kind == "assess"]
        rate = [(t, bool(meta[i]["A_better_B"])) for t, i in zip(texts, rows)
                if batch.tasks[i].kind == "compare" and meta[i].get("A_better_B") is not None]
        if ident:
            out["identification_acc"] = identification_accuracy(*zip(*ident))
        if rate:
            out["rating_acc"] = rating_accuracy(*zip(*rate))
        return out

    def _keep(self, batch: Batch, rows: list[int], prompts: Batch, texts: list[str], ids: torch.Tensor,
              logits: tuple[torch.Tensor, ...], tokenizer: Any) -> None:
        """Table rows for the first answers: pixels [H, n*W, 3] uint8, texts, the answer's confidence."""
        probs = torch.stack([step.float().softmax(-1) for step in logits], 1)  # [b, T, V]
        chosen = probs.gather(-1, ids[:, :probs.shape[1], None])[..., 0]
        stop = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        starts = _image_offsets(batch)
        for j, i in enumerate(rows[: self.keep_answers - len(self.rows)]):
            keep = [k for k, tok in enumerate(ids[j, :chosen.shape[1]].tolist()) if tok not in stop]
            confidence = float(chosen[j, keep].mean()) if keep else float("nan")
            pixels = batch.pixels[starts[i]:starts[i] + batch.num_images[i]]
            picture = torch.cat(list(pixels), -1).permute(1, 2, 0)
            if picture.dtype != torch.uint8:  # normalised floats: show them min-max scaled
                picture = ((picture - picture.min()) / (picture.max() - picture.min() + 1e-6) * 255).to(torch.uint8)
            question = tokenizer.decode(prompts.input_ids[j][~prompts.image_mask[j]], skip_special_tokens=True)
            truth = batch.info.meta[i].get("A_better_B") if batch.tasks[i].kind == "compare" else \
                " and ".join(sorted(gt_labels(batch.info.meta[i])))
            self.rows.append((batch.info.keys[i], picture.cpu().numpy(), question.strip()[-300:], texts[j].strip(),
                              str(truth), confidence))
