"""The abstractor of the released DepictQA-Wild model, as that model is built.

A fixed set of learned queries reads each image's patch tokens through a 4-layer PyTorch
``nn.TransformerDecoder`` (post-norm, ReLU, feed-forward 2048, 8 heads, dropout 0.1, sequence-first
tensors), and a linear layer maps the query outputs to the LLM width. Parameter names follow the
released checkpoint (``abstractor.query_embeds``, ``abstractor.abstractor.layers.{i}...``,
``vision_proj``) so its tensors load one to one (:mod:`depictqa.official`). The width is the
encoder's (1024 for CLIP ViT-L/14): sizes come from the parts.

``projectors/abstractor.py`` is depictqa's own, lighter design (pre-norm, fewer layers); use this
one to run or fine-tune the released weights.
"""

from __future__ import annotations

import torch
from torch import nn


class _Queries(nn.Module):
    """``query_embeds`` [num_queries, 1, width] and the decoder, under the released names."""

    def __init__(self, width: int, num_queries: int, num_layers: int, num_heads: int, feedforward: int,
                 dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerDecoderLayer(d_model=width, nhead=num_heads, dim_feedforward=feedforward,
                                           dropout=dropout)  # post-norm, ReLU, sequence-first: the release
        self.abstractor = nn.TransformerDecoder(layer, num_layers=num_layers)
        self.query_embeds = nn.Parameter(torch.randn(num_queries, 1, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, width] -> [B, num_queries, width]"""
        memory = tokens.permute(1, 0, 2)
        queries = self.query_embeds.expand(-1, tokens.shape[0], -1)
        return self.abstractor(queries, memory).permute(1, 0, 2)


class OfficialAbstractor(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, num_queries: int = 64, num_layers: int = 4, num_heads: int = 8,
                 feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.abstractor = _Queries(in_dim, num_queries, num_layers, num_heads, feedforward, dropout)
        self.vision_proj = nn.Linear(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, in_dim] -> [B, num_queries, out_dim]"""
        return self.vision_proj(self.abstractor(tokens))

    def num_tokens(self, n: int) -> int:
        return self.num_queries


def build_official_abstractor(in_dim: int, out_dim: int, num_queries: int = 64, num_layers: int = 4,
                              num_heads: int = 8, feedforward: int = 2048, dropout: float = 0.1) -> OfficialAbstractor:
    """The released DepictQA-Wild abstractor (4-layer post-norm decoder over 64 queries, then linear)."""
    return OfficialAbstractor(in_dim, out_dim, num_queries, num_layers, num_heads, feedforward, dropout)
