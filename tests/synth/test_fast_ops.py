"""The speed-ups in the synth pipeline are exact: same pixels as the straightforward versions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import color
from skimage.filters import threshold_otsu

from depictqa.synth import ops_color as oc
from depictqa.synth.build import encode_png
from depictqa.synth.scenes import make_scene
from depictqa.synth.sources import embedded_images


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    photos = embedded_images()
    out = [p.pixels[:96, :96] for p in photos[:6]] + [make_scene(rng, 64)[0] for _ in range(3)]
    out += [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),          # random colours, all hues
            rng.integers(0, 3, (32, 32, 3), dtype=np.uint8),            # many ties between channels
            np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8),
            np.repeat(rng.integers(0, 256, (16, 16, 1), dtype=np.uint8), 3, 2)]  # grey: delta == 0
    return out


def test_hsv_conversions_match_skimage_bit_for_bit(images):
    for img in images:
        x = img.astype(np.float32) / 255
        ref = color.rgb2hsv(x)
        hsv = oc.rgb2hsv(x)
        assert hsv.dtype == ref.dtype == np.float32
        assert np.array_equal(np.moveaxis(hsv, 0, -1), ref)
        for scale in ((1, 1, 1), (1, 0.4, 1.2), (1, 3.0, 0.7)):
            mod = np.clip(ref * np.float32(scale), 0, 1).astype(np.float32)
            planar = np.ascontiguousarray(np.moveaxis(mod, -1, 0))
            assert np.array_equal(oc.hsv2rgb(planar), color.hsv2rgb(mod))


def _otsu_reference(v: np.ndarray, levels: int) -> np.ndarray:
    """The original greedy multi-level Otsu (recomputes every class's variance each split)."""
    labels = np.zeros(v.shape, np.int32)
    for k in range(1, levels):
        spreads = [v[labels == c].var() if (labels == c).sum() > 1 else -1 for c in range(k)]
        c = int(np.argmax(spreads))
        if spreads[c] <= 1e-8:
            break
        sel = labels == c
        labels[sel & (v > threshold_otsu(v[sel]))] = k
    means = ndimage.mean(v, labels, index=np.arange(labels.max() + 1))
    return np.asarray(means, np.float32)[labels]


def test_otsu_levels_match_the_reference(images):
    for img in images[:9]:
        x = img.astype(np.float32) / 255
        for levels in (15, 7, 3):
            for c in range(3):
                assert np.array_equal(oc._otsu_levels(x[..., c], levels), _otsu_reference(x[..., c], levels))


def test_png_encoder_is_lossless(images):
    for img in images + [np.ascontiguousarray(images[0][::2, 1::3])]:
        data = encode_png(img)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), img)
