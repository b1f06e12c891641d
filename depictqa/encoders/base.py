"""The vision-encoder contract."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class VisionEncoder(Protocol):
    """Turns images into patch tokens.

    ``forward(pixels [B, 3, H, W]) -> [B, N, D]`` for any ``H``, ``W`` that are multiples of
    ``patch_size``, with ``N = (H / patch_size) * (W / patch_size)`` and ``D = embed_dim``.
    ``mean``/``std`` are the normalisation the encoder was trained with.
    """

    embed_dim: int
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def wrap_classes(self) -> set[type[nn.Module]]: ...


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
