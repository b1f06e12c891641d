"""The distortion vocabulary: category keys, the labels answers use, the phrases sentences use.

One table for everything that names a distortion: the synthetic generator writes these keys into
sample metadata, ``single`` answers and evaluation use the labels, brief and detailed answers the
phrases, and training objectives default to the keys as their class list.
"""

from __future__ import annotations

# category key (as sample metadata stores it) -> (label of `single` answers, phrase in sentences);
# the labels are the answer labels of the official DQ-495K data
DISTORTIONS: dict[str, tuple[str, str]] = {
    "blur": ("Blur", "blur"),
    "noise": ("Noise", "noise"),
    "compression": ("Compression", "compression artifacts"),
    "brighten": ("Overly high brightness", "overly high brightness"),
    "darken": ("Insufficient brightness", "insufficient brightness"),
    "contrast_strengthen": ("Overly high contrast", "overly high contrast"),
    "contrast_weaken": ("Insufficient contrast", "insufficient contrast"),
    "saturate_strengthen": ("Overly high saturation", "overly high saturation"),
    "saturate_weaken": ("Insufficient saturation", "insufficient saturation"),
    "oversharpen": ("Oversharpening", "oversharpening"),
    "pixelate": ("Pixelation", "pixelation"),
    "quantization": ("Color quantization", "color quantization"),
}
# labels of depictqa before 0.2 (named after the operation, not the effect): shards and
# predictions written with them still load and score as the same category
LEGACY_LABELS: dict[str, str] = {
    "Brighten": "brighten", "Darken": "darken",
    "Contrast strengthen": "contrast_strengthen", "Contrast weaken": "contrast_weaken",
    "Saturate strengthen": "saturate_strengthen", "Saturate weaken": "saturate_weaken",
    "Oversharpen": "oversharpen", "Pixelate": "pixelate", "Quantization": "quantization",
}
# the labels, in table order
LABELS: tuple[str, ...] = tuple(label for label, _ in DISTORTIONS.values())
# the answer for an image without distortion
CLEAN = "None"
