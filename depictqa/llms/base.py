"""The language-model contract."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class LanguageModel(Protocol):
    """A causal LM that takes embeddings.

    ``embed(ids [B, L]) -> [B, L, hidden_size]``; ``hidden(inputs_embeds, ...) -> [B, L, hidden_size]``
    (last layer, before the LM head); ``logits(hidden [..., hidden_size]) -> [..., vocab]``;
    ``answer_logits(hidden [N, hidden_size], target ids [N]) -> (logits [N, C], target [N])``: training's
    view of the head, over the C tokens it can emit (the vocabulary, unless the head scores fewer), with
    the targets as indices into them;
    ``generate(inputs_embeds, attention_mask, **kw)`` returns new tokens only.
    """

    hidden_size: int
    tokenizer: Any

    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor: ...

    def logits(self, hidden: torch.Tensor) -> torch.Tensor: ...

    def answer_logits(self, hidden: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any: ...

    def wrap_classes(self) -> set[type[nn.Module]]: ...
