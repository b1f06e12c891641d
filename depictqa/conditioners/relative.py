"""``relative-stats``: each image's global statistics relative to its sample's other images.

Full-reference IQA measures work on the difference between an image and its reference (PSNR,
SSIM), and an A/B comparison of two versions of one scene is easiest on their difference, where
the scene cancels out. A from-scratch model sees each image through its own tokens and must learn
to subtract across images inside a small LM. This conditioner states the differences: for every
image it takes the :func:`~depictqa.iqa_stats.global_stats` of the image minus those of its
sample's reference, and minus those of the other compared image, embeds them (a BatchNorm and a
two-layer MLP, the last layer zero-initialised so a new model starts as if it were absent) and
adds the result to every projected token of that image.

Roles come from the task table (:class:`~depictqa.tasks.ImageLayout`). A reference, a lone image
and a caption image get a zero difference and flags saying so. Swapping A and B swaps their
vectors and negates the pair difference, so the answer to "B then A" sees the same evidence as
the answer to "A then B".
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from depictqa.batch import group_by_shape
from depictqa.iqa_stats import GlobalStats, StatsNorm, global_stats
from depictqa.tasks import ImageLayout


class RelativeStats(nn.Module):
    """Projected tokens + ``[3, H_i, W_i]`` pixels in [0, 1] + the batch layout -> the tokens, each
    image's shifted by an embedding of its statistics' differences (``[n_images, width]``)."""

    size = 2 * GlobalStats.size + 2  # difference to the reference, to the other image, two flags

    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(StatsNorm(self.size), nn.Linear(self.size, width), nn.GELU(),
                                   nn.Linear(width, width))
        nn.init.zeros_(self.embed[-1].weight)
        nn.init.zeros_(self.embed[-1].bias)

    def vectors(self, pixels: Sequence[torch.Tensor], layout: ImageLayout) -> torch.Tensor:
        """The un-embedded ``[n_images, 2 * 30 + 2]`` inputs (differences and flags)."""
        if len(layout) != len(pixels):
            raise ValueError(f"the layout describes {len(layout)} images but the batch has {len(pixels)}")
        stats: list[torch.Tensor] = [torch.empty(0)] * len(pixels)
        for idx in group_by_shape(pixels).values():
            for i, s in zip(idx, global_stats(torch.stack([pixels[i] for i in idx]))):
                stats[i] = s
        zero = torch.zeros_like(stats[0])
        rows = []
        for i, (ref, other) in enumerate(zip(layout.reference, layout.other)):
            rows.append(torch.cat([stats[i] - stats[ref] if ref is not None else zero,
                                   stats[i] - stats[other] if other is not None else zero,
                                   zero.new_tensor([float(ref is not None), float(other is not None)])]))
        return torch.stack(rows)

    def forward(self, tokens: Sequence[torch.Tensor], pixels: Sequence[torch.Tensor],
                layout: ImageLayout) -> list[torch.Tensor]:
        offsets = self.embed(self.vectors(pixels, layout))
        return [t + o.to(t.dtype) for t, o in zip(tokens, offsets)]


def build_relative_stats(width: int) -> RelativeStats:
    """Each image's global IQA statistics minus its reference's and the other compared image's,
    embedded onto its tokens (for small from-scratch models)."""
    return RelativeStats(width)
