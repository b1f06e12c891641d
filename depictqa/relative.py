"""Sample-relative image statistics (``model.relative_stats``).

Full-reference IQA measures work on the difference between an image and its reference (PSNR,
SSIM), and an A/B comparison of two versions of one scene is easiest on their difference, where
the scene cancels out. A from-scratch model sees each image through its own tokens and must learn
to subtract across images inside a small LM. :class:`RelativeStats` states the differences: for
every image of a sample it takes the :class:`~depictqa.encoders.tiny.GlobalStats` of the image
minus those of the sample's reference, and minus those of the other image of a comparison, embeds
them (a BatchNorm and a two-layer MLP, the last layer zero-initialised so the model starts as if
it were absent) and adds the result to every projected token of that image.

Roles follow the prompt order (:func:`depictqa.data.schema.required_images`): a sample of task
``compare`` has two images of its own, other tasks one; one image more means the first is the
reference. A reference, a lone image and a caption image get a zero difference and flags saying
so. Swapping A and B swaps their vectors and negates the pair difference, so the answer to "B
then A" sees the same evidence as the answer to "A then B".
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from depictqa.encoders.tiny import GlobalStats, StatsNorm

# (task, number of images) per sample, in prompt order
Layout = Sequence[tuple[str, int]]


def image_roles(layout: Layout) -> list[tuple[int | None, int | None]]:
    """Per image of the flattened batch: (index of its sample's reference, index of the other
    compared image), ``None`` where there is none; the reference itself gets ``(None, None)``."""
    roles: list[tuple[int | None, int | None]] = []
    start = 0
    for task, n in layout:
        own = 2 if task == "compare" else 1
        if n not in (own, own + 1):
            raise ValueError(f"a {task!r} sample has {n} image(s); it takes {own} (or {own + 1} with a reference)")
        ref = start if n == own + 1 else None
        if ref is not None:
            roles.append((None, None))
        first = start + (n - own)
        for j in range(own):
            other = first + 1 - j if own == 2 else None
            roles.append((ref, other))
        start += n
    return roles


class RelativeStats(nn.Module):
    """``[n_images, 3, H_i, W_i]`` pixels in [0, 1] + the batch layout -> ``[n_images, width]``
    offsets for each image's projected tokens."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stats = GlobalStats()
        size = 2 * GlobalStats.size + 2  # difference to the reference, to the other image, two flags
        self.embed = nn.Sequential(StatsNorm(size), nn.Linear(size, width), nn.GELU(), nn.Linear(width, width))
        nn.init.zeros_(self.embed[-1].weight)
        nn.init.zeros_(self.embed[-1].bias)

    def vectors(self, pixels: Sequence[torch.Tensor], layout: Layout) -> torch.Tensor:
        """The un-embedded ``[n_images, 2 * 30 + 2]`` inputs (differences and flags)."""
        roles = image_roles(layout)
        if len(roles) != len(pixels):
            raise ValueError(f"the layout describes {len(roles)} images but the batch has {len(pixels)}")
        stats: list[torch.Tensor | None] = [None] * len(pixels)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(pixels):
            by_shape.setdefault(tuple(p.shape[-2:]), []).append(i)
        # float32 even under bf16 autocast, as in the encoder (local variance is a difference of near-equal terms)
        with torch.autocast(pixels[0].device.type, enabled=False):
            for idx in by_shape.values():
                for i, s in zip(idx, self.stats(torch.stack([pixels[i].float() for i in idx]))):
                    stats[i] = s
        zero = torch.zeros_like(stats[0])
        rows = []
        for i, (ref, other) in enumerate(roles):
            rows.append(torch.cat([stats[i] - stats[ref] if ref is not None else zero,
                                   stats[i] - stats[other] if other is not None else zero,
                                   zero.new_tensor([float(ref is not None), float(other is not None)])]))
        return torch.stack(rows)

    def forward(self, pixels: Sequence[torch.Tensor], layout: Layout) -> torch.Tensor:
        return self.embed(self.vectors(pixels, layout))


def batch_layout(tasks: Sequence[str], num_images: Sequence[int]) -> list[tuple[str, int]]:
    """``Batch.tasks`` and ``Batch.num_images`` as a :data:`Layout` (an error if they are missing)."""
    if len(tasks) != len(num_images):
        raise ValueError(f"model.relative_stats needs each sample's task and image count; the batch has "
                         f"{len(tasks)} task(s) and {len(num_images)} image count(s)")
    return list(zip(tasks, num_images))
