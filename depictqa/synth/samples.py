"""One synthetic sample from its index: pick a source crop, distort it, write Q/A from truth.

``make_record(index, kind, cfg, split)`` is a pure function of its arguments (the RNG is seeded
from ``(cfg.seed, split, index)``), which is what makes the dataset identical for any number of
workers. It returns a dict with the question, answer, ground-truth ``meta`` and uint8
``[size, size, 3]`` images under ``ref`` / ``a`` / ``b`` / ``img``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depictqa.synth import answers as A
from depictqa.synth import quality as Q
from depictqa.synth.distortions import (SUBTLE_AT_SEVERITY_1, DistortionFailed, apply_chain,
                                        sample_distortions)
from depictqa.synth.questions import question
from depictqa.synth.scenes import make_scene
from depictqa.synth.sources import SourceImage, random_crop

OFFICIAL = {("assess", True): "quality_single_A", ("assess", False): "quality_single_A_noref",
            ("compare", True): "quality_compare", ("compare", False): "quality_compare_noref",
            ("caption", False): "description"}
SPLIT_ID = {"train": 0, "test": 1}
PHOTO_RATE = 0.7  # share of quality samples cut from photos; the rest are procedural scenes
TWO_RATE = 0.25  # share of distorted assess images carrying two distortions
MAX_TRIES = 50


@dataclass(frozen=True)
class Kind:
    """What to build: task (assess|compare|caption), style, FR or NR."""

    task: str
    style: str
    reference: bool


@dataclass(frozen=True)
class Config:
    seed: int = 0
    size: int = 224
    clean_rate: float = 0.05
    implementations: str = "all"  # "base": one function and the listed value per severity (official)


def _clean_image(rng, photos: list[SourceImage], size: int, split: str, index: int):
    """(pixels, provenance, content caption or None) from a photo crop or a fresh scene."""
    if photos and rng.random() < PHOTO_RATE:
        src = photos[int(rng.integers(len(photos)))]
        pixels, prov = random_crop(src, rng, size, split)
        caption = f"part of {src.caption}" if src.caption else None
        return pixels, prov, caption
    pixels, caption = make_scene(rng, size)
    caption = caption[:1].lower() + caption[1:]
    return pixels, {"id": f"scene/{split}/{index}", "box": [0, 0, size, size], "split": split}, caption


def _distorted(rng, clean: np.ndarray, count: int, nr_visible: bool, fixed: list[dict] | None = None,
               implementations: str = "all"):
    """Draw distortions until one applies visibly -> (distortions, image); None if all fail."""
    for _ in range(MAX_TRIES):
        dist = fixed if fixed is not None else sample_distortions(rng, count, nr_visible, implementations)
        try:
            return dist, apply_chain(clean, dist, int(rng.integers(2**31)))
        except DistortionFailed:
            if fixed is not None:
                return None
    return None


def _assess(rng, clean, kind: Kind, cfg: Config, nr_visible: bool):
    if rng.random() < cfg.clean_rate:
        return [], clean
    return _distorted(rng, clean, 2 if rng.random() < TWO_RATE else 1, nr_visible, implementations=cfg.implementations)


def _compare(rng, clean, nr_visible: bool, implementations: str = "all"):
    """Two distorted versions whose quality differs by at least ``Q.MIN_GAP``."""
    for _ in range(MAX_TRIES):
        if rng.random() < 0.5:  # same sub-type, two severities: the cleanest rating signal
            d = sample_distortions(rng, 1, nr_visible, implementations)[0]
            low = 2 if nr_visible and d["category"] in SUBTLE_AT_SEVERITY_1 else 1
            s = rng.choice(np.arange(low, 6), 2, replace=False)
            da, db = [dict(d, severity=int(s[0]))], [dict(d, severity=int(s[1]))]
        else:
            da = sample_distortions(rng, 1 + int(rng.random() < TWO_RATE), nr_visible, implementations)
            db = sample_distortions(rng, 1 + int(rng.random() < TWO_RATE), nr_visible, implementations)
        better = Q.a_better_b(da, db)
        if better is None:
            continue
        ra, rb = _distorted(rng, clean, 0, nr_visible, da), _distorted(rng, clean, 0, nr_visible, db)
        if ra and rb:
            return ra, rb, better
    return None


def _meta_assess(dist: list[dict]) -> dict:
    first = dist[0] if dist else None
    q = Q.quality(dist)
    return {"distortions": dist, "distortion_class": Q.label([first]) if first else None,
            "distortion_name": f"{first['category']}.{first['subtype']}" if first else None,
            "severity": first["severity"] if first else None, "label": Q.label(dist),
            "level": Q.level(q), "quality": round(q, 3)}


def make_record(index: int, kind: Kind, cfg: Config, split: str, photos: list[SourceImage]) -> dict:
    """Build sample ``index`` of ``kind``; see the module docstring for the returned dict."""
    rng = np.random.default_rng([cfg.seed, SPLIT_ID[split], index])
    nr_visible = split == "test" and not kind.reference  # official NR tests drop invisible sev-1
    for _ in range(MAX_TRIES):
        clean, prov, caption = _clean_image(rng, photos, cfg.size, split, index)
        if kind.task == "caption":
            if caption is None:
                continue
            text = caption[:1].upper() + caption[1:].rstrip(".") + "."
            return _pack(kind, rng, text, {"source": prov}, {"img": clean})
        if kind.task == "assess":
            got = _assess(rng, clean, kind, cfg, nr_visible)
            if got is None:
                continue
            dist, img = got
            meta = _meta_assess(dist)
            answer = {"single": lambda: Q.label(dist), "level": lambda: A.level_answer(dist),
                      "brief": lambda: A.assess_brief(dist, kind.reference, rng),
                      "detail": lambda: A.assess_detail(dist, kind.reference, rng, caption)}[kind.style]()
            images = {"a": img, **({"ref": clean} if kind.reference else {})}
            return _pack(kind, rng, answer, {**meta, "source": prov}, images)
        got = _compare(rng, clean, nr_visible, cfg.implementations)
        if got is None:
            continue
        (da, ia), (db, ib), better = got
        qa, qb = Q.quality(da), Q.quality(db)
        meta = {"distortions_A": da, "distortions_B": db, "A_better_B": bool(better),
                "distortion_class": None, "distortion_name": None, "severity": None, "level": None,
                "quality": None, "quality_A": round(qa, 3), "quality_B": round(qb, 3),
                "level_A": Q.level(qa), "level_B": Q.level(qb), "source": prov}
        answer = {"single": lambda: "Image A" if better else "Image B",
                  "brief": lambda: A.compare_brief(da, db, better, kind.reference, rng),
                  "detail": lambda: A.compare_detail(da, db, better, kind.reference, rng, caption)}[kind.style]()
        images = {"a": ia, "b": ib, **({"ref": clean} if kind.reference else {})}
        return _pack(kind, rng, answer, meta, images)
    raise RuntimeError(f"could not build sample {index} of {kind} after {MAX_TRIES} tries")


def _pack(kind: Kind, rng, answer: str, meta: dict, images: dict) -> dict:
    meta = {"task": OFFICIAL[(kind.task, kind.reference)], "style": kind.style, **meta}
    return {"query": question(kind.task, kind.style, kind.reference, rng), "answer": answer,
            "meta": meta, "images": images}
