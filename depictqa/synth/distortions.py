"""The DQ-495K distortion taxonomy: 12 categories, 35 sub-types, 5 severities each.

``apply(name, image, severity, seed)`` maps a uint8 ``[H, W, 3]`` image to a uint8 ``[H, W, 3]``
image; the result depends only on the arguments. The five parameters of each sub-type are listed
in ``_TABLE`` in increasing strength, so severity is monotone in effect (tested by PSNR).
A distortion that cannot act on an image (quantising a flat patch, desaturating a grey one)
raises :class:`DistortionFailed`; samplers draw again instead of writing a wrong label.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from depictqa.labels import CLEAN, DISTORTIONS
from depictqa.synth import implementations as impls
from depictqa.synth import ops_blur_noise as bn
from depictqa.synth import ops_color as oc

SEVERITIES = (1, 2, 3, 4, 5)
SEVERITY_WORDS = {1: "slight", 2: "moderate", 3: "obvious", 4: "serious", 5: "catastrophic"}

# category -> (canonical label used by `single` answers and evaluation, user-facing phrase)
CATEGORIES: dict[str, tuple[str, str]] = DISTORTIONS
CLEAN_LABEL = CLEAN

# Categories whose severity-1 effect is invisible without a reference (dropped from NR tests).
SUBTLE_AT_SEVERITY_1 = frozenset({"brighten", "darken", "contrast_strengthen", "contrast_weaken",
                                  "saturate_strengthen", "saturate_weaken", "quantization", "oversharpen"})

# Two-distortion samples, as in DQ-495K: the first category, then a second one from its list.
# The lists are those of the official data (43 unordered pairs of the 66); they leave out pairs
# whose effects cancel or hide each other (brighten + darken, blur + oversharpen, ...).
_LIGHT = ("blur", "compression", "noise", "pixelate", "quantization")  # after a tone change
_SATURATION = ("blur", "compression", "noise", "oversharpen", "pixelate", "quantization")
_TONE = ("brighten", "contrast_strengthen", "contrast_weaken", "darken")
SECOND: dict[str, tuple[str, ...]] = {
    "blur": (*_TONE, "compression", "noise", "quantization", "saturate_strengthen", "saturate_weaken"),
    **{tone: _LIGHT for tone in _TONE},
    "compression": ("blur", *_TONE, "noise", "saturate_strengthen", "saturate_weaken"),
    "noise": ("blur", *_TONE, "compression", "oversharpen", "pixelate", "saturate_strengthen",
              "saturate_weaken"),
    "oversharpen": ("brighten",),
    "pixelate": (*_TONE, "noise", "oversharpen", "quantization", "saturate_strengthen", "saturate_weaken"),
    "quantization": (*_TONE, "noise", "oversharpen", "pixelate", "saturate_strengthen", "saturate_weaken"),
    "saturate_strengthen": _SATURATION,
    "saturate_weaken": _SATURATION,
}
ALLOWED_PAIRS = frozenset(frozenset((a, b)) for a, seconds in SECOND.items() for b in seconds)

# Order in which two distortions are applied (and named): acquisition -> processing -> storage.
PIPELINE_ORDER = ("blur", "pixelate", "contrast_strengthen", "contrast_weaken", "brighten", "darken",
                  "saturate_strengthen", "saturate_weaken", "oversharpen", "quantization", "noise",
                  "compression")

# name -> (operator, five parameters weakest->strongest, quality-model weight)
_TABLE: dict[str, tuple] = {
    "blur.gaussian": (bn.gaussian_blur, (1, 2, 3, 4, 5), 1.0),
    "blur.motion": (bn.motion_blur, (5, 9, 13, 17, 20), 1.0),
    "blur.glass": (bn.glass_blur, ((0.6, 1), (0.8, 2), (1.0, 2), (1.2, 3), (1.4, 4)), 1.1),
    "blur.lens": (bn.lens_blur, (2, 3, 4, 6, 8), 1.0),
    "blur.zoom": (bn.zoom_blur, (1.05, 1.09, 1.13, 1.17, 1.21), 0.9),
    "blur.jitter": (bn.jitter_blur, (1, 2, 3, 4, 5), 0.8),
    "noise.gaussian_rgb": (bn.gaussian_noise_rgb, (0.05, 0.1, 0.15, 0.2, 0.25), 1.0),
    "noise.gaussian_ycbcr": (bn.gaussian_noise_ycbcr, (0.05, 0.1, 0.15, 0.2, 0.25), 0.9),
    "noise.speckle": (bn.speckle_noise, (0.14, 0.21, 0.28, 0.35, 0.42), 0.9),
    "noise.spatially_correlated": (bn.correlated_noise, (0.04, 0.08, 0.12, 0.16, 0.2), 0.8),
    "noise.poisson": (bn.poisson_noise, (80, 40, 20, 10, 5), 0.8),
    "noise.impulse": (bn.impulse_noise, (0.01, 0.03, 0.05, 0.07, 0.1), 1.0),
    "compression.jpeg": (bn.jpeg, (25, 18, 12, 8, 5), 0.8),
    "compression.jpeg2000": (bn.jpeg2000, (29, 27.5, 26, 24.5, 23), 0.8),
    "brighten.hsv_value": (oc.hsv_value_shift, (0.1, 0.2, 0.3, 0.4, 0.5), 0.6),
    "brighten.rgb_shift": (oc.rgb_shift, (0.08, 0.16, 0.24, 0.32, 0.4), 0.6),
    "brighten.hsv_gamma": (oc.hsv_gamma, (0.8, 0.65, 0.5, 0.4, 0.3), 0.6),
    "brighten.rgb_gamma": (oc.rgb_gamma, (0.8, 0.65, 0.5, 0.4, 0.3), 0.6),
    "darken.hsv_value": (oc.hsv_value_shift, (-0.1, -0.2, -0.3, -0.4, -0.5), 0.6),
    "darken.rgb_shift": (oc.rgb_shift, (-0.08, -0.16, -0.24, -0.32, -0.4), 0.6),
    "darken.hsv_gamma": (oc.hsv_gamma, (1.3, 1.7, 2.2, 2.8, 3.5), 0.6),
    "darken.rgb_gamma": (oc.rgb_gamma, (1.3, 1.7, 2.2, 2.8, 3.5), 0.6),
    "contrast_strengthen.linear": (oc.contrast_linear, (1.4, 1.8, 2.4, 3.0, 4.0), 0.6),
    "contrast_strengthen.sigmoid": (oc.contrast_sigmoid_up, (5, 7, 9, 12, 16), 0.6),
    "contrast_weaken.linear": (oc.contrast_linear, (0.75, 0.6, 0.45, 0.3, 0.2), 0.6),
    "contrast_weaken.sigmoid": (oc.contrast_sigmoid_down, (3.0, 2.2, 1.6, 1.1, 0.7), 0.6),
    "saturate_strengthen.hsv": (oc.saturation_hsv, (1.5, 2.0, 2.6, 3.3, 4.0), 0.45),
    "saturate_strengthen.ycbcr": (oc.saturation_ycbcr, (1.5, 2.0, 2.6, 3.3, 4.0), 0.45),
    "saturate_weaken.hsv": (oc.saturation_hsv, (0.7, 0.5, 0.35, 0.2, 0.05), 0.45),
    "saturate_weaken.ycbcr": (oc.saturation_ycbcr, (0.7, 0.5, 0.35, 0.2, 0.05), 0.45),
    "oversharpen.unsharp": (oc.oversharpen, (2, 3, 4.5, 6, 8), 0.7),
    "pixelate.block": (oc.pixelate, (0.5, 0.4, 0.33, 0.25, 0.2), 1.0),
    "quantization.otsu": (oc.quantize_otsu, (15, 10, 7, 5, 3), 0.8),
    "quantization.median_cut": (oc.quantize_median_cut, (20, 14, 9, 6, 3), 0.8),
    "quantization.histogram": (oc.quantize_histogram, (24, 16, 10, 6, 4), 0.8),
}


class DistortionFailed(RuntimeError):
    """The distortion could not change this image visibly; the caller should draw another."""


@dataclass(frozen=True)
class DistortionInfo:
    """One registered sub-type. ``name`` is ``"category.subtype"``."""

    name: str
    category: str
    subtype: str
    label: str
    phrase: str
    params: tuple
    weight: float
    available: bool
    implementations: tuple[str, ...] = (impls.BASE,)


@lru_cache(maxsize=1)
def _jpeg2000_available() -> bool:
    from PIL import features
    return bool(features.check("jpg_2000"))


@lru_cache(maxsize=2)
def _records(available_only: bool) -> tuple[DistortionInfo, ...]:
    out = []
    for name, (_, params, weight) in _TABLE.items():
        cat, sub = name.split(".", 1)
        ok = _jpeg2000_available() if name == "compression.jpeg2000" else True
        if ok or not available_only:
            out.append(DistortionInfo(name, cat, sub, *CATEGORIES[cat], params, weight, ok,
                                      impls.implementations(name)))
    return tuple(out)


@lru_cache(maxsize=1)
def _by_name() -> dict[str, DistortionInfo]:
    return {r.name: r for r in _records(False)}


@lru_cache(maxsize=1)
def _subtypes() -> dict[str, list[str]]:
    """category -> available sub-types in taxonomy order (what the sampler draws from)."""
    out: dict[str, list[str]] = {}
    for r in _records(True):
        out.setdefault(r.category, []).append(r.subtype)
    return out


def list_distortions(available_only: bool = False) -> list[DistortionInfo]:
    """Every sub-type (35), in taxonomy order; jpeg2000 is unavailable without OpenJPEG."""
    return list(_records(available_only))


def info(name: str) -> DistortionInfo:
    """The record of ``name``; unknown names fail with the valid names listed."""
    record = _by_name().get(name)
    if record is None:
        raise KeyError(f"unknown distortion {name!r}; valid: {', '.join(_TABLE)}")
    return record


def apply(name: str, image: np.ndarray, severity: int, seed: int = 0, impl: str = impls.BASE,
          strength: float | None = None) -> np.ndarray:
    """Distort ``image`` (uint8 ``[H, W, 3]``) -> uint8 ``[H, W, 3]``; deterministic in its arguments.

    ``impl``: one of ``info(name).implementations`` (default: the base implementation).
    ``strength`` in [0, 1]: where the parameter lies inside the severity's band
    (:func:`depictqa.synth.implementations.parameter`); ``None``: the listed value.
    Raises ``KeyError`` (unknown name or implementation), ``ValueError`` (bad severity, strength
    or image) or :class:`DistortionFailed` (no visible change, or the operator cannot handle this image).
    """
    record = info(name)
    fn = impls.operator(name, impl, _TABLE[name][0])
    if not record.available:
        raise DistortionFailed(f"{name} is unavailable (Pillow lacks OpenJPEG)")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    p = impls.parameter(record.params, severity, strength)
    x = image.astype(np.float32) / 255
    try:
        y = fn(x, p, np.random.default_rng(seed))
    except (ValueError, ZeroDivisionError, FloatingPointError) as err:
        raise DistortionFailed(f"{name} failed on this image: {err}") from err
    # == (np.clip(np.nan_to_num(y), 0, 1) * 255 + 0.5).astype(np.uint8), in place: y is a fresh
    # array (or x, a temporary of this call), so no caller sees the change
    if isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.flags.writeable:
        np.nan_to_num(y, copy=False)
        np.clip(y, 0, 1, out=y)
        y *= 255
        y += 0.5
        out = y.astype(np.uint8)
    else:
        out = (np.clip(np.nan_to_num(y), 0, 1) * 255 + 0.5).astype(np.uint8)
    # PSNR above ~45 dB (MSE < 2 grey levels^2) is invisible: the label would describe nothing.
    # MSE, not mean |diff|, so sparse but strong changes (1% impulse noise) still count.
    diff = out.astype(np.float32)
    diff -= image
    diff *= diff
    if diff.mean() < 2.0:
        raise DistortionFailed(f"{name} at severity {severity} left the image (almost) unchanged")
    return out


def compatible(cat_a: str, cat_b: str) -> bool:
    """Whether two categories may be combined in one two-distortion sample."""
    return frozenset((cat_a, cat_b)) in ALLOWED_PAIRS


IMPLEMENTATION_MODES = ("all", "base")


def sample_distortions(rng: np.random.Generator, count: int, nr_visible: bool = False,
                       implementations: str = "all") -> list[dict]:
    """Draw ``count`` (1 or 2) distortions as ``[{"category", "subtype", "severity", "impl", "strength"}]``.

    Category first, then sub-type, then severity (1-5 for one distortion, 1-3 for two), as in
    DQ-495K. The second category comes from the first's list in :data:`SECOND`; the two are
    returned (and applied) in pipeline order. Then an implementation of the sub-type (uniform)
    and a ``strength`` in [0, 1]: the parameter's place inside the severity's band, so the data
    covers each sub-type's whole official range, made by several implementations.
    ``nr_visible`` skips severity-1 changes that cannot be seen without a reference.
    ``implementations="base"``: the base implementation at the listed parameter only (one function
    and value per severity, as the official data was made); the records then carry no ``strength``.
    """
    if implementations not in IMPLEMENTATION_MODES:
        raise ValueError(f"implementations must be one of {IMPLEMENTATION_MODES}, got {implementations!r}")
    cats = list(CATEGORIES)
    first = str(rng.choice(cats))
    chosen = [first]
    if count == 2:
        chosen.append(str(rng.choice(SECOND[first])))
        chosen.sort(key=PIPELINE_ORDER.index)
    top = 5 if count == 1 else 3
    out = []
    for cat in chosen:
        subs = _subtypes().get(cat, [])
        low = 2 if nr_visible and cat in SUBTLE_AT_SEVERITY_1 else 1
        sub = str(rng.choice(subs))
        d = {"category": cat, "subtype": sub, "severity": int(rng.integers(low, top + 1))}
        if implementations == "all":
            d.update(impl=str(rng.choice(impls.implementations(f"{cat}.{sub}"))), strength=round(float(rng.random()), 4))
        out.append(d)
    return out


def apply_chain(image: np.ndarray, distortions: list[dict], seed: int) -> np.ndarray:
    """Apply ``distortions`` (as from :func:`sample_distortions`) in order; uint8 in and out.
    Records without ``impl`` / ``strength`` (written before they existed) get the base
    implementation at the listed parameter."""
    for i, d in enumerate(distortions):
        image = apply(f"{d['category']}.{d['subtype']}", image, d["severity"], seed + 7919 * i,
                      impl=d.get("impl", impls.BASE), strength=d.get("strength"))
    return image
