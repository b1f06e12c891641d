"""The declared quality model and the ground-truth labels derived from it.

Quality of an image with distortions ``d_1..d_k`` (k = 0, 1, 2)::

    damage  = sum_i weight[d_i.subtype] * CURVE[d_i.severity]
    quality = 100 * exp(-damage)            # 100 for a clean image, higher is better

``weight`` is the per-sub-type weight in :mod:`depictqa.synth.distortions` (blur/pixelate 1.0,
saturation 0.45, ...). Levels cut quality at 85 / 65 / 45 / 25. Rating answers (which of A and B
is better) are *defined* by this model; pairs closer than ``MIN_GAP`` are never emitted.
"""

from __future__ import annotations

import math

from depictqa.labels import LEGACY_LABELS
from depictqa.synth.distortions import CATEGORIES, CLEAN_LABEL, info

CURVE = {1: 0.1, 2: 0.3, 3: 0.6, 4: 1.0, 5: 1.5}
LEVELS = (("excellent", 85.0), ("good", 65.0), ("fair", 45.0), ("poor", 25.0), ("bad", -1.0))
LEVEL_WORDS = tuple(word for word, _ in LEVELS)
MIN_GAP = 3.0  # quality points; closer pairs count as equal and are not emitted


def damage_of(d: dict) -> float:
    """Damage of one ``{"category", "subtype", "severity"}`` record."""
    return info(f"{d['category']}.{d['subtype']}").weight * CURVE[int(d["severity"])]


def quality(distortions: list[dict]) -> float:
    """Quality in (0, 100] of an image carrying ``distortions``; higher is better."""
    return 100.0 * math.exp(-sum(damage_of(d) for d in distortions))


def level(q: float) -> str:
    """Level word of a quality value."""
    for word, cut in LEVELS:
        if q >= cut:
            return word
    return LEVELS[-1][0]


def label(distortions: list[dict]) -> str:
    """Canonical `single` answer: "None", "Blur", "Blur and noise" (order of application)."""
    if not distortions:
        return CLEAN_LABEL
    names = [CATEGORIES[d["category"]][0] for d in distortions]
    return " and ".join([names[0]] + [n.lower() for n in names[1:]])


def a_better_b(dist_a: list[dict], dist_b: list[dict]) -> bool | None:
    """True / False by the quality model, None when the pair is too close to call."""
    qa, qb = quality(dist_a), quality(dist_b)
    if abs(qa - qb) < MIN_GAP:
        return None
    return qa > qb


def dominant(distortions: list[dict]) -> dict | None:
    """The distortion doing the most damage (first on ties), or None for a clean image."""
    return max(distortions, key=damage_of) if distortions else None


def parse_label(text: str) -> list[str]:
    """Inverse of :func:`label`: "Blur and noise" -> ["blur", "noise"]; "None" -> []."""
    text = text.strip().rstrip(".")
    if text == CLEAN_LABEL:
        return []
    by_label = {lab.lower(): cat for cat, (lab, _) in CATEGORIES.items()}
    by_label.update({old.lower(): cat for old, cat in LEGACY_LABELS.items()})  # shards written before 0.2
    parts = [p.strip().lower() for p in text.split(" and ")]
    unknown = [p for p in parts if p not in by_label]
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; valid: {', '.join(l for l, _ in CATEGORIES.values())}")
    return [by_label[p] for p in parts]


def parse_phrases(text: str) -> list[str]:
    """Categories whose phrase occurs in a free-text answer, in order of first mention."""
    low = text.lower()
    hits = [(low.find(phrase), cat) for cat, (_, phrase) in CATEGORIES.items() if phrase in low]
    return [cat for _, cat in sorted(hits)]
