"""``token-differences``: each image's projected tokens minus its reference's and the other
compared image's, position by position.

A distorted image and its reference (and the two images of an A/B pair) are the same crop of one
scene, so their token grids line up: the difference at a position is what the distortion did
there, with the scene cancelled out. A large LM learns to attend across images to find it; a
small from-scratch one, trained for minutes, mostly does not. This conditioner states it: for every
image it takes its tokens minus its sample's reference's and minus the other compared image's, and
adds an MLP of the two (with two flags saying which exist) to its tokens. The last layer is
zero-initialised, so a new model starts as if the conditioner were absent.

Where there is no reference or other image, or its token grid differs in shape (another
resolution), that difference is zero and its flag says so; an image with neither (a reference, a
lone no-reference image, a caption image) is left as it is. Swapping A and B swaps their inputs and
negates the pair difference, so "B then A" sees the same evidence as "A then B". Unlike
``relative-stats`` (global statistics), the differences are local and learnt: they carry *where*
and *how* an image departs from its reference.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from depictqa.batch import group_by_shape
from depictqa.tasks import ImageLayout


class TokenDifferences(nn.Module):
    """Projected tokens ``[M_i, width]`` + pixels + the batch layout -> the tokens, each image's
    plus ``MLP([t_i - t_ref, t_i - t_other, has_ref, has_other])``."""

    def __init__(self, width: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or width
        self.mlp = nn.Sequential(nn.Linear(2 * width + 2, hidden), nn.GELU(), nn.Linear(hidden, width))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, tokens: Sequence[torch.Tensor], pixels: Sequence[torch.Tensor],
                layout: ImageLayout) -> list[torch.Tensor]:
        if len(layout) != len(tokens):
            raise ValueError(f"the layout describes {len(layout)} images but the batch has {len(tokens)}")
        out = list(tokens)
        # same-sized images have same-shaped token grids: each group is differenced in one go
        for idx in group_by_shape(pixels).values():
            if any(tokens[i].shape != tokens[idx[0]].shape for i in idx):
                raise ValueError("token-differences: images of one size gave token grids of different shapes")
            at = {i: k for k, i in enumerate(idx)}
            grid = torch.stack([tokens[i] for i in idx])  # [k, M, width]
            parts = []
            for partner in (layout.reference, layout.other):
                k_of = [at.get(partner[i], -1) if partner[i] is not None else -1 for i in idx]
                has = torch.tensor([float(k >= 0) for k in k_of], dtype=grid.dtype, device=grid.device)
                gathered = grid[torch.tensor([max(k, 0) for k in k_of], device=grid.device)]
                parts.append((grid - gathered) * has[:, None, None])
                parts.append(has[:, None, None].expand(-1, grid.shape[1], 1))
            to_ref, has_ref, to_other, has_other = parts
            offset = self.mlp(torch.cat([to_ref, to_other, has_ref, has_other], dim=-1))
            shifted = grid + offset * torch.maximum(has_ref, has_other)  # no partner: unchanged
            for k, i in enumerate(idx):
                out[i] = shifted[k]
        return out


def build_token_differences(width: int, hidden: int | None = None) -> TokenDifferences:
    """Each image's projected tokens minus its reference's and the other compared image's,
    position by position, through an MLP onto its tokens (for small from-scratch models)."""
    return TokenDifferences(width, hidden)
