"""The conditioner contract: a stage between projector and LM that may change each image's
projected tokens knowing the other images of its sample.

The DepictQA model has none (the default). A conditioner is built as ``(width, **kwargs)``, with
``width`` the LLM's hidden size (read from the model, never written in a recipe), and named in a
recipe under ``model.conditioners: [{name: ..., ...}]``. Conditioners are part of the model: their
weights travel in the checkpoint and they run at inference as in training.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch

from depictqa.tasks import ImageLayout


@runtime_checkable
class Conditioner(Protocol):
    def forward(self, tokens: Sequence[torch.Tensor], pixels: Sequence[torch.Tensor],
                layout: ImageLayout) -> list[torch.Tensor]:
        """``tokens``: each image's projected tokens ``[M_i, width]``; ``pixels``: the same images
        ``[3, H_i, W_i]`` as float32 intensities in [0, 1]; ``layout``: each image's sample and role
        -> new tokens, same shapes. Images of one sample may look at each other, never at another
        sample's: a batch must give each sample the answer it gets alone."""
        ...
