"""CLIP vision tower from transformers (the DepictQA default: ViT-L/14).

Patch tokens of a chosen hidden layer, CLS dropped, no final norm or projection -- what the
released DepictQA weights were trained on. Any H x W that is a multiple of the patch size runs via
``interpolate_pos_encoding`` (bicubic interpolation of the position embeddings).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from depictqa.encoders.base import CLIP_MEAN, CLIP_STD


class CLIPEncoder(nn.Module):
    def __init__(self, model: nn.Module, layer: int = -1) -> None:
        super().__init__()
        vision = getattr(model, "vision_model", model)  # transformers 5 flattened the wrapper
        # Layers after the chosen one and the final norm never reach the output: drop them, so they
        # cost no compute and a trainable encoder has no parameters without gradients.
        keep = layer % len(vision.encoder.layers) + 1
        vision.encoder.layers = vision.encoder.layers[:keep]
        vision.post_layernorm = nn.Identity()
        self.model = model
        self.layer = -1
        cfg = model.config
        self.embed_dim: int = cfg.hidden_size
        self.patch_size: int = cfg.patch_size
        self.mean, self.std = CLIP_MEAN, CLIP_STD

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, (H/p)*(W/p), D]"""
        out = self.model(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=True)
        # hidden_states[0] is the embedding output; the last entry is the last block's output,
        # taken before post_layernorm as the official DepictQA features are.
        return out.hidden_states[self.layer][:, 1:]

    def wrap_classes(self) -> set[type[nn.Module]]:
        return {type(getattr(self.model, "vision_model", self.model).encoder.layers[0])}


def build_clip(path: str | None = None, config: dict[str, Any] | None = None, layer: int = -1,
               dtype: str = "float32") -> CLIPEncoder:
    """CLIP vision tower from a local folder or hub id (``path``), or random weights from ``config``."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch_dtype = getattr(torch, dtype)
    if path is not None:
        model = CLIPVisionModel.from_pretrained(path, dtype=torch_dtype)
    elif config is not None:
        model = CLIPVisionModel(CLIPVisionConfig(**config)).to(torch_dtype)
    else:
        raise ValueError("encoder 'clip' needs 'path' (a folder or hub id) or 'config'")
    return CLIPEncoder(model, layer=layer)
