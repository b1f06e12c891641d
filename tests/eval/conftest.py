"""Small fixtures built in the test: smooth images, noisy variants, a gt/prediction pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def smooth_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with a soft blob: structure for SSIM/VIF to measure."""
    y, x = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.2, 0.8, 3)
    blob = np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05)
    img = np.stack([0.5 * x + 0.3 * blob * c[0], 0.5 * y + 0.3 * c[1], 0.3 * blob + 0.4 * c[2]], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.astype(np.float64) + rng.normal(0, sigma * 255, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.fixture
def compare_set(tmp_path: Path) -> Path:
    """Three FR compare pairs (one of them A worse) and one NR pair, written as PNG + gt JSON."""
    records = []
    for i in range(3):
        ref = smooth_image(64, seed=i)
        weak, strong = noisy(ref, 0.02, i), noisy(ref, 0.15, i + 10)
        a, b = (weak, strong) if i != 1 else (strong, weak)
        for name, arr in (("ref", ref), ("a", a), ("b", b)):
            Image.fromarray(arr).save(tmp_path / f"{name}{i}.png")
        records.append({"id": f"c{i}", "task": "quality_compare", "image_ref": f"ref{i}.png",
                        "image_A": f"a{i}.png", "image_B": f"b{i}.png", "query": "Which?",
                        "answer": "Image A" if i != 1 else "Image B", "style": "single",
                        "A_better_B": i != 1})
    records.append({"id": "nr", "task": "quality_compare_noref", "image_ref": None,
                    "image_A": "a0.png", "image_B": "b0.png", "A_better_B": True})
    (tmp_path / "gt.json").write_text(json.dumps(records))
    return tmp_path / "gt.json"


@pytest.fixture
def assess():
    """Factory for assess ground-truth records."""
    return _assess


def _assess(id_: str, cats: list[str], severity: int | None = 2, style: str = "single",
           answer: str = "") -> dict:
    return {"id": id_, "task": "quality_single_A", "image_ref": "r.png", "image_A": "a.png",
            "image_B": None, "query": "q", "answer": answer, "style": style,
            "distortions": [{"category": c, "subtype": c.lower(), "severity": severity} for c in cats]}
