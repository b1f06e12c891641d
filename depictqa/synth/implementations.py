"""Every sub-type rendered several ways, at a strength anywhere in its severity's band.

A model trained on one function per distortion can learn that function's fingerprint (its
kernel, its rounding, its codec) instead of the visible effect, and then fails on the same
damage made by other software. So each sub-type has its *base* implementation (the one in the
taxonomy table of :mod:`depictqa.synth.distortions`) and one or more others (Pillow,
scikit-image, other numpy/scipy constructions), and the sampler draws one of them and a
parameter inside the severity's band for every distortion it applies.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from depictqa.synth import ops_alt_blur_noise as ab
from depictqa.synth import ops_alt_color as ac

BASE = "base"
Op = Callable[[np.ndarray, object, np.random.Generator], np.ndarray]

# sub-type -> {implementation name: operator}, besides the base one
ALTERNATIVES: dict[str, dict[str, Op]] = {
    "blur.gaussian": {"pil": ab.gaussian_blur_pil, "cv": ab.gaussian_blur_cv},
    "blur.motion": {"antialiased": ab.motion_blur_antialiased},
    "blur.glass": {"bilinear": ab.glass_blur_bilinear},
    "blur.lens": {"hexagon": ab.lens_blur_hexagon},
    "blur.zoom": {"affine": ab.zoom_blur_affine},
    "blur.jitter": {"bilinear": ab.jitter_blur_bilinear},
    "noise.gaussian_rgb": {"skimage": ab.gaussian_noise_skimage},
    "noise.gaussian_ycbcr": {"pil": ab.gaussian_noise_ycbcr_pil},
    "noise.speckle": {"uniform": ab.speckle_noise_uniform},
    "noise.spatially_correlated": {"upsampled": ab.correlated_noise_upsampled},
    "noise.poisson": {"gaussian": ab.poisson_noise_gaussian},
    "noise.impulse": {"skimage": ab.impulse_noise_skimage},
    "compression.jpeg": {"pil_444": ab.jpeg_444, "dct": ab.jpeg_dct},
    "compression.jpeg2000": {"irreversible": ab.jpeg2000_irreversible},
    **{f"{cat}.hsv_value": {"pil": ac.hsv_value_shift_pil} for cat in ("brighten", "darken")},
    **{f"{cat}.rgb_shift": {"pil_gain": ac.brightness_gain_pil} for cat in ("brighten", "darken")},
    **{f"{cat}.hsv_gamma": {"pil": ac.hsv_gamma_pil} for cat in ("brighten", "darken")},
    **{f"{cat}.rgb_gamma": {"curve": ac.rgb_gamma_curve} for cat in ("brighten", "darken")},
    **{f"contrast_{d}.linear": {"pil": ac.contrast_linear_pil} for d in ("strengthen", "weaken")},
    "contrast_strengthen.sigmoid": {"skimage": ac.contrast_sigmoid_skimage},
    "contrast_weaken.sigmoid": {"arctan": ac.contrast_arctan_down},
    **{f"saturate_{d}.hsv": {"pil": ac.saturation_hsv_pil} for d in ("strengthen", "weaken")},
    **{f"saturate_{d}.ycbcr": {"pil": ac.saturation_enhance_pil} for d in ("strengthen", "weaken")},
    "oversharpen.unsharp": {"pil": ac.oversharpen_pil},
    "pixelate.block": {"grid": ac.pixelate_grid, "lanczos": ac.pixelate_lanczos},
    "quantization.otsu": {"lloyd": ac.quantize_lloyd},
    "quantization.median_cut": {"octree": ac.quantize_octree, "kmeans": ac.quantize_kmeans},
    "quantization.histogram": {"pil": ac.quantize_levels_pil},
}


def implementations(name: str) -> tuple[str, ...]:
    """Implementation names of sub-type ``name``: ``"base"`` first, then the others."""
    return (BASE, *ALTERNATIVES.get(name, {}))


def operator(name: str, impl: str, base: Op) -> Op:
    """The operator of ``impl`` for ``name`` (``base`` for ``"base"``); unknown names list the valid."""
    if impl == BASE:
        return base
    found = ALTERNATIVES.get(name, {}).get(impl)
    if found is None:
        raise KeyError(f"unknown implementation {impl!r} of {name}; valid: {', '.join(implementations(name))}")
    return found


def _lerp(a, b, t: float):
    if isinstance(a, tuple):
        return tuple(_lerp(u, v, t) for u, v in zip(a, b))
    return a + (b - a) * t


def parameter(params: tuple, severity: int, strength: float | None):
    """The parameter of ``severity`` (1-5) at ``strength`` in [0, 1] of its band.

    ``params`` lists the five severities' values weakest -> strongest. Severity ``s``'s band runs
    from halfway to severity ``s - 1``'s value to halfway to ``s + 1``'s, cut at the first and
    last values, so the bands tile the official range without overlap: for one ``strength`` the
    parameter is monotone in severity. ``strength=None`` gives the listed value itself.
    """
    value = params[severity - 1]
    if strength is None:
        return value
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength!r}")
    lo = value if severity == 1 else _lerp(params[severity - 2], value, 0.5)
    hi = value if severity == len(params) else _lerp(value, params[severity], 0.5)
    return _lerp(lo, hi, strength)
