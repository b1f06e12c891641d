"""``distortion``: predict what the ground-truth metadata says about each image.

A from-scratch VLM learns about distortions slowly from its answers alone: the LM loss reaches the
image through one or two answer tokens per sample. This objective gives every image of every
sample a direct signal. Targets come from the metadata ``depictqa synth`` writes (``distortions``,
``distortions_A``/``_B``, ``quality``, ``quality_A``/``_B``; a reference image has no distortion
and quality 100); samples whose metadata says nothing (captions, most official data) and unknown
categories are left out. It is never used to answer.

``source: projected`` reads each image's mean projected token (training the encoder and
projector to state the distortions); ``source: lm`` reads the LM's hidden state at each image's
last token (training the LM to read them; with ``preference``, the state at image B also predicts
whether A is better than B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.batch import Batch
from depictqa.labels import DISTORTIONS
from depictqa.objectives.base import image_end_states

if TYPE_CHECKING:
    from depictqa.model import Output

SOURCES = ("projected", "lm")
# the metadata keys of each role's distortions and quality
_META = {"image": ("distortions", "quality"), "a": ("distortions_A", "quality_A"), "b": ("distortions_B", "quality_B")}
Target = tuple[dict[str, int], float | None]


class DistortionObjective(nn.Module):
    """From one feature per image: which categories it carries (binary cross-entropy), how severe
    each is (squared error on severity / 5, for the categories present) and its quality score
    (squared error on quality / 100), plus, with ``preference``, whether A beats B at image B."""

    def __init__(self, width: int, source: str = "projected", categories: Sequence[str] | None = None,
                 preference: bool = False) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"distortion objective: source {source!r} is not one of {', '.join(SOURCES)}")
        self.source = source
        self.categories = list(categories) if categories is not None else list(DISTORTIONS)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.preference = preference
        self.proj = nn.Linear(width, 2 * len(self.categories) + 1 + int(preference))

    def features(self, batch: Batch, out: "Output") -> torch.Tensor:
        """One feature per image of ``batch.pixels``: [n_images, width]."""
        if self.source == "projected":
            return torch.stack([t.mean(0) for t in out.image_tokens])
        return image_end_states(out.hidden, batch.image_mask, [t.shape[0] for t in out.image_tokens])

    def targets(self, batch: Batch) -> list[Target | None]:
        """Per image: ({category: severity}, quality or None), or None where the metadata does not say."""
        out: list[Target | None] = []
        for task, meta in zip(batch.tasks, batch.info.meta or [{}] * batch.num_samples):
            described = all(_META[s.role][0] in meta for s in task.slots if s.role != "reference")
            for slot in task.slots:
                if not described or not task.quality:
                    out.append(None)
                elif slot.role == "reference":
                    out.append(({}, 100.0))
                else:
                    dist_key, quality_key = _META[slot.role]
                    dist = meta[dist_key]
                    known = all(d.get("category") in self.index for d in dist)
                    out.append(({d["category"]: int(d["severity"]) for d in dist}, meta.get(quality_key))
                               if known else None)
        return out

    @staticmethod
    def preferences(batch: Batch) -> list[float | None]:
        """Per image: 1.0 / 0.0 (A better / B better) at image B of a comparison whose qualities are
        known and differ, else None."""
        out: list[float | None] = []
        for task, meta in zip(batch.tasks, batch.info.meta or [{}] * batch.num_samples):
            qa, qb = meta.get("quality_A"), meta.get("quality_B")
            known = qa is not None and qb is not None and qa != qb
            out += [float(qa > qb) if known and s.role == "b" else None for s in task.slots]
        return out

    def forward(self, batch: Batch, out: "Output") -> torch.Tensor:
        targets = self.targets(batch)
        prefs = self.preferences(batch) if self.preference else [None] * len(targets)
        rows = [i for i, t in enumerate(targets) if t is not None]
        pref_rows = [i for i, p in enumerate(prefs) if p is not None]
        # With nothing to learn from, a zero that still reaches every weight keeps DDP from waiting.
        loss = sum(p.sum() for p in self.parameters()) * 0.0
        if not rows and not pref_rows:
            return loss
        pred = self.proj(self.features(batch, out).to(self.proj.weight.dtype)).float()
        if rows:
            loss = loss + self._describe_loss(pred[rows], [targets[i] for i in rows])  # type: ignore[misc]
        if pref_rows:
            target = torch.tensor([prefs[i] for i in pref_rows], device=pred.device)
            loss = loss + F.binary_cross_entropy_with_logits(pred[pref_rows, -1], target)
        return loss

    def _describe_loss(self, pred: torch.Tensor, targets: list[Target]) -> torch.Tensor:
        c = len(self.categories)
        present_logits, severity, quality = pred[:, :c], pred[:, c:2 * c], pred[:, 2 * c]
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


def build_distortion(width: int, source: str = "projected", categories: Sequence[str] | None = None,
                     preference: bool = False) -> DistortionObjective:
    """Each image's distortion categories, severities and quality from its projected tokens or the
    LM's state (ground-truth metadata; categories default to depictqa.labels.DISTORTIONS)."""
    return DistortionObjective(width, source, categories, preference)
