"""A small from-scratch ViT for CPU recipes and tests (no pretrained weights needed).

Learned 2-D position embeddings on a fixed grid, bilinearly resized to the input's patch grid,
so any H x W that is a multiple of the patch size runs. ``stem="conv"`` replaces the linear patch
embedding with stride-2 3x3 convolutions (Xiao et al., "Early convolutions help transformers see
better"): a linear patch projection cannot measure local energy (noise level, sharpness) by
itself, and a from-scratch model trained for minutes learns those low-level cues far faster with a
convolutional stem.

``mscn=True`` also feeds the stem each colour channel's mean-subtracted contrast-normalised (MSCN)
coefficients, ``(x - mu) / (sigma + c)`` with a 7x7 Gaussian window (Mittal et al., BRISQUE, 2012).
They are the classic hand-made cue of no-reference IQA: noise, blur, blocking and banding change
their statistics whatever the scene's brightness and contrast. A from-scratch encoder trained for
minutes on a CPU identifies distortions markedly better with them (docs/performance.md).

``stats=True`` adds an embedding of :class:`~depictqa.iqa_stats.GlobalStats` to every patch token: thirty fixed,
whole-image measurements of the kind no-reference IQA models were built on before deep learning
(colour and luminance moments, MSCN moments and neighbour products, Laplacian energy, 8x8 block
edges, histogram gaps, colour count, local-contrast percentiles). Brightness, contrast, saturation,
quantisation and compression are properties of the whole image; a small encoder trained from
scratch for minutes learns to aggregate them slowly, while these statistics state them outright.
The embedding (a BatchNorm and a two-layer MLP) is trained with the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.encoders.base import CLIP_MEAN, CLIP_STD
from depictqa.iqa_stats import MSCN, GlobalStats, StatsNorm, global_stats


def conv_stem(patch_size: int, embed_dim: int, in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """3x3 stride-2 convolutions down to ``patch_size`` (a power of two), then a 1x1 to the width.

    ``batch_norm``: BatchNorm after each 3x3 convolution. It normalises over the batch, so unlike a
    per-image norm it keeps each image's absolute brightness and contrast, and it lets a stem
    trained from scratch learn faster (running statistics at inference)."""
    steps = patch_size.bit_length() - 1
    if 2 ** steps != patch_size:
        raise ValueError(f"stem 'conv' needs a power-of-two patch_size, got {patch_size}")
    layers: list[nn.Module] = []
    width = in_channels
    for i in range(steps):
        out = min(embed_dim, 16 * 2 ** i)
        # No per-image normalisation: it would erase the brightness and contrast the model must judge.
        layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), *([nn.BatchNorm2d(out)] if batch_norm else []),
                   nn.GELU()]
        width = out
    stem = nn.Sequential(*layers, nn.Conv2d(width, embed_dim, 1))
    # He initialisation: PyTorch's default shrinks the activation variance about threefold per
    # layer, so after five layers the tokens barely depend on the image and a from-scratch VLM
    # learns to ignore them before the encoder can catch up.
    for conv in stem:
        if isinstance(conv, nn.Conv2d):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
    return stem


class TinyViT(nn.Module):
    def __init__(self, patch_size: int = 14, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 2.0, grid: int = 16, stem: str = "patch", mscn: bool = False, stem_bn: bool = False,
                 stats: bool = False) -> None:
        super().__init__()
        self.patch_size, self.embed_dim = patch_size, embed_dim
        self.mean, self.std = CLIP_MEAN, CLIP_STD
        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        channels = 6 if mscn else 3
        self.mscn = MSCN() if mscn else None
        self.stats = stats
        if stats:
            self.stats_embed = nn.Sequential(StatsNorm(GlobalStats.size), nn.Linear(GlobalStats.size, embed_dim),
                                             nn.GELU(), nn.Linear(embed_dim, embed_dim))
        if mscn or stats:
            self.register_buffer("mean_", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std_", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        if stem_bn and stem != "conv":
            raise ValueError("stem_bn needs stem='conv'")
        self.patch = (conv_stem(patch_size, embed_dim, channels, stem_bn) if stem == "conv"
                      else nn.Conv2d(channels, embed_dim, patch_size, stride=patch_size))
        self.pos = nn.Parameter(torch.randn(1, embed_dim, grid, grid) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(embed_dim, num_heads, int(embed_dim * mlp_ratio), dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, (H/p)*(W/p), D]"""
        glob = 0
        if self.mscn is not None or self.stats:
            # The pipeline hands CLIP-normalised pixels; MSCN and the statistics use [0, 1] intensities,
            # in float32 even under bf16 autocast (local variance is a difference of near-equal terms).
            with torch.autocast(pixels.device.type, enabled=False):
                raw = pixels.float() * self.std_ + self.mean_
                stats = global_stats(raw) if self.stats else None
                mscn = self.mscn(raw) if self.mscn is not None else None
            if stats is not None:
                glob = self.stats_embed(stats).to(pixels.dtype)[:, :, None, None]
            if mscn is not None:
                pixels = torch.cat([pixels, 0.5 * mscn.to(pixels.dtype)], 1)
        x = self.patch(pixels)
        pos = F.interpolate(self.pos, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = (x + pos + glob).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def wrap_classes(self) -> set[type[nn.Module]]:
        return {nn.TransformerEncoderLayer}


def build_tiny_vit(patch_size: int = 14, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                   mlp_ratio: float = 2.0, grid: int = 16, stem: str = "patch", mscn: bool = False,
                   stem_bn: bool = False, stats: bool = False) -> TinyViT:
    """Small from-scratch ViT for CPU recipes (``mscn``: MSCN coefficients as extra input channels;
    ``stem_bn``: BatchNorm in the conv stem; ``stats``: a global-statistics embedding on every token)."""
    return TinyViT(patch_size, embed_dim, depth, num_heads, mlp_ratio, grid, stem, mscn, stem_bn, stats)
