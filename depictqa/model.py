"""DepictQAModel: vision encoder + projector + causal LM, as a plain ``nn.Module``.

Images are encoded (grouped by size so each group is one encoder batch), projected to the LLM's
width and scattered into the ``image_mask`` positions of the embedded prompt. The loss is the
cross-entropy of answer tokens only, and the LM head runs only at those positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.data.collate import Batch
from depictqa.prompts import IGNORE, PromptBuilder


@dataclass
class Output:
    """``loss``: mean over answer tokens; ``sample_loss``/``sample_tokens``: [num_samples]."""

    loss: torch.Tensor
    sample_loss: torch.Tensor
    sample_tokens: torch.Tensor
    correct: torch.Tensor
    tokens: torch.Tensor
    # the auxiliary distortion loss (``model.distortion_head``), when the model has one and is training
    aux_loss: torch.Tensor | None = None


class DepictQAModel(nn.Module):
    def __init__(self, encoder: nn.Module, projector: nn.Module, llm: nn.Module, template: str = "depictqa-vicuna",
                 train_encoder: bool = False, encoder_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.encoder, self.projector, self.llm = encoder, projector, llm
        self.prompts = PromptBuilder(llm.tokenizer, template)
        self.train_encoder = train_encoder
        self.encoder_dtype = encoder_dtype
        self.random_parts: set[str] = set()  # parts whose frozen weights a checkpoint must also keep
        self.feature_cache: Any = None  # depictqa.feature_cache.FeatureCache (frozen encoder only)
        self.distortion_head: DistortionHead | None = None  # optional auxiliary supervision (see below)

    @property
    def tokenizer(self) -> Any:
        return self.llm.tokenizer

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    def image_tokens(self, height: int, width: int) -> int:
        """How many LLM positions an image of this (padded) size takes."""
        return self.projector.num_tokens((height // self.patch_size) * (width // self.patch_size))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels [..., 3, H, W] -> float32 normalised with the encoder's mean/std."""
        shape = (3, 1, 1)
        mean = torch.tensor(self.encoder.mean, device=pixels.device).view(shape)
        std = torch.tensor(self.encoder.std, device=pixels.device).view(shape)
        return (pixels.float() / 255.0 - mean) / std

    def encode_images(self, pixels: list[torch.Tensor], keys: list[str] | None = None) -> list[torch.Tensor]:
        """``pixels``: list of [3, H, W], uint8 (normalised here, on the model's device) or float
        (already normalised) -> list of [M_i, hidden] (same order). ``keys``: content keys for the
        feature cache (used when the model has one and the encoder is frozen)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(pixels):
            groups.setdefault(tuple(p.shape[-2:]), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(pixels)
        for idx in groups.values():
            feats = self._encoder_features([pixels[i] for i in idx], None if keys is None else [keys[i] for i in idx])
            proj_dtype = next(self.projector.parameters()).dtype
            tokens = self.projector(feats.to(proj_dtype))
            for j, i in enumerate(idx):
                out[i] = tokens[j]
        return out  # type: ignore[return-value]

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
                images = self.encode_images(batch.pixels, batch.image_keys)
            image_tokens = torch.cat(images).to(embeds.dtype)
            n_slots = int(batch.image_mask.sum())
            if image_tokens.shape[0] != n_slots:
                raise ValueError(f"the prompt has {n_slots} image positions but the images gave "
                                 f"{image_tokens.shape[0]} tokens (image sizes changed after encoding?)")
            embeds = embeds.masked_scatter(batch.image_mask.unsqueeze(-1), image_tokens)
        return embeds

    def forward(self, batch: Batch) -> Output:
        images = self.encode_images(batch.pixels, batch.image_keys) if batch.pixels else []
        embeds = self.embed(batch, images)
        hidden = self.llm.hidden(embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
        # Position t predicts token t+1; keep only positions whose next token is an answer token.
        targets = batch.labels[:, 1:]
        keep = targets != IGNORE
        logits = self.llm.logits(hidden[:, :-1][keep]).float()
        target = targets[keep]
        token_loss = F.cross_entropy(logits, target, reduction="none")
        owner = batch.sample_ids[:, 1:][keep]
        n = batch.num_samples
        sample_loss = torch.zeros(n, device=logits.device).index_add(0, owner, token_loss)
        sample_tokens = torch.zeros(n, device=logits.device).index_add(0, owner, torch.ones_like(token_loss))
        tokens = keep.sum()
        loss = token_loss.sum() / tokens.clamp(min=1)
        correct = (logits.argmax(-1) == target).sum()
        aux = self.distortion_head(batch, images) if self.distortion_head is not None and self.training else None
        return Output(loss, sample_loss / sample_tokens.clamp(min=1), sample_tokens, correct, tokens, aux)

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
        """part -> (total, trainable)."""
        counts = {}
        for part in ("encoder", "projector", "llm"):
            params = list(getattr(self, part).parameters())
            counts[part] = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
        return counts


class DistortionHead(nn.Module):
    """Auxiliary supervision for a from-scratch encoder: from each image's mean projected token,
    predict which distortion categories it carries (binary cross-entropy), how severe each is
    (squared error on severity / 5, for the categories present) and the image's quality score
    (squared error on quality / 100), the score A/B preferences are decided by.

    The targets come from the synthetic samples' metadata (``depictqa synth`` writes the distortions
    and quality of every image; a reference image has none and quality 100); images without such
    metadata (captions, official datasets) are left out. The head is used only in training: the
    answers still come from the LM.
    """

    def __init__(self, width: int, categories: Sequence[str]) -> None:
        super().__init__()
        self.categories = list(categories)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.proj = nn.Linear(width, 2 * len(self.categories) + 1)

    def targets(self, batch: Batch) -> list[tuple[dict[str, int], float | None] | None]:
        """Per image of ``batch.pixels``: ({category: severity}, quality or None), or None where the
        metadata does not say."""
        out: list[tuple[dict[str, int], float | None] | None] = []
        for task, meta, n in zip(batch.tasks, batch.meta, batch.num_images):
            if task == "assess" and "distortions" in meta:
                known = [(meta["distortions"], meta.get("quality"))]
            elif task == "compare" and "distortions_A" in meta and "distortions_B" in meta:
                known = [(meta["distortions_A"], meta.get("quality_A")), (meta["distortions_B"], meta.get("quality_B"))]
            else:
                out += [None] * n
                continue
            if n < len(known):
                out += [None] * n
                continue
            # prompt order: the reference (undistorted) first when there is one
            for dist, q in [([], 100.0)] * (n - len(known)) + known:
                ok = all(d.get("category") in self.index for d in dist)
                out.append(({d["category"]: int(d["severity"]) for d in dist}, q) if ok else None)
        return out

    def forward(self, batch: Batch, images: list[torch.Tensor]) -> torch.Tensor | None:
        if len(batch.num_images) != batch.num_samples:
            return None  # a batch built without per-sample image counts (inference batches)
        targets = self.targets(batch)
        if len(targets) != len(images):
            raise ValueError(f"distortion head: {len(images)} images but the batch describes {len(targets)}")
        rows = [i for i, t in enumerate(targets) if t is not None]
        if not rows:
            # nothing to learn from in this batch; a zero that still reaches every weight of the
            # head keeps DDP from waiting for gradients that never come
            return sum(p.sum() for p in self.parameters()) * 0.0
        pooled = torch.stack([images[i].mean(0) for i in rows]).to(self.proj.weight.dtype)
        out = self.proj(pooled).float()
        c = len(self.categories)
        present_logits, severity, quality = out[:, :c], out[:, c:2 * c], out[:, -1]
        present = torch.zeros_like(present_logits)
        level = torch.zeros_like(severity)
        score = torch.zeros_like(quality)
        scored = torch.zeros_like(quality)
        for r, i in enumerate(rows):
            cats, q = targets[i]  # type: ignore[misc]
            for cat, sev in cats.items():
                present[r, self.index[cat]] = 1.0
                level[r, self.index[cat]] = sev / 5.0
            if q is not None:
                score[r], scored[r] = float(q) / 100.0, 1.0
        bce = F.binary_cross_entropy_with_logits(present_logits, present)
        sq = ((severity - level) ** 2 * present).sum() / present.sum().clamp(min=1)
        sq_quality = ((quality - score) ** 2 * scored).sum() / scored.sum().clamp(min=1)
        return bce + sq + sq_quality
