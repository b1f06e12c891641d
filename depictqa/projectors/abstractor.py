"""Query-token abstractor: M learned queries cross-attend to one image's tokens.

DepictQA-Wild's answer to native-resolution images: however many patches an image has (up to
~2,000 at 672 px), it costs the LLM a fixed ``num_queries`` tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class AbstractorLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(tokens)
        queries = queries + self.attn(self.norm_q(queries), kv, kv, need_weights=False)[0]
        return queries + self.mlp(self.norm_mlp(queries))


class Abstractor(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, num_queries: int = 64, depth: int = 2,
                 num_heads: int = 8, hidden_dim: int | None = None, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        dim = hidden_dim or in_dim
        if dim % num_heads:
            raise ValueError(f"abstractor hidden size {dim} is not divisible by num_heads={num_heads}")
        self.num_queries = num_queries
        self.inp = nn.Linear(in_dim, dim) if dim != in_dim else nn.Identity()
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.layers = nn.ModuleList(AbstractorLayer(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, in_dim] -> [B, num_queries, out_dim]"""
        tokens = self.inp(tokens)
        q = self.queries.expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, tokens)
        return self.out(self.norm(q))

    def num_tokens(self, n: int) -> int:
        return self.num_queries


def build_abstractor(in_dim: int, out_dim: int, num_queries: int = 64, depth: int = 2, num_heads: int = 8,
                     hidden_dim: int | None = None, mlp_ratio: float = 4.0) -> Abstractor:
    """Learned queries cross-attending to an image's tokens -> a fixed number of tokens."""
    return Abstractor(in_dim, out_dim, num_queries, depth, num_heads, hidden_dim, mlp_ratio)
