"""Training batches (:class:`~depictqa.batch.Batch`): padded or packed, built to a token budget.

A *packed* batch is one row holding several samples back to back; position ids restart at every
sample and ``attention_mask`` is None, which transformers reads as separate sequences (attention
stays inside each sample). A *padded* batch is the usual right-padded ``[B, L]`` with a mask.
Either way ``sample_ids`` says which sample each position belongs to (-1 for padding), so
per-sample losses can be recovered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import torch

from depictqa.batch import Batch, BatchInfo
from depictqa.prompts import IGNORE, Encoded
from depictqa.tasks import TaskSpec


@dataclass
class Item:
    """One tokenised sample with its prepared images (prompt order, each [3, H, W])."""

    encoded: Encoded
    pixels: list[torch.Tensor]
    task: TaskSpec
    key: str = ""
    style: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    image_keys: list[str] | None = None  # content keys for the frozen-encoder feature cache

    def __len__(self) -> int:
        return len(self.encoded)


def collate(items: Sequence[Item], pad_id: int = 0, packed: bool = False) -> Batch:
    """Items -> one :class:`Batch` (packed: a single row; padded: right-padded rows)."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    rows = [list(range(len(items)))] if packed else [[i] for i in range(len(items))]
    length = max(sum(len(items[i]) for i in row) for row in rows)
    shape = (len(rows), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    image_mask = torch.zeros(shape, dtype=torch.bool)
    labels = torch.full(shape, IGNORE, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    sample_ids = torch.full(shape, -1, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            enc, n = items[i].encoded, len(items[i])
            span = slice(start, start + n)
            input_ids[r, span], image_mask[r, span], labels[r, span] = enc.input_ids, enc.image_mask, enc.labels
            position_ids[r, span] = torch.arange(n)
            sample_ids[r, span] = i
            start += n
    attention_mask = None if packed else (sample_ids >= 0).long()
    info = BatchInfo(keys=[it.key for it in items], styles=[it.style for it in items], meta=[it.meta for it in items])
    return Batch(input_ids, image_mask, labels, position_ids, sample_ids, attention_mask,
                 pixels=_one_storage_per_shape([p for item in items for p in item.pixels]),
                 tasks=[it.task for it in items],
                 image_keys=([k for it in items for k in it.image_keys]
                             if all(it.image_keys is not None for it in items) else None), info=info)


def _one_storage_per_shape(pixels: list[torch.Tensor]) -> list[torch.Tensor]:
    """The same tensors as views into one stacked tensor per shape: a batch leaving a DataLoader
    worker then needs one shared-memory segment per shape instead of one per image."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(pixels):
        groups.setdefault((tuple(p.shape), p.dtype), []).append(i)
    out: list[torch.Tensor] = list(pixels)
    for idx in groups.values():
        if len(idx) > 1:
            stacked = torch.stack([pixels[i] for i in idx])
            for j, i in enumerate(idx):
                out[i] = stacked[j]
    return out


def budget_batches(items: Iterable[Item], max_tokens: int, max_samples: int | None = None) -> Iterator[list[Item]]:
    """Group a stream into lists whose total length stays within ``max_tokens`` (a sample longer
    than the budget travels alone)."""
    group: list[Item] = []
    total = 0
    for item in items:
        n = len(item)
        full = max_samples is not None and len(group) >= max_samples
        if group and (total + n > max_tokens or full):
            yield group
            group, total = [], 0
        group.append(item)
        total += n
    if group:
        yield group

