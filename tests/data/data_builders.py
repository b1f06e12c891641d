"""Tiny samples for the data tests, made here, never downloaded (a uniquely named module so that
test files can import it without clashing with other folders' conftest.py)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from depictqa.data.schema import Sample


def png_bytes(width: int = 8, height: int = 6, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def tiny_sample(key: str, task: str = "assess", reference: bool = False, size: tuple[int, int] = (8, 6),
                **meta: object) -> Sample:
    names = {"assess": ("a",), "compare": ("a", "b"), "caption": ("img",)}[task]
    names = (("ref",) + names) if reference and task != "caption" else names
    images = {n: png_bytes(*size, seed=i) for i, n in enumerate(names)}
    conv = [{"from": "human", "value": f"question {key}"}, {"from": "gpt", "value": f"answer {key}"}]
    return Sample(key=key, task=task, reference=reference, conversations=conv, meta=dict(meta), images=images)
