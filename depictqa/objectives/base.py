"""The objective contract: a training loss beside the answer loss.

Objectives live in the training task (:class:`~depictqa.task.DepictQATask`), not in the model. Each
is built as ``(width, **kwargs)``, with ``width`` the LLM's hidden size (read from the model), and
named in a recipe block ``objectives: [{name: ..., weight: ..., ...}]``; the task adds
``weight * loss`` to the answer loss and logs ``train/<name>_loss``. An objective reads what the
model's forward exposes (:class:`~depictqa.model.Output`: the projected image tokens, the LM's
hidden states) and the batch's labels (``batch.info.meta``, roles from ``batch.layout``). Its
weights are training state: they are saved for ``--resume``, not in the inference checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import torch

from depictqa.batch import Batch

if TYPE_CHECKING:
    from depictqa.model import Output


@runtime_checkable
class Objective(Protocol):
    def forward(self, batch: Batch, out: "Output") -> torch.Tensor:
        """The loss (a scalar) for ``batch`` given the model's output on it. With nothing to learn
        from in this batch, return a zero that still depends on every trainable weight (so DDP
        does not wait for gradients that never come)."""
        ...


def image_end_states(hidden: torch.Tensor, image_mask: torch.Tensor, tokens_per_image: Sequence[int]) -> torch.Tensor:
    """The LM's hidden state at each image's last token.

    ``hidden``: [R, L, D]; ``image_mask``: [R, L], True at image positions, filled image after
    image in row-major order (as the model scatters them); ``tokens_per_image``: how many positions
    each image takes, in that order -> [n_images, D]. That position has seen its image and every
    image before it in the prompt."""
    positions = image_mask.nonzero()  # [T, 2], row-major
    if positions.shape[0] != int(sum(tokens_per_image)):
        raise ValueError(f"{positions.shape[0]} image positions but the images take {sum(tokens_per_image)}")
    ends = torch.tensor(tokens_per_image, device=positions.device).cumsum(0) - 1
    at = positions[ends]
    return hidden[at[:, 0], at[:, 1]]
