"""Foreign distortions: the 12 categories made by code the synthesiser never uses, for testing only.

A model trained on ``depictqa synth`` data has only seen the synthesiser's operators. To measure
whether it learned the visible effect or the operators' fingerprints, this module renders every
category with its own, separately written operation (box blur, uniform noise, WebP, exposure in
linear light, percentile stretch, CIELAB chroma, Laplacian sharpening, decimation, YCbCr
posterisation, ...) and builds held-out test metas from them. It imports nothing from the
synthesiser's distortion code (tested), and nothing it makes is ever used for training.

``foreign_distort(category, image, severity, seed)`` distorts one uint8 ``[H, W, 3]`` image;
``build_foreign_test_set(out_dir, samples, seed, size)`` writes the test metas (the four
``single``-style files of the synthetic test set, same fields) and their images.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from depictqa.labels import DISTORTIONS

SUBTYPE = "foreign"  # the sub-type every foreign record carries (``distortion_name`` "blur.foreign")
# what the official NR test sets leave out at severity 1 (invisible without a reference)
SUBTLE_AT_SEVERITY_1 = frozenset({"brighten", "darken", "contrast_strengthen", "contrast_weaken",
                                  "saturate_strengthen", "saturate_weaken", "quantization", "oversharpen"})
# (test file stem, official task, reference image shown)
STEMS = (("quality_single_A_noref_single", "quality_single_A_noref", False),
         ("quality_single_A_single", "quality_single_A", True),
         ("quality_compare_noref_single", "quality_compare_noref", False),
         ("quality_compare_single", "quality_compare", True))
PHOTO_RATE = 0.7  # share of photo crops (the rest: procedural scenes), as in the synthetic test set


def _box_blur(x, r, rng):
    img = Image.fromarray((x * 255 + 0.5).astype(np.uint8)).filter(ImageFilter.BoxBlur(r))
    return np.asarray(img, np.float32) / 255


def _uniform_noise(x, a, rng):
    return x + rng.uniform(-1, 1, x.shape).astype(np.float32) * a


def _webp(x, quality, rng):
    buf = io.BytesIO()
    Image.fromarray((x * 255 + 0.5).astype(np.uint8)).save(buf, format="WEBP", quality=int(quality), method=4)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.float32) / 255


def _exposure(x, gain, rng):
    """Multiply the light (sRGB decoded to linear, scaled, re-encoded): a camera's exposure."""
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    lin = np.clip(lin * gain, 0, 1)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def _luma(x):
    return x[..., 0] * 0.2126 + x[..., 1] * 0.7152 + x[..., 2] * 0.0722


def _stretch(x, cut, rng):
    """Auto-levels: the luma's ``cut`` and ``1 - cut`` quantiles become black and white."""
    lo, hi = np.quantile(_luma(x), [cut, 1 - cut])
    if hi - lo < 1e-3:
        raise ValueError("flat image")
    return (x - lo) / (hi - lo)


def _flatten(x, keep, rng):
    """Pull every value toward the median luma, keeping ``keep`` of the difference."""
    m = float(np.median(_luma(x)))
    return m + (x - m) * keep


def _lab_chroma(x, factor, rng):
    from skimage.color import lab2rgb, rgb2lab
    import warnings

    lab = rgb2lab(x)
    lab[..., 1:] *= factor
    with warnings.catch_warnings():  # colours pushed out of gamut are clipped, which is the point
        warnings.simplefilter("ignore", UserWarning)
        return lab2rgb(lab).astype(np.float32)


def _laplacian_sharpen(x, k, rng):
    """Subtract ``k`` times the 4-neighbour Laplacian (a 3x3 sharpening kernel)."""
    from scipy.ndimage import convolve
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)[..., None]  # per channel
    return x - k * convolve(x, lap, mode="nearest")


def _decimate(x, block, rng):
    """Keep the top-left pixel of every ``block``-wide cell and repeat it over the cell."""
    h, w = x.shape[:2]
    rows = (np.floor(np.arange(h) / block) * block).astype(np.intp)
    cols = (np.floor(np.arange(w) / block) * block).astype(np.intp)
    return x[rows][:, cols]


def _ycc_posterise(x, levels, rng):
    """Luma and both chroma planes rounded to ``levels`` evenly spaced values each."""
    m = np.array([[0.299, 0.587, 0.114], [-0.169, -0.331, 0.5], [0.5, -0.419, -0.081]], np.float32)
    ycc = x @ m.T + np.array([0, 0.5, 0.5], np.float32)
    ycc = np.round(np.clip(ycc, 0, 1) * (levels - 1)) / (levels - 1)
    return (ycc - np.array([0, 0.5, 0.5], np.float32)) @ np.linalg.inv(m).T


# category -> (operation, five parameters weakest -> strongest)
FOREIGN: dict[str, tuple[Callable, tuple]] = {
    "blur": (_box_blur, (1, 2, 3, 4, 6)),
    "noise": (_uniform_noise, (0.09, 0.17, 0.26, 0.35, 0.43)),
    "compression": (_webp, (20, 10, 5, 2, 0)),
    "brighten": (_exposure, (1.4, 1.8, 2.4, 3.2, 4.2)),
    "darken": (_exposure, (0.7, 0.5, 0.33, 0.2, 0.12)),
    "contrast_strengthen": (_stretch, (0.01, 0.03, 0.06, 0.1, 0.16)),
    "contrast_weaken": (_flatten, (0.72, 0.55, 0.4, 0.27, 0.16)),
    "saturate_strengthen": (_lab_chroma, (1.5, 2.0, 2.6, 3.3, 4.0)),
    "saturate_weaken": (_lab_chroma, (0.7, 0.5, 0.33, 0.18, 0.05)),
    "oversharpen": (_laplacian_sharpen, (0.5, 0.8, 1.2, 1.7, 2.4)),
    "pixelate": (_decimate, (2, 3, 4, 5, 6)),
    "quantization": (_ycc_posterise, (20, 14, 10, 7, 4)),
}


def foreign_distort(category: str, image: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """Distort uint8 ``[H, W, 3]`` ``image`` with the foreign ``category`` at ``severity`` (1-5).

    Deterministic in ``seed``. Raises ``KeyError`` (unknown category, valid ones listed),
    ``ValueError`` (bad severity or image, or an image the operation cannot visibly change).
    """
    if category not in FOREIGN:
        raise KeyError(f"unknown category {category!r}; valid: {', '.join(FOREIGN)}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1-5, got {severity!r}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    op, params = FOREIGN[category]
    y = op(image.astype(np.float32) / 255, params[severity - 1], np.random.default_rng(seed))
    out = (np.clip(np.nan_to_num(y), 0, 1) * 255 + 0.5).astype(np.uint8)
    if np.mean((out.astype(np.float32) - image) ** 2) < 2.0:  # PSNR > 45 dB: nothing to see
        raise ValueError(f"{category} at severity {severity} leaves this image (almost) unchanged")
    return out


def _clean(rng: np.random.Generator, photos: list, size: int, index: int) -> tuple[np.ndarray, dict]:
    from depictqa.synth.scenes import make_scene
    from depictqa.synth.sources import random_crop

    if photos and rng.random() < PHOTO_RATE:
        return random_crop(photos[int(rng.integers(len(photos)))], rng, size, "test")
    return make_scene(rng, size)[0], {"id": f"scene/foreign/{index}", "box": [0, 0, size, size], "split": "test"}


def _record(rng: np.random.Generator, clean: np.ndarray, category: str, task: str, reference: bool):
    """(images by key, ground-truth fields) of one sample; None when the draw cannot be seen."""
    low = 2 if not reference and category in SUBTLE_AT_SEVERITY_1 else 1
    seed = int(rng.integers(2**31))
    ref = {"ref": clean} if reference else {}
    try:
        if task.startswith("quality_single"):
            severity = int(rng.integers(low, 6))
            label = DISTORTIONS[category][0]
            dist = [{"category": category, "subtype": SUBTYPE, "severity": severity}]
            return {"a": foreign_distort(category, clean, severity, seed), **ref}, {
                "answer": label, "distortions": dist, "distortion_class": label,
                "distortion_name": f"{category}.{SUBTYPE}", "severity": severity, "label": label}
        # one category at two severities at least two apart: which image is better is unambiguous
        sa, sb = rng.choice([(a, b) for a in range(low, 6) for b in range(low, 6) if abs(a - b) >= 2])
        images = {"a": foreign_distort(category, clean, int(sa), seed),
                  "b": foreign_distort(category, clean, int(sb), seed), **ref}
    except ValueError:
        return None
    def side(s) -> list[dict]:
        return [{"category": category, "subtype": SUBTYPE, "severity": int(s)}]
    return images, {"answer": "Image A" if sa < sb else "Image B", "distortions_A": side(sa),
                    "distortions_B": side(sb), "A_better_B": bool(sa < sb), "distortion_class": None,
                    "distortion_name": None, "severity": None}


def build_foreign_test_set(out_dir: str | os.PathLike, samples: int = 400, seed: int = 0, size: int = 64,
                           images: str | os.PathLike | None = None) -> dict[str, int]:
    """Write the foreign-distortion test set under ``out_dir``; returns ``{file stem: items}``.

    The four ``single``-style files of the synthetic test set (``quality_single_A_noref_single``,
    ``quality_single_A_single``, ``quality_compare_noref_single``, ``quality_compare_single``,
    ``samples`` spread evenly over them), in the same format: official inference fields (``id``,
    ``image_ref``, ``image_A``, ``image_B``, ``query``, ``answer``) plus ground truth
    (``task``, ``style``, ``distortions`` or ``distortions_A``/``_B`` + ``A_better_B``,
    ``distortion_class``, ``distortion_name``, ``severity``, ``source``); PNGs in
    ``out_dir/images``, paths relative to ``out_dir``. Crops come from the held-out (test) columns
    of the embedded photos (or of ``images``) and from procedural scenes; one distortion per image,
    the 12 categories in turn (compare pairs: one category at two severities at least 2 apart).
    Sample ``i`` depends only on ``(seed, i)``.
    """
    from depictqa.synth.questions import question
    from depictqa.synth.sources import embedded_images, folder_images

    if samples < 0 or size < 32:
        raise ValueError(f"need samples >= 0 and size >= 32, got samples={samples}, size={size}")
    photos = folder_images(images)[0] if images is not None else embedded_images()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    written = {}
    for k, (stem, task, reference) in enumerate(STEMS):
        items = []
        for n, i in enumerate(range(k, samples, len(STEMS))):
            rng = np.random.default_rng([seed, 7, i])
            category = list(FOREIGN)[n % len(FOREIGN)]  # every file covers the categories evenly
            for _ in range(50):
                clean, source = _clean(rng, photos, size, i)
                got = _record(rng, clean, category, task, reference)
                if got is not None:
                    break
            else:
                raise RuntimeError(f"foreign sample {i}: no visible distortion in 50 draws")
            pictures, truth = got
            sid = f"foreign{i:06d}"
            paths = {field: (f"images/{sid}_{key}.png" if key in pictures else None)
                     for key, field in (("ref", "image_ref"), ("a", "image_A"), ("b", "image_B"))}
            for key, pixels in pictures.items():
                Image.fromarray(pixels).save(out / f"images/{sid}_{key}.png", compress_level=1)
            query = question("compare" if "compare" in task else "assess", "single", reference, rng)
            items.append({"id": sid, **paths, "query": query, "answer": truth.pop("answer"), "task": task,
                          "style": "single", **truth, "source": source})
        (out / f"{stem}.json").write_text(json.dumps(items, indent=1))
        written[stem] = len(items)
    return written
