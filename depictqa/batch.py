"""The model's input: :class:`Batch` = token and image tensors + what each sample asks
(:class:`~depictqa.tasks.TaskSpec`), with the data pipeline's bookkeeping kept apart in
:class:`BatchInfo` (the model never reads it; the task, validators and objectives may).

Built by :func:`depictqa.data.collate.collate` (training: padded or packed) and
:func:`depictqa.infer.batching.collate_left` (generation: left-padded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import torch

from depictqa.tasks import ImageLayout, TaskSpec


@dataclass
class BatchInfo:
    """Per-sample bookkeeping: shard keys, answer styles, ground-truth metadata, and the producing
    DataLoader worker's running counts (``{"worker", "seen", "yielded", "skipped": {reason: n}}``)."""

    keys: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)
    data_stats: dict[str, Any] | None = None


@dataclass
class Batch:
    """``input_ids``, ``image_mask``, ``labels``, ``position_ids``, ``sample_ids``: [R, L];
    ``attention_mask``: [R, L] or None (packed); ``pixels``: every image ([3, H, W]) in order of
    appearance; ``tasks``: one row of the task table per sample; ``image_keys``: one content key per
    image for the frozen-encoder feature cache, or None."""

    input_ids: torch.Tensor
    image_mask: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    sample_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    pixels: list[torch.Tensor]
    tasks: list[TaskSpec]
    image_keys: list[str] | None = None
    info: BatchInfo = field(default_factory=BatchInfo)

    def __post_init__(self) -> None:
        slots = sum(len(t.slots) for t in self.tasks)
        if slots != len(self.pixels):
            raise ValueError(f"the batch's tasks take {slots} image(s) but it holds {len(self.pixels)}")

    @property
    def num_samples(self) -> int:
        return len(self.tasks)

    @property
    def num_images(self) -> list[int]:
        """Images per sample (each sample's slice of ``pixels``)."""
        return [len(t.slots) for t in self.tasks]

    @cached_property
    def layout(self) -> ImageLayout:
        """Each image's sample and role (:class:`~depictqa.tasks.ImageLayout`)."""
        return ImageLayout.of(self.tasks)

    @property
    def padding_fraction(self) -> float:
        return float((self.sample_ids < 0).float().mean())

    def to(self, device: torch.device | str) -> "Batch":
        move = {k: getattr(self, k).to(device) for k in ("input_ids", "image_mask", "labels", "position_ids",
                                                         "sample_ids")}
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return Batch(**move, attention_mask=mask, pixels=[p.to(device) for p in self.pixels], tasks=self.tasks,
                     image_keys=self.image_keys, info=self.info)


def group_by_shape(pixels: Sequence[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    """Indices of same-sized images (``[..., H, W]``), in order of first appearance: each group
    is one stacked batch for the encoder or the image statistics."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pixels):
        groups.setdefault((int(p.shape[-2]), int(p.shape[-1])), []).append(i)
    return groups
