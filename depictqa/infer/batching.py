"""Prompt-only batches for inference: requests -> prepared images -> a LEFT-padded :class:`Batch`.

Training batches are right-padded (``depictqa.data.collate``); generation needs every prompt to
end at the last column so that the new token of every row is produced at the same step, hence the
left padding here. Position ids count real tokens only (``cumsum(mask) - 1``), which is what each
prompt would get alone, so a batch gives the same answers as one request at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from depictqa.batch import Batch, BatchInfo
from depictqa.data.images import ImageConfig, ImageInput, load_image, prepare_images
from depictqa.prompts import IGNORE
from depictqa.tasks import TaskSpec, spec


@dataclass
class Request:
    """One question about one image group. ``images``: image key of the task table (``ref``, ``a``,
    ``b``; ``img`` for a caption) -> input.

    ``answer_prefix``: token ids teacher-forced after the prompt (score/prefer read the next-token
    distribution there over ``choices``); empty for free generation.
    """

    task: str | TaskSpec  # assess | compare | caption, an official task name, or a table row
    reference: bool
    query: str
    images: dict[str, ImageInput]
    answer_prefix: list[int] = field(default_factory=list)
    choices: tuple[int, ...] = ()  # candidate answer token ids read after the prefix (score/prefer)
    key: str = ""

    @property
    def spec(self) -> TaskSpec:
        """This request's row of the task table."""
        return spec(self.task, self.reference)


@dataclass
class Prepared:
    """A request whose images decoded: prompt ids [L], image mask [L], pixels in prompt order."""

    request: Request
    input_ids: torch.Tensor
    image_mask: torch.Tensor
    pixels: list[torch.Tensor]


def prepare(model: Any, request: Request, cfg: ImageConfig) -> Prepared:
    """Decode, resize and tokenise one request. Raises ``ImageError`` naming the bad image."""
    task = request.spec
    keys = task.keys
    missing = [k for k in keys if request.images.get(k) is None]
    if missing:
        raise ValueError(f"{request.key or request.task}: task {task.official!r} needs image(s) {', '.join(missing)}")
    images = {k: load_image(request.images[k], _where(request.images[k], k), cfg.max_pixels) for k in keys}
    pixels = prepare_images(images, cfg, model.patch_size)
    ordered = [pixels[k] for k in keys]
    counts = [model.image_tokens(p.shape[-2], p.shape[-1]) for p in ordered]
    enc = model.prompts.encode(task, task.reference, request.query, None, counts)
    ids, mask = enc.input_ids, enc.image_mask
    if request.answer_prefix:
        prefix = torch.tensor(request.answer_prefix, dtype=torch.long)
        ids = torch.cat([ids, prefix])
        mask = torch.cat([mask, torch.zeros(len(prefix), dtype=torch.bool)])
    return Prepared(request, ids, mask, ordered)


def _where(data: Any, key: str) -> str:
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        return str(data) if not isinstance(data, bytes) else f"image {key} (bytes)"
    return f"image {key} ({type(data).__name__})"


def collate_left(prepared: Sequence[Prepared], pad_id: int) -> Batch:
    """Left-padded prompt batch: ``attention_mask`` is 0 on the left padding, ``position_ids`` =
    ``cumsum(mask) - 1`` clamped at 0, ``labels`` all ignored (nothing is trained here)."""
    if not prepared:
        raise ValueError("cannot collate an empty batch")
    length = max(len(p.input_ids) for p in prepared)
    shape = (len(prepared), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    image_mask = torch.zeros(shape, dtype=torch.bool)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    sample_ids = torch.full(shape, -1, dtype=torch.long)
    for r, p in enumerate(prepared):
        n = len(p.input_ids)
        input_ids[r, length - n:] = p.input_ids
        image_mask[r, length - n:] = p.image_mask
        attention_mask[r, length - n:] = 1
        sample_ids[r, length - n:] = r
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(input_ids, image_mask, torch.full(shape, IGNORE, dtype=torch.long), position_ids, sample_ids,
                 attention_mask, pixels=[px for p in prepared for px in p.pixels],
                 tasks=[p.request.spec for p in prepared], info=BatchInfo(keys=[p.request.key for p in prepared]))


def last_token_logits(model: Any, batch: Batch) -> torch.Tensor:
    """One forward pass; the vocabulary logits [B, V] (float32) after each prompt's last token.

    The LM head runs on the last column only: with left padding that is every row's last token.
    """
    embeds = model.embed(batch)
    hidden = model.llm.hidden(embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    return model.llm.logits(hidden[:, -1]).float()
