"""Contract tests over every registered distortion sub-type (shape, determinism, monotone severity)."""

from __future__ import annotations

import numpy as np
import pytest

from depictqa.synth import apply_distortion, list_distortions
from depictqa.synth.distortions import (CATEGORIES, DistortionFailed, compatible, sample_distortions)

RECORDS = [r for r in list_distortions() if r.available]


IMAGE_SIZE = 80  # the probe images' side (tests/synth/conftest.py)


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
    assert not compatible("blur", "oversharpen") and not compatible("blur", "pixelate")


def test_two_distortion_pairs_are_the_official_43():
    """The official table allows 43 of the 66 unordered pairs; drawing covers exactly those."""
    from depictqa.synth.distortions import ALLOWED_PAIRS, SECOND

    assert len(ALLOWED_PAIRS) == 43 and set(SECOND) == set(CATEGORIES)
    assert SECOND["oversharpen"] == ("brighten",)  # the one-way entry: oversharpen -> brighten only
    rng = np.random.default_rng(1)
    drawn = {frozenset(d["category"] for d in sample_distortions(rng, 2)) for _ in range(4000)}
    assert drawn == set(ALLOWED_PAIRS)


def test_jpeg2000_spans_the_official_psnr_range(images):
    """Severity 1 -> 5 targets 29 -> 23 dB: the measured PSNR falls and stays near the targets."""
    from depictqa.synth.distortions import info

    if not info("compression.jpeg2000").available:
        pytest.skip("Pillow was built without OpenJPEG")
    assert info("compression.jpeg2000").params[0] == 29 and info("compression.jpeg2000").params[-1] == 23
    ref = images[0].astype(np.float64)
    psnr = []
    for sev in (1, 3, 5):
        out = apply_distortion("compression.jpeg2000", images[0], sev).astype(np.float64)
        psnr.append(10 * np.log10(255 ** 2 / np.mean((out - ref) ** 2)))
    assert psnr[0] > psnr[1] > psnr[2]
    assert 26 < psnr[0] < 32 and 20 < psnr[2] < 26, psnr
