"""A small from-scratch ViT for CPU recipes and tests (no pretrained weights needed).

Learned 2-D position embeddings on a fixed grid, bilinearly resized to the input's patch grid,
so any H x W that is a multiple of the patch size runs. ``stem="conv"`` replaces the linear patch
embedding with stride-2 3x3 convolutions (Xiao et al., "Early convolutions help transformers see
better"): a linear patch projection cannot measure local energy (noise level, sharpness) by
itself, and a from-scratch model trained for minutes learns those low-level cues far faster with a
convolutional stem.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.encoders.base import CLIP_MEAN, CLIP_STD


def conv_stem(patch_size: int, embed_dim: int) -> nn.Sequential:
    """3x3 stride-2 convolutions down to ``patch_size`` (a power of two), then a 1x1 to the width."""
    steps = patch_size.bit_length() - 1
    if 2 ** steps != patch_size:
        raise ValueError(f"stem 'conv' needs a power-of-two patch_size, got {patch_size}")
    layers: list[nn.Module] = []
    width = 3
    for i in range(steps):
        out = min(embed_dim, 16 * 2 ** i)
        # No normalisation: it would erase the absolute brightness and contrast the model must judge.
        layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.GELU()]
        width = out
    return nn.Sequential(*layers, nn.Conv2d(width, embed_dim, 1))


class TinyViT(nn.Module):
    def __init__(self, patch_size: int = 14, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 2.0, grid: int = 16, stem: str = "patch") -> None:
        super().__init__()
        self.patch_size, self.embed_dim = patch_size, embed_dim
        self.mean, self.std = CLIP_MEAN, CLIP_STD
        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        self.patch = conv_stem(patch_size, embed_dim) if stem == "conv" else nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.randn(1, embed_dim, grid, grid) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(embed_dim, num_heads, int(embed_dim * mlp_ratio), dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, (H/p)*(W/p), D]"""
        x = self.patch(pixels)
        pos = F.interpolate(self.pos, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = (x + pos).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def wrap_classes(self) -> set[type[nn.Module]]:
        return {nn.TransformerEncoderLayer}


def build_tiny_vit(patch_size: int = 14, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                   mlp_ratio: float = 2.0, grid: int = 16, stem: str = "patch") -> TinyViT:
    """Small from-scratch ViT for CPU recipes."""
    return TinyViT(patch_size, embed_dim, depth, num_heads, mlp_ratio, grid, stem)
