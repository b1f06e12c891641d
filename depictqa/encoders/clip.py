"""CLIP vision tower from transformers (the DepictQA default: ViT-L/14).

Patch tokens of a chosen hidden layer, CLS dropped, no final norm or projection -- what the
released DepictQA weights were trained on. Any H x W that is a multiple of the patch size runs: the
position embeddings are interpolated bicubically to the patch grid, either by transformers
(``pos_interpolation: transformers``, ``align_corners=False``) or as the official DepictQA code does
(``official``: ``align_corners=True``, which keeps the corner embeddings where they were). The
two agree at 224 x 224 and differ elsewhere (about 1.5% of the features at 224 x 336, 13% at
70 x 98): a released DepictQA model wants ``official``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.encoders.base import CLIP_MEAN, CLIP_STD


POS_INTERPOLATIONS = ("transformers", "official")


class CLIPEncoder(nn.Module):
    def __init__(self, model: nn.Module, layer: int = -1, pos_interpolation: str = "transformers") -> None:
        super().__init__()
        if pos_interpolation not in POS_INTERPOLATIONS:
            raise ValueError(f"clip: pos_interpolation {pos_interpolation!r} is not one of {', '.join(POS_INTERPOLATIONS)}")
        self.pos_interpolation = pos_interpolation
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
        if self.pos_interpolation == "official":
            vision = getattr(self.model, "vision_model", self.model)
            hidden = vision.pre_layrnorm(self.official_embeddings(pixels))
            # the layers after the chosen one were dropped: the encoder's output is that layer's
            return vision.encoder(inputs_embeds=hidden).last_hidden_state[:, 1:]
        out = self.model(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=True)
        # hidden_states[0] is the embedding output; the last entry is the last block's output,
        # taken before post_layernorm as the official DepictQA features are.
        return out.hidden_states[self.layer][:, 1:]

    def official_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch + class embeddings with the position grid resized bicubically, corners aligned:
        [B, 3, H, W] -> [B, 1 + (H/p)*(W/p), D]. Written out because transformers' interpolation
        uses ``align_corners=False`` and offers no switch."""
        emb = getattr(self.model, "vision_model", self.model).embeddings
        patches = emb.patch_embedding(pixels.to(emb.patch_embedding.weight.dtype))  # [B, D, gh, gw]
        b, d, gh, gw = patches.shape
        pos = emb.position_embedding.weight  # [1 + g*g, D]
        g = int(round((pos.shape[0] - 1) ** 0.5))
        grid = pos[1:].reshape(1, g, g, d).permute(0, 3, 1, 2)
        if (gh, gw) != (g, g):
            grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=True).to(pos.dtype)
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, d)
        tokens = torch.cat([emb.class_embedding.expand(b, 1, d), patches.flatten(2).transpose(1, 2)], 1)
        return tokens + torch.cat([pos[:1], grid[0]])[None]

    def wrap_classes(self) -> set[type[nn.Module]]:
        return {type(getattr(self.model, "vision_model", self.model).encoder.layers[0])}


def build_clip(path: str | None = None, config: dict[str, Any] | None = None, layer: int = -1,
               dtype: str = "float32", pos_interpolation: str = "transformers") -> CLIPEncoder:
    """CLIP vision tower from a local folder or hub id (``path``), or random weights from ``config``
    (``pos_interpolation``: ``transformers`` or ``official``, see the module docstring)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch_dtype = getattr(torch, dtype)
    if path is not None:
        model = CLIPVisionModel.from_pretrained(path, dtype=torch_dtype)
    elif config is not None:
        model = CLIPVisionModel(CLIPVisionConfig(**config)).to(torch_dtype)
    else:
        raise ValueError("encoder 'clip' needs 'path' (a folder or hub id) or 'config'")
    return CLIPEncoder(model, layer=layer, pos_interpolation=pos_interpolation)
