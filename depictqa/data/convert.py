"""Official DepictQA train meta JSON (+ image folders) -> depictqa WebDataset shards.

Each official record ``{"id", "task_type", "image_ref", "image_A", "image_B", "image",
"conversations", ...provenance}`` becomes one :class:`~depictqa.data.schema.Sample`: the task and
reference flag come from the task table (:data:`depictqa.tasks.OFFICIAL`), the single image of
``quality_single_A`` / ``_B`` is stored as ``a`` (from ``image_A`` / ``image_B``), a description's
image as ``img``. Every other field, plus ``official_task`` and the original ``id``, goes to
``meta`` so no ground truth is lost. Image bytes are stored as they came.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from depictqa.data.schema import Sample, SchemaError, validate_record
from depictqa.tasks import OFFICIAL, OFFICIAL_FIELDS

SINGLE_SUFFIX = "Answer the question using a single word or phrase."
DETAIL_MIN_WORDS = 22  # the official confidence code counts answers under 22 words as brief
IMAGE_FIELDS = ("image_ref", "image_A", "image_B", "image")


class ConvertError(ValueError):
    """A record that cannot be converted; the message starts with the record's id."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def guess_style(conversations: Sequence[Mapping[str, str]]) -> str:
    """``single`` for the bare-label question wording, else ``detail`` for long answers, else ``brief``."""
    question = conversations[0].get("value", "") if conversations else ""
    answer = conversations[1].get("value", "") if len(conversations) > 1 else ""
    if question.rstrip().endswith(SINGLE_SUFFIX):
        return "single"
    return "detail" if len(answer.split()) >= DETAIL_MIN_WORDS else "brief"


def sanitize_key(raw_id: Any, index: int) -> str:
    """A webdataset-safe key: no '.', '/' or whitespace; the record index keeps keys unique."""
    cleaned = re.sub(r"[^A-Za-z0-9_\-]+", "_", str(raw_id)).strip("_") or "sample"
    return f"{index:08d}_{cleaned}"[:200]


def _image_sources(task_type: str) -> dict[str, str]:
    """Our image key -> the official field it comes from."""
    return OFFICIAL_FIELDS[task_type]


def _image_bytes(root: Path, rel: Any, where: str) -> bytes:
    """The bytes of image ``rel`` under the resolved folder ``root``; a path that leaves it ("../x",
    "/etc/passwd", a symlink out) is refused, so no file outside the images folder enters a shard."""
    if not isinstance(rel, str) or not rel:
        raise ConvertError("missing_image", f"{where} {rel!r} not found")
    try:
        path = (root / rel).resolve()
    except (OSError, ValueError, RuntimeError) as err:  # a NUL byte, a symlink loop
        raise ConvertError("bad_record", f"{where} {rel!r}: {err}") from None
    if not path.is_relative_to(root):
        raise ConvertError("outside_images", f"{where} {rel!r} is outside the images folder {root}")
    if not path.is_file():
        raise ConvertError("missing_image", f"{where} {str(path)!r} not found")
    return path.read_bytes()


def record_to_sample(record: Mapping[str, Any], images_root: str | os.PathLike, index: int) -> Sample:
    """One official record -> Sample with image bytes; raises :class:`ConvertError`."""
    rid = record.get("id", f"#{index}")
    task_type = record.get("task_type")
    if not isinstance(task_type, str) or task_type not in OFFICIAL:
        raise ConvertError("unknown_task", f"{rid}: unknown task_type {task_type!r}; valid: "
                                           f"{', '.join(OFFICIAL)}")
    task, reference = OFFICIAL[task_type]
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or len(conversations) < 2:
        raise ConvertError("bad_record", f"{rid}: 'conversations' must hold human/gpt turns")
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise ConvertError("bad_record", f"{rid}: conversations[{i}] must be {{'from': ..., 'value': text}}")
    images: dict[str, bytes] = {}
    root = Path(images_root).resolve()
    for key, field_name in _image_sources(task_type).items():
        images[key] = _image_bytes(root, record.get(field_name), f"{rid}: {field_name}")
    meta = {k: v for k, v in record.items() if k not in ("conversations", "task_type", *IMAGE_FIELDS)}
    meta.update(official_task=task_type, id=rid,
                images={k: record.get(f) for k, f in _image_sources(task_type).items()})
    sample = Sample(key=sanitize_key(rid, index), task=task, reference=reference,
                    conversations=[{"from": t.get("from"), "value": t.get("value")} for t in conversations],
                    style=guess_style(conversations), meta=meta, images=images)
    try:
        validate_record(sample.record(), frozenset(images), rid)
    except SchemaError as err:
        raise ConvertError("bad_record", str(err)) from None
    return sample


def iter_records(meta_paths: Sequence[str | os.PathLike]) -> Iterator[tuple[str, dict[str, Any]]]:
    for meta_path in meta_paths:
        with open(meta_path, encoding="utf-8") as handle:
            records = json.load(handle)
        if not isinstance(records, list):
            raise ValueError(f"{meta_path}: expected a JSON list of records")
        for record in records:
            yield str(meta_path), record


def old_shards(out_dir: str | os.PathLike, prefix: str) -> list[Path]:
    """The ``{prefix}-NNNNNN.tar`` shard files already in ``out_dir`` (what a conversion writes)."""
    name = re.compile(rf"{re.escape(prefix)}-\d{{6,}}\.tar")
    out = Path(out_dir)
    return sorted(p for p in out.iterdir() if name.fullmatch(p.name) and p.is_file()) if out.is_dir() else []


def _check_paths(meta_paths: Sequence[str | os.PathLike], images_root: str | os.PathLike,
                 out_dir: str | os.PathLike, prefix: str, overwrite: bool) -> None:
    """Refuse before anything is written: missing inputs, or an ``out_dir`` holding shards of this
    prefix (they would be overwritten, or listed with the new ones) unless ``overwrite``."""
    for meta_path in meta_paths:
        if not Path(meta_path).is_file():
            raise FileNotFoundError(f"meta file {meta_path} not found")
    if not Path(images_root).is_dir():
        raise FileNotFoundError(f"images folder {images_root} not found")
    old = old_shards(out_dir, prefix)
    if old and not overwrite:
        raise FileExistsError(f"{out_dir} already holds {len(old)} shard(s) {prefix}-*.tar (e.g. {old[0].name}); "
                              "choose an empty folder or pass --overwrite to replace them")


def convert_meta(meta_paths: Sequence[str | os.PathLike] | str | os.PathLike,
                 images_root: str | os.PathLike, out_dir: str | os.PathLike, strict: bool = False,
                 samples_per_shard: int = 1000, prefix: str = "train",
                 progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Convert meta JSON file(s) to shards under ``out_dir``.

    Returns ``{"written", "skipped": {reason: n}, "shards": [...], "errors": [first messages]}``.
    Missing images, images outside ``images_root``, unknown task types and malformed records are
    skipped (reported), or with ``strict`` raise :class:`ConvertError` naming the record's id.
    Shards of this ``prefix`` already in ``out_dir`` raise ``FileExistsError``; ``overwrite``
    deletes them (and nothing else) first.
    """
    from tqdm import tqdm

    from depictqa.data.shards import write_shards

    paths = [meta_paths] if isinstance(meta_paths, (str, os.PathLike)) else list(meta_paths)
    _check_paths(paths, images_root, out_dir, prefix, overwrite)
    for old in old_shards(out_dir, prefix):
        old.unlink()
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    written = 0

    def samples() -> Iterator[Sample]:
        nonlocal written
        bar = tqdm(iter_records(paths), desc="convert", unit="sample", disable=not progress)
        for index, (meta_path, record) in enumerate(bar):
            try:
                sample = record_to_sample(record if isinstance(record, dict) else {}, images_root, index)
            except ConvertError as err:
                if strict:
                    raise
                skipped[err.reason] += 1
                if len(errors) < 20:
                    errors.append(f"{meta_path}: {err}")
                    bar.write(f"skipped {meta_path}: {err}")
                continue
            written += 1
            yield sample

    shards = write_shards(samples(), out_dir, prefix=prefix, samples_per_shard=samples_per_shard)
    return {"written": written, "skipped": dict(skipped), "shards": shards, "errors": errors}
