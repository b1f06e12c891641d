"""The projector contract: vision tokens -> LLM-width tokens."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Projector(Protocol):
    """Built as ``(in_dim, out_dim, **kwargs)``; both sizes come from the encoder and the LLM.

    ``forward([B, N, in_dim]) -> [B, M, out_dim]`` with ``M = num_tokens(N)``.
    """

    def forward(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def num_tokens(self, n: int) -> int: ...
