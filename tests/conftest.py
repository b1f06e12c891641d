"""Shared fixtures: tiny recipes, tiny models and tiny shards built inside the tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["What distortion does the image have? Answer the question using a single word or phrase.",
         "Noise", "Blur and noise", "None", "Image A", "Image B",
         "Which image is better? Image A is better than Image B because it has less noise.",
         "A cat sits on a red mat in the sun."] * 8

TINY_OVERRIDES = [
    "model.template=compact",
    "model.encoder={name: tiny-vit, train: full, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2, grid: 4}",
    "model.projector={name: mlp, train: full}",
    "model.llm={name: hf, train: full, config: {model_type: llama, hidden_size: 32, intermediate_size: 64, "
    "num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 512}, "
    "tokenizer: {train: {vocab_size: 320}}}",
    "data.image={short_side: 32, max_long_side: 48, min_size: 16}",
    "logger={name: none}",
    "trainer.accelerator=cpu", "trainer.devices=1",
]


def tiny_recipe(*extra: str):
    from depictqa.config import load_recipe

    return load_recipe(overrides=[*TINY_OVERRIDES, *extra])


@pytest.fixture(scope="session")
def recipe():
    return tiny_recipe()


@pytest.fixture()
def model(recipe):
    from depictqa.build import build_model

    torch.manual_seed(0)
    return build_model(recipe, texts=TEXTS).eval()


def make_item(model, task: str, reference: bool, query: str, answer: str | None, sizes, seed: int = 0):
    from depictqa.data.collate import Item
    from depictqa.tasks import spec

    g = torch.Generator().manual_seed(seed)
    pixels = [torch.randn(3, h, w, generator=g) for h, w in sizes]
    encoded = model.prompts.encode(task, reference, query, answer, [model.image_tokens(h, w) for h, w in sizes])
    return Item(encoded, pixels, spec(task, reference), key=f"{task}-{seed}")


def mixed_items(model):
    """Four samples of different tasks, image counts and (patch-multiple) sizes."""
    p = model.patch_size
    return [make_item(model, "compare", True, "Which image is better?", "Image A", [(2 * p, 3 * p)] * 3, 1),
            make_item(model, "assess", False, "What distortion does the image have?", "Noise", [(3 * p, 2 * p)], 2),
            make_item(model, "caption", False, "Describe the image.", "A cat sits on a red mat.", [(2 * p, 2 * p)], 3),
            make_item(model, "compare", False, "Which image is better?", "Image B is better.", [(3 * p, 3 * p)] * 2, 4)]


def fit_steps(model, batch, loss_of, steps: int = 30, lr: float = 3e-3, after_backward=None) -> tuple[float, float]:
    """Adam on ``loss_of(model(batch))`` for ``steps`` steps -> (first loss, last loss);
    ``after_backward(model)`` runs after every backward (to check gradients)."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_of(model(batch))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        if after_backward is not None:
            after_backward(model)
        opt.step()
    return losses[0], losses[-1]


def random_image(seed: int, h: int = 40, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def write_tiny_shards(out: Path, n: int = 24, prefix: str = "shard", per_shard: int = 8) -> list[str]:
    """A few samples of every task, FR and NR, with random images."""
    from depictqa.data.schema import Sample
    from depictqa.data.shards import write_shards

    kinds = [("assess", False, "What distortion does the image have?", "Noise",
              {"distortions": [{"category": "noise", "subtype": "gaussian_rgb", "severity": 3}]}),
             ("assess", True, "What distortion does the image have compared with the reference?", "Blur",
              {"distortions": [{"category": "blur", "subtype": "gaussian", "severity": 2}]}),
             ("compare", True, "Which image is better?", "Image A", {"A_better_B": True}),
             ("compare", False, "Which image is better?", "Image B", {"A_better_B": False}),
             ("caption", False, "Describe the image.", "A gradient with some speckles.", {})]
    samples = []
    for i in range(n):
        task, ref, q, a, truth = kinds[i % len(kinds)]
        from depictqa.tasks import spec

        images = {k: random_image(i * 7 + j) for j, k in enumerate(spec(task, ref).keys)}
        samples.append(Sample(f"s{i:05d}", task, ref, [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
                              style="single", meta={"i": i, **truth}, images=images))
    return write_shards(samples, out, prefix=prefix, samples_per_shard=per_shard)
