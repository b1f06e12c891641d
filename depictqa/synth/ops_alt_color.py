"""Second (and third) implementations of the tone, colour, sharpness, pixelation and
quantization sub-types (see :mod:`depictqa.synth.ops_alt_blur_noise` for why and the contract).

Most are Pillow's or scikit-image's own operations on 8-bit images (Pillow's integer HSV,
``ImageEnhance``, ``UnsharpMask``, ``Image.quantize``; ``skimage.exposure``), the others numpy
constructions that differ from the base (Lloyd-Max instead of Otsu levels, a k-means palette
instead of median cut, an arctangent instead of a logistic tone curve, a piecewise-linear
gamma curve).
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from depictqa.synth.ops_alt_blur_noise import from_pil, to_pil


def _pil_hsv(x: np.ndarray) -> np.ndarray:
    """Pillow's 8-bit HSV planes as float ``[H, W, 3]`` in 0..255."""
    return np.asarray(to_pil(x).convert("HSV"), np.float32)


def _from_pil_hsv(hsv: np.ndarray) -> np.ndarray:
    raw = np.clip(hsv + 0.5, 0, 255).astype(np.uint8)
    return from_pil(Image.frombytes("HSV", (hsv.shape[1], hsv.shape[0]), raw.tobytes()))


# --- brightness -----------------------------------------------------------------------------

def hsv_value_shift_pil(x, p, rng):
    hsv = _pil_hsv(x)
    hsv[..., 2] += p * 255
    return _from_pil_hsv(hsv)


def hsv_gamma_pil(x, p, rng):
    hsv = _pil_hsv(x)
    hsv[..., 2] = 255 * (hsv[..., 2] / 255) ** p
    return _from_pil_hsv(hsv)


def brightness_gain_pil(x, p, rng):
    """``ImageEnhance.Brightness``: a gain, not a shift; ``1 + 2p`` changes a mid-grey image
    about as much as the base's shift by ``p``."""
    return from_pil(ImageEnhance.Brightness(to_pil(x)).enhance(max(1 + 2 * p, 0.05)))


def rgb_gamma_curve(x, p, rng):
    """Gamma as a photo editor's curves tool makes it: ``x ** p`` at 9 knots, linear between."""
    knots = np.linspace(0, 1, 9)
    return np.interp(np.clip(x, 0, 1), knots, knots ** p).astype(np.float32)


# --- contrast -------------------------------------------------------------------------------

def contrast_linear_pil(x, p, rng):
    """``ImageEnhance.Contrast``: scales about the mean grey level (base: per-channel means)."""
    return from_pil(ImageEnhance.Contrast(to_pil(x)).enhance(p))


def contrast_sigmoid_skimage(x, p, rng):
    """``skimage.exposure.adjust_sigmoid`` (cut-off 0.5, gain ``p``), not renormalised."""
    from skimage.exposure import adjust_sigmoid
    return adjust_sigmoid(np.clip(x, 0, 1), cutoff=0.5, gain=p).astype(np.float32)


def contrast_arctan_down(x, p, rng):
    """An arctangent tone curve with the slope ``p / 4`` at mid-grey of the base's logistic."""
    k = np.pi * p / 4
    return (0.5 + np.arctan(k * (x - 0.5)) / np.pi).astype(np.float32)


# --- saturation -----------------------------------------------------------------------------

def saturation_hsv_pil(x, p, rng):
    hsv = _pil_hsv(x)
    hsv[..., 1] *= p
    return _from_pil_hsv(hsv)


def saturation_enhance_pil(x, p, rng):
    """``ImageEnhance.Color``: blends with the image's luma ("L") version."""
    return from_pil(ImageEnhance.Color(to_pil(x)).enhance(p))


# --- sharpness, pixelation ------------------------------------------------------------------

def oversharpen_pil(x, p, rng):
    return from_pil(to_pil(x).filter(ImageFilter.UnsharpMask(radius=1.5, percent=int(round(100 * p)), threshold=0)))


def pixelate_grid(x, p, rng):
    """Cell means on a grid of ``ceil(p * side)`` cells per side (cell ``i`` holds the pixels
    ``j`` with ``floor(j * p) == i``), each cell filled with its mean."""
    h, w = x.shape[:2]
    rows, cols = (np.arange(h) * p).astype(np.intp), (np.arange(w) * p).astype(np.intp)
    r0 = np.flatnonzero(np.diff(rows, prepend=-1))
    c0 = np.flatnonzero(np.diff(cols, prepend=-1))
    sums = np.add.reduceat(np.add.reduceat(x, r0, axis=0), c0, axis=1)
    counts = np.outer(np.diff(np.append(r0, h)), np.diff(np.append(c0, w)))[..., None]
    return (sums / counts)[rows][:, cols].astype(np.float32)


def pixelate_lanczos(x, p, rng):
    """Pillow's Lanczos reduction (base: box), enlarged by nearest neighbour."""
    h, w = x.shape[:2]
    small = to_pil(x).resize((max(1, round(w * p)), max(1, round(h * p))), Image.LANCZOS)
    return from_pil(small.resize((w, h), Image.NEAREST))


# --- quantization ---------------------------------------------------------------------------

def _lloyd_levels(v: np.ndarray, levels: int) -> np.ndarray:
    """Lloyd-Max quantiser of one 8-bit channel: 1-D k-means on its 256-bin histogram."""
    q = np.clip(v * 255 + 0.5, 0, 255).astype(np.intp)
    hist = np.bincount(q.ravel(), minlength=256).astype(np.float64)
    grey = np.arange(256, dtype=np.float64)
    cdf = np.cumsum(hist) / hist.sum()
    centres = np.unique(np.searchsorted(cdf, (np.arange(levels) + 0.5) / levels)).astype(np.float64)
    for _ in range(12):
        edges = (centres[1:] + centres[:-1]) / 2
        cls = np.searchsorted(edges, grey)
        mass = np.bincount(cls, hist, minlength=len(centres))
        moved = np.bincount(cls, hist * grey, minlength=len(centres))
        centres = np.where(mass > 0, moved / np.maximum(mass, 1), centres)
    cls = np.searchsorted((centres[1:] + centres[:-1]) / 2, grey)
    return (centres[cls] / 255).astype(np.float32)[q]


def quantize_lloyd(x, p, rng):
    return np.stack([_lloyd_levels(x[..., c], int(p)) for c in range(3)], axis=-1)


def quantize_octree(x, p, rng):
    return from_pil(to_pil(x).quantize(colors=int(p), method=Image.Quantize.FASTOCTREE))


def quantize_kmeans(x, p, rng):
    """A ``p``-colour palette by k-means on (at most) 2048 sampled pixels; nearest colour each."""
    from scipy.cluster.vq import kmeans2, vq
    pixels = np.clip(x, 0, 1).reshape(-1, 3).astype(np.float64)
    sample = pixels[rng.choice(len(pixels), min(2048, len(pixels)), replace=False)]
    distinct = np.unique(sample, axis=0)
    if len(distinct) <= int(p):  # already within the palette (k-means++ would divide by zero)
        palette = distinct
    else:
        with warnings.catch_warnings():  # a near-flat image leaves clusters empty: fewer colours, still valid
            warnings.simplefilter("ignore", UserWarning)
            palette, _ = kmeans2(sample, int(p), iter=8, minit="++", rng=rng)
    codes, _ = vq(pixels, palette)
    return palette[codes].reshape(x.shape).astype(np.float32)


def quantize_levels_pil(x, p, rng):
    """Rounds each 8-bit channel to ``p`` evenly spaced levels including black and white (a
    Pillow lookup table; base: ``p`` bins reconstructed at their centres)."""
    n = int(p)
    lut = [int(round(round(v / 255 * (n - 1)) * 255 / (n - 1))) for v in range(256)] * 3
    return from_pil(to_pil(x).point(lut))
