"""Contract tests over every registered distortion sub-type (shape, determinism, monotone severity)."""

from __future__ import annotations

import numpy as np
import pytest

from depictqa.synth import apply_distortion, list_distortions
from depictqa.synth.distortions import (CATEGORIES, DistortionFailed, compatible, sample_distortions)
from depictqa.synth.scenes import make_scene
from depictqa.synth.sources import embedded_images

RECORDS = [r for r in list_distortions() if r.available]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    photos = {p.id: p.pixels for p in embedded_images()}
    from PIL import Image
    out = [np.asarray(Image.fromarray(photos[k][:256, :256]).resize((80, 80)))
           for k in ("skimage/astronaut", "skimage/coffee")]
    out.append(make_scene(np.random.default_rng(3), 80)[0])
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return 10 * np.log10(255 ** 2 / max(mse, 1e-10))


def test_registry_has_35_subtypes_in_12_categories():
    records = list_distortions()
    assert len(records) == 35
    assert {r.category for r in records} == set(CATEGORIES)
    assert len({r.name for r in records}) == 35
    assert all(len(r.params) == 5 for r in records)


@pytest.mark.parametrize("name", [r.name for r in RECORDS])
def test_shape_dtype_determinism_and_monotone_severity(name, images):
    # mean PSNR over the images on which all five severities apply (a failure is allowed: the
    # sampler redraws), so every severity is averaged over the same images
    table = []
    for img in images:
        row = []
        for sev in (1, 2, 3, 4, 5):
            try:
                out = apply_distortion(name, img, sev, seed=11)
            except DistortionFailed:
                break
            assert out.shape == img.shape and out.dtype == np.uint8
            assert np.array_equal(out, apply_distortion(name, img, sev, seed=11))
            row.append(_psnr(out, img))
        if len(row) == 5:
            table.append(row)
    assert len(table) >= 2, f"{name} failed on most test images"
    means = np.mean(table, axis=0)
    assert all(a > b for a, b in zip(means, means[1:])), f"{name}: PSNR not decreasing {means}"


def test_unknown_name_lists_valid_names(images):
    with pytest.raises(KeyError) as err:
        apply_distortion("blur.unknown", images[0], 1)
    assert "blur.gaussian" in str(err.value) and "quantization.histogram" in str(err.value)


def test_flat_image_quantization_fails_instead_of_lying():
    flat = np.full((64, 64, 3), 128, np.uint8)
    with pytest.raises(DistortionFailed):
        apply_distortion("quantization.otsu", flat, 3)
    grey = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 64, 0).repeat(3, 2)
    with pytest.raises(DistortionFailed):
        apply_distortion("saturate_weaken.hsv", grey, 5)


def test_two_distortion_sampling_respects_compatibility():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = sample_distortions(rng, 2)
        assert compatible(a["category"], b["category"])
        assert 1 <= a["severity"] <= 3 and 1 <= b["severity"] <= 3
    assert not compatible("brighten", "darken") and not compatible("saturate_weaken", "saturate_strengthen")
