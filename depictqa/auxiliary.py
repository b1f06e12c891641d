"""Auxiliary supervision for from-scratch models: heads that predict what the synthetic metadata
says about each image (``model.distortion_head``, ``model.lm_distortion_head``).

A from-scratch VLM learns about distortions slowly from its answers alone: the LM loss reaches the
image through one or two answer tokens per sample. These heads give every image of every sample a
direct signal while training. They read the targets from the metadata ``depictqa synth`` writes
(``distortions``, ``distortions_A``/``_B``, ``quality``, ``quality_A``/``_B``; a reference image
has no distortion and quality 100); captions, official datasets and unknown categories are left
out. They are never used to answer: ``generate`` does not call them.

- :class:`DistortionHead` on each image's mean *projected* token (``model.distortion_head``)
  trains the encoder and projector to state the distortions.
- The same head on the *LM's* last hidden state at each image's last token
  (``model.lm_distortion_head``, see :func:`image_end_states`) trains the LM to read them: that
  position has seen this image and every image before it in the prompt, so in a full-reference
  sample image A's state is asked for A's distortions having seen the reference, and in a
  comparison the last image's state also predicts which of A and B is better (``preference``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.data.collate import Batch


class DistortionHead(nn.Module):
    """From one feature per image ``[n_images, width]``: which distortion categories it carries
    (binary cross-entropy), how severe each is (squared error on severity / 5, for the categories
    present) and its quality score (squared error on quality / 100, the score A/B preferences are
    decided by). With ``preference``, the last image of a comparison also predicts whether A is
    better than B (binary cross-entropy).
    """

    def __init__(self, width: int, categories: Sequence[str], preference: bool = False) -> None:
        super().__init__()
        self.categories = list(categories)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.preference = preference
        self.proj = nn.Linear(width, 2 * len(self.categories) + 1 + int(preference))

    def targets(self, batch: Batch) -> list[tuple[dict[str, int], float | None] | None]:
        """Per image of ``batch.pixels``: ({category: severity}, quality or None), or None where the
        metadata does not say."""
        out: list[tuple[dict[str, int], float | None] | None] = []
        for task, meta, n in zip(batch.tasks, batch.meta, batch.num_images):
            known = _described(task, meta)
            if known is None or n < len(known):
                out += [None] * n
                continue
            # prompt order: the reference (undistorted) first when there is one
            for dist, q in [([], 100.0)] * (n - len(known)) + known:
                ok = all(d.get("category") in self.index for d in dist)
                out.append(({d["category"]: int(d["severity"]) for d in dist}, q) if ok else None)
        return out

    @staticmethod
    def preferences(batch: Batch) -> list[float | None]:
        """Per image of ``batch.pixels``: 1.0 / 0.0 (A better / B better) on the last image of a
        comparison whose qualities are known and differ, else None."""
        out: list[float | None] = []
        for task, meta, n in zip(batch.tasks, batch.meta, batch.num_images):
            qa, qb = meta.get("quality_A"), meta.get("quality_B")
            known = task == "compare" and n >= 2 and qa is not None and qb is not None and qa != qb
            out += [None] * n
            if known:
                out[-1] = float(qa > qb)
        return out

    def forward(self, batch: Batch, features: torch.Tensor) -> torch.Tensor | None:
        """``features``: [n_images, width], one per image of ``batch.pixels`` -> the loss (a scalar),
        or None for a batch built without per-sample image counts (inference batches)."""
        if len(batch.num_images) != batch.num_samples:
            return None
        targets = self.targets(batch)
        if len(targets) != features.shape[0]:
            raise ValueError(f"distortion head: {features.shape[0]} images but the batch describes {len(targets)}")
        prefs = self.preferences(batch) if self.preference else [None] * len(targets)
        rows = [i for i, t in enumerate(targets) if t is not None]
        pref_rows = [i for i, p in enumerate(prefs) if p is not None]
        # With nothing to learn from, a zero that still reaches every weight of the head keeps DDP
        # from waiting for gradients that never come.
        loss = sum(p.sum() for p in self.parameters()) * 0.0
        out = self.proj(features.to(self.proj.weight.dtype)).float()
        if rows:
            loss = loss + self._describe_loss(out[rows], [targets[i] for i in rows])  # type: ignore[misc]
        if pref_rows:
            target = torch.tensor([prefs[i] for i in pref_rows], device=out.device)
            loss = loss + F.binary_cross_entropy_with_logits(out[pref_rows, -1], target)
        return loss

    def _describe_loss(self, out: torch.Tensor, targets: list[tuple[dict[str, int], float | None]]) -> torch.Tensor:
        c = len(self.categories)
        present_logits, severity, quality = out[:, :c], out[:, c:2 * c], out[:, 2 * c]
        present = torch.zeros_like(present_logits)
        level = torch.zeros_like(severity)
        score = torch.zeros_like(quality)
        scored = torch.zeros_like(quality)
        for r, (cats, q) in enumerate(targets):
            for cat, sev in cats.items():
                present[r, self.index[cat]] = 1.0
                level[r, self.index[cat]] = sev / 5.0
            if q is not None:
                score[r], scored[r] = float(q) / 100.0, 1.0
        bce = F.binary_cross_entropy_with_logits(present_logits, present)
        sq = ((severity - level) ** 2 * present).sum() / present.sum().clamp(min=1)
        sq_quality = ((quality - score) ** 2 * scored).sum() / scored.sum().clamp(min=1)
        return bce + sq + sq_quality


def _described(task: str, meta: dict) -> list[tuple[list[dict], float | None]] | None:
    """The (distortions, quality) the metadata gives for a sample's non-reference images, in
    prompt order, or None."""
    if task == "assess" and "distortions" in meta:
        return [(meta["distortions"], meta.get("quality"))]
    if task == "compare" and "distortions_A" in meta and "distortions_B" in meta:
        return [(meta["distortions_A"], meta.get("quality_A")), (meta["distortions_B"], meta.get("quality_B"))]
    return None


def image_end_states(hidden: torch.Tensor, image_mask: torch.Tensor, tokens_per_image: Sequence[int]) -> torch.Tensor:
    """The hidden state at each image's last token.

    ``hidden``: [R, L, D]; ``image_mask``: [R, L], True at image positions, filled image after
    image in row-major order (as ``DepictQAModel.embed`` scatters them); ``tokens_per_image``: how
    many positions each image takes, in that order -> [n_images, D]."""
    positions = image_mask.nonzero()  # [T, 2], row-major
    ends = torch.tensor(tokens_per_image, device=positions.device).cumsum(0) - 1
    if positions.shape[0] != int(sum(tokens_per_image)):
        raise ValueError(f"{positions.shape[0]} image positions but the images take {sum(tokens_per_image)}")
    at = positions[ends]
    return hidden[at[:, 0], at[:, 1]]
