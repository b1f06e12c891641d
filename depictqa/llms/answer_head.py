"""An output head over the tokens the training answers use (``model.llm.output_vocab: answers``).

A small LM with a large pretrained vocabulary (the tiny recipe reads MiniLM's 30,522 WordPieces)
spends a large share of each CPU step on its output head: the matmul, softmax and gradient over
every word at every answer position, and the optimiser state of a row per word. Answers use a
few thousand of those words, and a word that no training answer contains is only ever pushed
down by the softmax, so scoring only the answers' words loses nothing the model could learn.

``depictqa fit`` reads every answer of the recipe's data once, before training, and hands the
token ids to :meth:`HFLanguageModel.restrict_output`. The head keeps those ids as a buffer, so a
checkpoint rebuilds the same head without the data (:func:`restrict_on_load`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IDS = "ids"  # the buffer a checkpoint carries


class AnswerHead(nn.Module):
    """Rows of an LM head for ``ids`` only (``weight`` [K, hidden], ``ids`` [K], sorted).

    ``forward`` gives logits over the whole vocabulary ([..., vocab_size]; words outside ``ids``
    at the dtype's minimum), so generation and every reader of vocabulary logits work unchanged;
    :meth:`scores` gives the [..., K] logits training needs.
    """

    def __init__(self, weight: torch.Tensor, ids: torch.Tensor, vocab_size: int) -> None:
        super().__init__()
        if weight.shape[0] != ids.numel():
            raise ValueError(f"AnswerHead: {weight.shape[0]} rows for {ids.numel()} token ids")
        self.vocab_size = vocab_size
        self.weight = nn.Parameter(weight)
        self.register_buffer(IDS, ids.long())
        index = torch.full((vocab_size,), -1, dtype=torch.long, device=ids.device)
        index[ids] = torch.arange(ids.numel(), device=ids.device)
        self.register_buffer("index", index, persistent=False)  # vocabulary id -> row, -1 outside

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden] -> [..., K]"""
        return F.linear(hidden, self.weight)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden] -> [..., vocab_size]"""
        scores = self.scores(hidden)
        full = scores.new_full((*scores.shape[:-1], self.vocab_size), torch.finfo(scores.dtype).min)
        return full.index_copy(-1, self.ids, scores)

    def rows(self, target: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids [N] -> their rows [N]; :class:`ValueError` naming an id outside the head."""
        rows = self.index[target]
        if bool((rows < 0).any()):
            outside = sorted(set(target[rows < 0].tolist()))
            raise ValueError(f"answer token id(s) {outside[:8]} are not among the {self.ids.numel()} the output head "
                             "scores (model.llm.output_vocab: answers reads the answers of the recipe's data "
                             "sources before training; this answer was not among them)")
        return rows

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]} -> {self.ids.numel()} of {self.vocab_size} tokens"


def answer_head(current: nn.Module, ids: list[int], vocab_size: int, std: float) -> AnswerHead:
    """An :class:`AnswerHead` for ``ids`` (sorted, distinct) from the current head (a full
    ``nn.Linear`` or an AnswerHead): rows it has are copied, rows it lacks start at ``normal(0, std)``."""
    weight = current.weight.detach()
    ids = torch.tensor(ids, dtype=torch.long, device=weight.device)
    if ids.numel() == 0 or int(ids[0]) < 0 or int(ids[-1]) >= vocab_size:
        raise ValueError(f"output vocabulary: token ids must lie in [0, {vocab_size}); got {ids.numel()} ids")
    rows = torch.empty(ids.numel(), weight.shape[1], dtype=weight.dtype, device=weight.device).normal_(0.0, std)
    if isinstance(current, AnswerHead):
        have = current.index[ids]
        rows[have >= 0] = weight[have[have >= 0]]
    else:
        rows.copy_(weight[ids])
    return AnswerHead(rows, ids, vocab_size)


def restrict_on_load(llm: Any, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook of an LLM wrapper: a checkpoint whose head holds ``ids`` gets an
    AnswerHead of those ids before its weights are copied (a model built from a recipe, without
    the data, starts with the full head)."""
    name = llm.output_head_name()
    ids = state_dict.get(f"{prefix}{name}.{IDS}")
    if ids is not None:
        llm.restrict_output(ids)
