"""Brightness, contrast, saturation, sharpness, pixelation and quantization operators.

Same contract as :mod:`depictqa.synth.ops_blur_noise`: ``x`` float32 ``[H, W, 3]`` in [0, 1],
severity parameter ``p``, a ``numpy.random.Generator`` -> float32 ``[H, W, 3]``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color
from skimage.filters import threshold_otsu

from depictqa.synth.ops_blur_noise import _RGB2YCC


def hsv_value_shift(x, p, rng):
    hsv = color.rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + p, 0, 1)
    return color.hsv2rgb(hsv)


def rgb_shift(x, p, rng):
    return x + p


def hsv_gamma(x, p, rng):
    hsv = color.rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2], 0, 1) ** p
    return color.hsv2rgb(hsv)


def rgb_gamma(x, p, rng):
    return np.clip(x, 0, 1) ** p


def contrast_linear(x, p, rng):
    mean = x.mean(axis=(0, 1), keepdims=True)
    return (x - mean) * p + mean


def contrast_sigmoid_up(x, p, rng):
    """Normalised logistic curve of gain ``p``: identity as p->0, a hard step as p->inf."""
    lo, hi = 1 / (1 + np.exp(p / 2)), 1 / (1 + np.exp(-p / 2))
    return (1 / (1 + np.exp(-p * (x - 0.5))) - lo) / (hi - lo)


def contrast_sigmoid_down(x, p, rng):
    """Un-normalised logistic of small gain ``p``: output range shrinks to ~p/4 around grey."""
    return 1 / (1 + np.exp(-p * (x - 0.5)))


def saturation_hsv(x, p, rng):
    hsv = color.rgb2hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * p, 0, 1)
    return color.hsv2rgb(hsv)


def saturation_ycbcr(x, p, rng):
    ycc = x @ _RGB2YCC.T
    ycc[..., 1:] *= p
    return ycc @ np.linalg.inv(_RGB2YCC).T.astype(np.float32)


def oversharpen(x, p, rng):
    return x + p * (x - ndimage.gaussian_filter(x, sigma=(1.5, 1.5, 0)))


def pixelate(x, p, rng):
    h, w = x.shape[:2]
    img = Image.fromarray((x * 255 + 0.5).astype(np.uint8))
    small = img.resize((max(1, round(w * p)), max(1, round(h * p))), Image.BOX)
    return np.asarray(small.resize((w, h), Image.NEAREST), np.float32) / 255


def _otsu_levels(v: np.ndarray, levels: int) -> np.ndarray:
    """Quantise one channel to ``levels`` class means by repeated Otsu splits.

    skimage's ``threshold_multiotsu`` searches all threshold combinations, which is intractable
    for 15 classes, so the class with the largest spread is split by a binary Otsu threshold
    until there are ``levels`` classes (a greedy approximation of multi-level Otsu).
    """
    labels = np.zeros(v.shape, np.int32)
    for k in range(1, levels):
        spreads = [v[labels == c].var() if (labels == c).sum() > 1 else -1 for c in range(k)]
        c = int(np.argmax(spreads))
        if spreads[c] <= 1e-8:
            break
        sel = labels == c
        t = threshold_otsu(v[sel])
        labels[sel & (v > t)] = k
    means = ndimage.mean(v, labels, index=np.arange(labels.max() + 1))
    return np.asarray(means, np.float32)[labels]


def quantize_otsu(x, p, rng):
    return np.stack([_otsu_levels(x[..., c], int(p)) for c in range(3)], axis=-1)


def quantize_median_cut(x, p, rng):
    img = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(img.quantize(colors=int(p), method=Image.Quantize.MEDIANCUT).convert("RGB"),
                      np.float32) / 255


def quantize_histogram(x, p, rng):
    bins = int(p)
    return (np.minimum(np.floor(x * bins), bins - 1) + 0.5) / bins
