"""Two-layer GELU MLP projector (LLaVA-1.5 style)."""

from __future__ import annotations

import torch
from torch import nn


class MLPProjector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, in_dim] -> [B, N, out_dim]"""
        return self.net(tokens)

    def num_tokens(self, n: int) -> int:
        return n


def build_mlp(in_dim: int, out_dim: int, hidden_dim: int | None = None) -> MLPProjector:
    """2-layer GELU MLP per token (LLaVA-1.5 style)."""
    return MLPProjector(in_dim, out_dim, hidden_dim)
