"""A tiny random-weight model, an Assessor over it, a checkpoint of it, images of mixed sizes, and a
fake sentence model for detail-confidence tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TEXTS, random_image, tiny_recipe

# (height, width): different aspect ratios give different padded sizes and token counts
SIZES = [(40, 48), (20, 64), (64, 30), (33, 33), (48, 80)]


@pytest.fixture(scope="module")
def tiny():
    from depictqa.build import build_model

    recipe = tiny_recipe()
    torch.manual_seed(0)
    return build_model(recipe, texts=TEXTS).eval(), recipe


@pytest.fixture(scope="module")
def assessor(tiny):
    from depictqa.infer.assessor import Assessor, image_config

    model, recipe = tiny
    return Assessor(model, image_config(model, recipe), batch_size=4)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [random_image(10 + i, h, w) for i, (h, w) in enumerate(SIZES)]


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory) -> Path:
    from depictqa.checkpoint import save_pretrained

    model, recipe = tiny
    return save_pretrained(model, recipe, tmp_path_factory.mktemp("infer") / "ckpt")


def write_png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path.name


class FakeSentenceModel(torch.nn.Module):
    """A deterministic sentence 'embedding' (character counts): records what it was asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Linear(1, 1)  # a parameter, so the model has a device
        self.calls: list[list[str]] = []

    def encode(self, sentences, convert_to_tensor=True, normalize_embeddings=True, **_):
        self.calls.append(list(sentences))
        emb = torch.zeros(len(sentences), 128)
        for i, s in enumerate(sentences):
            for ch in s:
                emb[i, ord(ch) % 128] += 1.0
            emb[i, len(s) % 128] += 0.5  # so that a deletion always moves the embedding
        return torch.nn.functional.normalize(emb, dim=-1)
