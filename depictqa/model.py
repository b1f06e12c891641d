"""DepictQAModel: vision encoder -> projector -> (optional) conditioners -> causal LM, as a plain
``nn.Module``.

Images are encoded (grouped by size so each group is one encoder batch), projected to the LLM's
width, passed through the image-token conditioners if the recipe names any (none in DepictQA;
see :mod:`depictqa.conditioners`) and scattered into the ``image_mask`` positions of the embedded
prompt. The loss is the cross-entropy of answer tokens only, and the LM head runs only at those
positions. ``forward`` also returns what training objectives may read (the image tokens and the
LM's hidden states); the model itself knows no objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.batch import Batch, group_by_shape
from depictqa.prompts import IGNORE, PromptBuilder
from depictqa.tasks import ImageLayout


def image_token_count(patch_size: int, num_tokens: Any, height: int, width: int) -> int:
    """LLM positions of an image of (padded) size ``height`` x ``width``: the projector's count
    (``num_tokens``) for its patch grid."""
    return num_tokens((height // patch_size) * (width // patch_size))


@dataclass
class Output:
    """``loss``: mean over answer tokens; ``sample_loss``/``sample_tokens``: [num_samples];
    ``correct``/``tokens``: answer tokens predicted right / in all. For objectives:
    ``image_tokens``: each image's tokens as the LM receives them ([M_i, hidden], batch order);
    ``hidden``: the LM's last hidden states [R, L, hidden]."""

    loss: torch.Tensor
    sample_loss: torch.Tensor
    sample_tokens: torch.Tensor
    correct: torch.Tensor
    tokens: torch.Tensor
    image_tokens: list[torch.Tensor]
    hidden: torch.Tensor


class DepictQAModel(nn.Module):
    def __init__(self, encoder: nn.Module, projector: nn.Module, llm: nn.Module, template: str = "depictqa-vicuna",
                 train_encoder: bool = False, encoder_dtype: torch.dtype | None = None,
                 conditioners: list[nn.Module] | None = None) -> None:
        super().__init__()
        self.encoder, self.projector, self.llm = encoder, projector, llm
        # stages between projector and LM, in order (depictqa.conditioners; none in DepictQA)
        self.conditioners = nn.ModuleList(conditioners or [])
        self.prompts = PromptBuilder(llm.tokenizer, template)
        self.train_encoder = train_encoder
        self.encoder_dtype = encoder_dtype
        self.random_parts: set[str] = set()  # parts whose frozen weights a checkpoint must also keep
        self.feature_cache: Any = None  # depictqa.feature_cache.FeatureCache (frozen encoder only)

    @property
    def tokenizer(self) -> Any:
        return self.llm.tokenizer

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    def image_tokens(self, height: int, width: int) -> int:
        """How many LLM positions an image of this (padded) size takes."""
        return image_token_count(self.patch_size, self.projector.num_tokens, height, width)

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (3, 1, 1)
        return (torch.tensor(self.encoder.mean, device=device).view(shape),
                torch.tensor(self.encoder.std, device=device).view(shape))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels [..., 3, H, W] -> float32 normalised with the encoder's mean/std."""
        mean, std = self._mean_std(pixels.device)
        return (pixels.float() / 255.0 - mean) / std

    def unit_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 or encoder-normalised pixels [..., 3, H, W] -> float32 intensities in [0, 1]."""
        if pixels.dtype == torch.uint8:
            return pixels.float() / 255.0
        mean, std = self._mean_std(pixels.device)
        return pixels.float() * std + mean

    def encode_images(self, pixels: list[torch.Tensor], keys: list[str] | None = None,
                      layout: ImageLayout | None = None) -> list[torch.Tensor]:
        """``pixels``: list of [3, H, W], uint8 (normalised here, on the model's device) or float
        (already normalised) -> list of [M_i, hidden] (same order). ``keys``: content keys for the
        feature cache (used when the model has one and the encoder is frozen). ``layout``: each
        image's sample and role (``batch.layout``), which conditioners need."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(pixels)
        proj_dtype = next(self.projector.parameters()).dtype
        for idx in group_by_shape(pixels).values():
            feats = self._encoder_features([pixels[i] for i in idx], None if keys is None else [keys[i] for i in idx])
            tokens = self.projector(feats.to(proj_dtype))
            for j, i in enumerate(idx):
                out[i] = tokens[j]
        if len(self.conditioners):
            if layout is None:
                raise ValueError("this model has image-token conditioners: encode_images needs the batch's "
                                 "layout (encode_images(..., layout=batch.layout))")
            unit = [self.unit_pixels(p) for p in pixels]
            for conditioner in self.conditioners:
                out = conditioner(out, unit, layout)
        return out

    def _encoder_features(self, pixels: list[torch.Tensor], keys: list[str] | None) -> torch.Tensor:
        """Encoder tokens [B, N, D] of same-shape images, from the feature cache where it has them."""
        training_encoder = self.train_encoder and self.training
        cache = self.feature_cache if keys is not None and not self.train_encoder else None
        feats: list[torch.Tensor | None] = [None] * len(pixels)
        if cache is not None:
            for j, key in enumerate(keys):
                hit = cache.get(key)
                if hit is not None:
                    feats[j] = hit.to(pixels[j].device, non_blocking=True)
        todo = [j for j, f in enumerate(feats) if f is None]
        if todo:
            stacked = torch.stack([pixels[j] for j in todo])
            if stacked.dtype == torch.uint8:
                stacked = self.normalise(stacked)
            if self.encoder_dtype is not None:
                stacked = stacked.to(self.encoder_dtype)
            # A frozen encoder runs without autograd (and in its own dtype): no activations kept.
            with torch.enable_grad() if training_encoder else torch.no_grad():
                computed = self.encoder(stacked)
            for k, j in enumerate(todo):
                feats[j] = computed[k]
                if cache is not None:
                    cache.put(keys[j], computed[k])
        return torch.stack(feats)  # type: ignore[arg-type]

    def embed(self, batch: Batch, images: list[torch.Tensor] | None = None) -> torch.Tensor:
        """[R, L] ids + images -> [R, L, hidden] input embeddings (``images``: the projected tokens of
        ``batch.pixels`` when the caller already has them)."""
        embeds = self.llm.embed(batch.input_ids)
        if batch.pixels:
            if images is None:
                images = self.encode_images(batch.pixels, batch.image_keys, batch.layout)
            image_tokens = torch.cat(images).to(embeds.dtype)
            n_slots = int(batch.image_mask.sum())
            if image_tokens.shape[0] != n_slots:
                raise ValueError(f"the prompt has {n_slots} image positions but the images gave "
                                 f"{image_tokens.shape[0]} tokens (image sizes changed after encoding?)")
            embeds = embeds.masked_scatter(batch.image_mask.unsqueeze(-1), image_tokens)
        return embeds

    def forward(self, batch: Batch) -> Output:
        images = self.encode_images(batch.pixels, batch.image_keys, batch.layout) if batch.pixels else []
        embeds = self.embed(batch, images)
        hidden = self.llm.hidden(embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
        # Position t predicts token t+1; keep only positions whose next token is an answer token.
        targets = batch.labels[:, 1:]
        keep = targets != IGNORE
        logits, target = self.llm.answer_logits(hidden[:, :-1][keep], targets[keep])
        logits = logits.float()
        token_loss = F.cross_entropy(logits, target, reduction="none")
        owner = batch.sample_ids[:, 1:][keep]
        n = batch.num_samples
        sample_loss = torch.zeros(n, device=logits.device).index_add(0, owner, token_loss)
        sample_tokens = torch.zeros(n, device=logits.device).index_add(0, owner, torch.ones_like(token_loss))
        tokens = keep.sum()
        loss = token_loss.sum() / tokens.clamp(min=1)
        correct = (logits.argmax(-1) == target).sum()
        return Output(loss, sample_loss / sample_tokens.clamp(min=1), sample_tokens, correct, tokens, images, hidden)

    @torch.no_grad()
    def generate(self, batch: Batch, max_new_tokens: int = 64, **kwargs: Any) -> Any:
        """Generate answers for a *left-padded* prompt-only batch (see ``depictqa.infer``).

        Returns what ``transformers.generate`` returns (new tokens only when given embeddings).
        """
        embeds = self.embed(batch)
        kwargs.setdefault("do_sample", False)
        return self.llm.generate(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                                 max_new_tokens=max_new_tokens, **kwargs)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint holds besides the LoRA adapter: trainable ones (projector, trained
        encoder/LLM parts) and every weight of a part that was randomly initialised."""
        lora = getattr(self.llm, "is_lora", False)
        out = {}
        params = dict(self.named_parameters())
        for name, param in params.items():
            if not param.requires_grad and name.split(".", 1)[0] not in self.random_parts:
                continue
            if lora and name.startswith("llm.") and "lora_" in name:
                continue  # saved as a PEFT adapter folder instead
            out[name] = param.detach()
        # Persistent buffers that training changes (BatchNorm statistics) travel with their part.
        trained = {n.split(".", 1)[0] for n, p in params.items() if p.requires_grad} | self.random_parts
        for name, value in self.state_dict(keep_vars=True).items():
            if isinstance(value, nn.Parameter) or name.split(".", 1)[0] not in trained or "lora_" in name:
                continue  # parameters (tied ones appear here under a second name) are handled above
            out[name] = value.detach()
        return out

    def parameter_counts(self) -> dict[str, tuple[int, int]]:
        """part -> (total, trainable), for every top-level part with parameters (the encoder, projector
        and LLM, and the conditioners when the model has any)."""
        counts = {}
        for part, module in self.named_children():
            params = list(module.parameters())
            if params:
                counts[part] = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
        return counts
