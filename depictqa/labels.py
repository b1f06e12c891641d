"""The distortion vocabulary: category keys, the labels answers use, the phrases sentences use.

One table for everything that names a distortion: the synthetic generator writes these keys into
sample metadata, ``single`` answers and evaluation use the labels, brief and detailed answers the
phrases, and training objectives default to the keys as their class list.
"""

from __future__ import annotations

# category key (as sample metadata stores it) -> (label of `single` answers, phrase in sentences)
DISTORTIONS: dict[str, tuple[str, str]] = {
    "blur": ("Blur", "blur"),
    "noise": ("Noise", "noise"),
    "compression": ("Compression", "compression artifacts"),
    "brighten": ("Brighten", "overly high brightness"),
    "darken": ("Darken", "insufficient brightness"),
    "contrast_strengthen": ("Contrast strengthen", "overly high contrast"),
    "contrast_weaken": ("Contrast weaken", "insufficient contrast"),
    "saturate_strengthen": ("Saturate strengthen", "overly high saturation"),
    "saturate_weaken": ("Saturate weaken", "insufficient saturation"),
    "oversharpen": ("Oversharpen", "oversharpening"),
    "pixelate": ("Pixelate", "pixelation"),
    "quantization": ("Quantization", "color quantization"),
}
# the labels, in table order
LABELS: tuple[str, ...] = tuple(label for label, _ in DISTORTIONS.values())
# the answer for an image without distortion
CLEAN = "None"
