"""Train/test leakage: test images or references that also appear in training shards.

Images are matched two ways: by the hash of the file bytes (identical files) and by the hash of
the decoded RGB pixels (the same picture re-encoded losslessly, e.g. a test PNG stored in a shard
by another writer). A test reference seen in training as any image is reported too, because the
model has then seen that content even if the test distortions are new.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from depictqa.eval.records import image_path

TEST_IMAGE_KEYS = ("image_ref", "image_A", "image_B", "image")


def _pixel_hash(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError):
        return None
    return hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()


def image_hashes(data: bytes) -> set[str]:
    """``{"bytes:<sha1>", "pixels:<sha1>"}`` for one encoded image."""
    hashes = {"bytes:" + hashlib.sha1(data).hexdigest()}
    pix = _pixel_hash(data)
    if pix:
        hashes.add("pixels:" + pix)
    return hashes


def training_hashes(urls: str | list[str]) -> dict[str, str]:
    """Hash -> ``"shard:key/image"`` for every image of the training shards."""
    from depictqa.data.shards import iter_shard_samples

    seen: dict[str, str] = {}
    for sample in iter_shard_samples(urls):
        where = f"{sample.meta.get('__url__') or '?'}:{sample.key}"
        for name, data in sample.images.items():
            if isinstance(data, (bytes, bytearray)):
                for h in image_hashes(bytes(data)):
                    seen.setdefault(h, f"{where}/{name}")
    return seen


def check_leakage(gt_records: Sequence[dict[str, Any]], train_urls: str | list[str],
                  train_hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """Which test images appear in training.

    Returns counts and a list of ``{"id", "field", "path", "train", "match"}``; ``match`` is
    ``"bytes"`` or ``"pixels"``. ``references_leaked`` counts distinct test references seen.
    """
    seen = train_hashes if train_hashes is not None else training_hashes(train_urls)
    cache: dict[str, set[str]] = {}
    hits: list[dict[str, Any]] = []
    unreadable: set[str] = set()
    checked: set[str] = set()
    for rec in gt_records:
        for key in TEST_IMAGE_KEYS:
            path = image_path(rec, key)
            if path is None:
                continue
            p = str(path)
            if p not in cache:
                try:
                    cache[p] = image_hashes(Path(p).read_bytes())
                except OSError:
                    unreadable.add(p)
                    cache[p] = set()
            checked.add(p)
            found = sorted(h for h in cache[p] if h in seen)
            if found:
                hits.append({"id": rec.get("id"), "field": key, "path": p,
                             "train": seen[found[0]], "match": found[0].split(":")[0]})
    leaked_refs = {h["path"] for h in hits if h["field"] == "image_ref"}
    leaked = {h["path"] for h in hits}
    return {"n_test_images": len(checked), "n_leaked_images": len(leaked),
            "references_leaked": len(leaked_refs),
            "distorted_leaked": len(leaked - leaked_refs), "n_unreadable": len(unreadable),
            "unreadable": sorted(unreadable)[:20], "hits": hits}


def format_leakage(result: dict[str, Any], limit: int = 20) -> Iterable[str]:
    yield (f"leakage: {result['n_leaked_images']} of {result['n_test_images']} test images appear "
           f"in training ({result['references_leaked']} references, "
           f"{result['distorted_leaked']} other); {result['n_unreadable']} unreadable")
    for hit in result["hits"][:limit]:
        yield f"  {hit['id']} {hit['field']} {hit['path']} == {hit['train']} ({hit['match']})"
    if len(result["hits"]) > limit:
        yield f"  ... {len(result['hits']) - limit} more"
