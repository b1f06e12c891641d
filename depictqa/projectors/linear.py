"""Linear projector (DepictQA v1: 1024 -> 4096)."""

from __future__ import annotations

import torch
from torch import nn


class LinearProjector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim, bias=bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, in_dim] -> [B, N, out_dim]"""
        return self.proj(tokens)

    def num_tokens(self, n: int) -> int:
        return n


def build_linear(in_dim: int, out_dim: int, bias: bool = True) -> LinearProjector:
    """One linear layer per token (DepictQA v1)."""
    return LinearProjector(in_dim, out_dim, bias)
