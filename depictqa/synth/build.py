"""Build a synthetic DQ-495K-style dataset: training shards, held-out test metas, a manifest.

Layout written under ``out_dir``::

    brief/brief-000000.tar ...          assess single/brief/level + compare single/brief, FR and NR
    detailed/detailed-000000.tar ...    assess/compare detail paragraphs
    regulariser/regulariser-000000.tar  captions of scenes and photos
    test/<official task>_<style>.json   official inference format; images under test/images/
    manifest.json                       counts per task/style/category/severity, seed, version

Sample ``i`` depends only on ``(seed, i)`` (see :mod:`depictqa.synth.samples`), so the output is
identical for any ``workers``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from depictqa.synth.samples import Config, Kind, make_record
from depictqa.synth.sources import SourceImage, embedded_images, folder_images

VERSION = "1"
# (source, kind, weight): weighted toward brief identification and rating, which a tiny model
# can learn from; detail paragraphs and captions are the smaller sources, as in DQ-495K.
MIX: tuple[tuple[str, Kind, float], ...] = (
    ("brief", Kind("assess", "single", False), 0.14), ("brief", Kind("assess", "single", True), 0.08),
    ("brief", Kind("assess", "brief", False), 0.14), ("brief", Kind("assess", "brief", True), 0.08),
    ("brief", Kind("compare", "single", False), 0.12), ("brief", Kind("compare", "single", True), 0.08),
    ("brief", Kind("compare", "brief", False), 0.08), ("brief", Kind("compare", "brief", True), 0.05),
    ("brief", Kind("assess", "level", False), 0.06), ("brief", Kind("assess", "level", True), 0.02),
    ("detailed", Kind("assess", "detail", False), 0.04), ("detailed", Kind("assess", "detail", True), 0.02),
    ("detailed", Kind("compare", "detail", False), 0.02), ("detailed", Kind("compare", "detail", True), 0.02),
    ("regulariser", Kind("caption", "caption", False), 0.05),
)
SOURCES = ("brief", "detailed", "regulariser")
# held-out test files: one per official task + style
TEST_KINDS = tuple(Kind(t, s, r) for t, styles in (("assess", ("single", "brief", "detail", "level")),
                                                   ("compare", ("single", "brief", "detail")))
                   for s in styles for r in (False, True))

_PHOTOS: list[SourceImage] = []


def _init_worker(photos: list[SourceImage]) -> None:
    global _PHOTOS
    _PHOTOS = photos


def _train_job(job: tuple[int, Kind, Config]) -> tuple[int, dict]:
    """Worker entry: build and PNG-encode one training sample (encoding in parallel too)."""
    index, kind, cfg = job
    rec = make_record(index, kind, cfg, "train", _PHOTOS)
    rec["images"] = {k: _png(v) for k, v in rec["images"].items()}
    return index, rec


def _png(pixels: np.ndarray) -> bytes:
    """Lossless PNG at zlib level 1: ~5x faster than the default level 6, files ~15% larger."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def plan(samples: int, seed: int) -> list[tuple[str, Kind]]:
    """The kind of every training sample, drawn from ``MIX`` with its own seeded RNG."""
    weights = np.array([w for _, _, w in MIX])
    picks = np.random.default_rng([seed, 2]).choice(len(MIX), size=samples, p=weights / weights.sum())
    return [(MIX[p][0], MIX[p][1]) for p in picks]


def _map(jobs: list, fn, workers: int, photos: list[SourceImage], bar) -> Iterator:
    """Ordered map over ``jobs`` in ``workers`` processes (in-process when workers <= 1)."""
    if workers <= 1:
        _init_worker(photos)
        for job in jobs:
            bar.update(1)
            yield fn(job)
        return
    import multiprocessing as mp
    with mp.get_context("fork" if os.name == "posix" else "spawn").Pool(
            workers, initializer=_init_worker, initargs=(photos,)) as pool:
        for out in pool.imap(fn, jobs, chunksize=8):
            bar.update(1)
            yield out


def _count(counts: dict[str, Counter], meta: dict) -> None:
    counts["task_style"][f"{meta['task']}/{meta['style']}"] += 1
    for key in ("distortions", "distortions_A", "distortions_B"):
        for d in meta.get(key) or []:
            counts["category"][d["category"]] += 1
            counts["severity"][str(d["severity"])] += 1
            counts["subtype"][f"{d['category']}.{d['subtype']}"] += 1
    if meta.get("distortions") == []:
        counts["category"]["clean"] += 1


def _write_train(out: Path, kinds, cfg: Config, workers: int, photos, samples_per_shard: int,
                 counts, boxes: dict, progress: bool) -> dict[str, list[str]]:
    from tqdm.auto import tqdm

    from depictqa.data.schema import Sample
    from depictqa.data.shards import write_shards
    shards = {}
    with tqdm(total=len(kinds), desc="synth", unit="sample", disable=not progress) as bar:
        for source in SOURCES:
            jobs = [(i, k, cfg) for i, (s, k) in enumerate(kinds) if s == source]

            def samples() -> Iterator[Sample]:
                for i, rec in _map(jobs, _train_job, workers, photos, bar):
                    meta = rec["meta"]
                    _count(counts, meta)
                    boxes.setdefault(meta["source"]["id"], []).append(("train", meta["source"]["box"]))
                    kind = kinds[i][1]
                    yield Sample(key=f"{source}-{i:08d}", task=kind.task, reference=kind.reference,
                                 style=kind.style, meta=meta, images=rec["images"],
                                 conversations=[{"from": "human", "value": rec["query"]},
                                                {"from": "gpt", "value": rec["answer"]}])
            shards[source] = write_shards(samples(), out / source, prefix=source,
                                          samples_per_shard=samples_per_shard) if jobs else []
    return shards


def _write_test(out: Path, count: int, cfg: Config, photos, boxes: dict) -> dict[str, int]:
    """Held-out metas, one JSON per official task + style, images in ``test/images``."""
    from PIL import Image
    img_dir = out / "test" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    _init_worker(photos)
    per = {k: count // len(TEST_KINDS) + (i < count % len(TEST_KINDS)) for i, k in enumerate(TEST_KINDS)}
    written, index = {}, 0
    for kind, n in per.items():
        entries = []
        for _ in range(n):
            rec = make_record(index, kind, cfg, "test", photos)
            sid = f"test{index:07d}"
            paths = {}
            for key, field in (("ref", "image_ref"), ("a", "image_A"), ("b", "image_B")):
                if key in rec["images"]:
                    Image.fromarray(rec["images"][key]).save(img_dir / f"{sid}_{key}.png")
                    paths[field] = f"images/{sid}_{key}.png"
                else:
                    paths[field] = None
            boxes.setdefault(rec["meta"]["source"]["id"], []).append(("test", rec["meta"]["source"]["box"]))
            entries.append({"id": sid, **paths, "query": rec["query"], "answer": rec["answer"], **rec["meta"]})
            index += 1
        name = f"{rec_task(kind)}_{kind.style}"
        (out / "test" / f"{name}.json").write_text(json.dumps(entries, indent=1))
        written[name] = len(entries)
    return written


def rec_task(kind: Kind) -> str:
    from depictqa.synth.samples import OFFICIAL
    return OFFICIAL[(kind.task, kind.reference)]


def check_disjoint(boxes: dict[str, list[tuple[str, list[int]]]]) -> None:
    """Assert no test crop overlaps a training crop of the same source image."""
    for sid, items in boxes.items():
        train = [b for s, b in items if s == "train"]
        for s, (x0, y0, x1, y1) in items:
            if s != "test":
                continue
            for a0, b0, a1, b1 in train:
                if x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1:
                    raise AssertionError(f"test crop {(x0, y0, x1, y1)} of {sid} overlaps a training crop")


def build_dataset(out_dir: str | os.PathLike, samples: int = 1000, seed: int = 0, workers: int = 1,
                  size: int = 224, test_samples: int = 0, clean_rate: float = 0.05,
                  images: str | os.PathLike | None = None, samples_per_shard: int = 1000,
                  progress: bool = False) -> dict[str, Any]:
    """Write the dataset (see module docstring) and return the manifest dict."""
    if samples < 0 or test_samples < 0 or not 0 <= clean_rate <= 1 or size < 32:
        raise ValueError("need samples >= 0, test_samples >= 0, 0 <= clean_rate <= 1, size >= 32")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    if images is not None:
        photos, skipped = folder_images(images)
        if not photos:
            raise ValueError(f"no usable images under {images}: " + "; ".join(skipped[:5]))
    else:
        photos = embedded_images()
    cfg = Config(seed=seed, size=size, clean_rate=clean_rate)
    counts: dict[str, Counter] = {k: Counter() for k in ("task_style", "category", "severity", "subtype")}
    boxes: dict = {}
    kinds = plan(samples, seed)
    shards = _write_train(out, kinds, cfg, workers, photos, samples_per_shard, counts, boxes, progress)
    tests = _write_test(out, test_samples, cfg, photos, boxes) if test_samples else {}
    check_disjoint(boxes)
    manifest = {"version": VERSION, "seed": seed, "size": size, "clean_rate": clean_rate,
                "samples": samples, "per_source": {s: sum(1 for k in kinds if k[0] == s) for s in SOURCES},
                "counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
                "shards": {s: [os.path.relpath(p, out) for p in ps] for s, ps in shards.items()},
                "test": tests, "photos": [p.id for p in photos], "skipped_images": skipped}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
