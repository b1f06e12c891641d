"""Any timm backbone (ViT or ConvNet) as patch tokens via ``forward_intermediates``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from depictqa.encoders.base import IMAGENET_MEAN, IMAGENET_STD


class TimmEncoder(nn.Module):
    def __init__(self, model: nn.Module, layer: int = -1) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        n_layers = len(model.feature_info) if hasattr(model, "feature_info") else None
        self._index = [layer % n_layers] if n_layers else [layer]
        info = model.feature_info[self._index[0]]
        if hasattr(model, "prune_intermediate_layers"):
            # Blocks after the chosen one, the final norm and the head never reach the output.
            model.prune_intermediate_layers(self._index, prune_norm=True, prune_head=True)
        self.embed_dim: int = info["num_chs"]
        self.patch_size: int = info["reduction"]
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(cfg.get("std", IMAGENET_STD))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, N, D]"""
        feats = self.model.forward_intermediates(pixels, indices=self._index, intermediates_only=True,
                                                 output_fmt="NCHW")[0]
        return feats.flatten(2).transpose(1, 2)

    def wrap_classes(self) -> set[type[nn.Module]]:
        blocks = getattr(self.model, "blocks", None) or getattr(self.model, "stages", None)
        return {type(blocks[0])} if blocks is not None else set()


def build_timm(model_name: str, pretrained: bool = False, checkpoint: str | None = None, layer: int = -1,
               model_kwargs: dict[str, Any] | None = None) -> TimmEncoder:
    """A ``timm.create_model`` backbone; ``checkpoint`` is a local weights file (safetensors)."""
    import timm

    kwargs = dict(model_kwargs or {})
    common = dict(pretrained=pretrained, num_classes=0, checkpoint_path=checkpoint or "")
    try:
        # ViTs need dynamic_img_size to run at native resolution; ConvNets do not know the flag.
        model = timm.create_model(model_name, **common, **{"dynamic_img_size": True, **kwargs})
    except TypeError:
        model = timm.create_model(model_name, **common, **kwargs)
    return TimmEncoder(model, layer=layer)
