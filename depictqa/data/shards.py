"""Reading and writing WebDataset tar shards of :class:`~depictqa.data.schema.Sample`.

Images are stored as they came (PNG/JPEG bytes) and decoded later, in DataLoader workers.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from PIL import Image

from depictqa.data.schema import (IMAGE_EXTENSIONS, IMAGE_KEYS, RecordParseError, Sample, SchemaError,
                                  sample_from_record)


def image_bytes(image: Any, fmt: str = "png") -> tuple[bytes, str]:
    """Encode ``image`` (bytes, path, PIL image or HxWx3 uint8 array) -> (bytes, extension)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image), _sniff_extension(bytes(image))
    if isinstance(image, (str, os.PathLike)):
        data = Path(image).read_bytes()
        return data, _sniff_extension(data)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        save_fmt = "JPEG" if fmt in ("jpg", "jpeg") else fmt.upper()
        image.save(buf, format=save_fmt, **({"quality": 95} if save_fmt == "JPEG" else {}))
        return buf.getvalue(), "jpg" if save_fmt == "JPEG" else fmt.lower()
    raise TypeError(f"cannot store an image of type {type(image).__name__}")


def _sniff_extension(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    return "png"


def write_shards(samples: Iterable[Sample], out_dir: str | os.PathLike, prefix: str = "shard",
                 samples_per_shard: int = 1000) -> list[str]:
    """Write samples to ``out_dir/{prefix}-000000.tar ...``; returns the paths of the shards written
    (not others already in the folder)."""
    import webdataset as wds

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pattern = str(out / f"{prefix}-%06d.tar")
    written: list[str] = []
    with wds.ShardWriter(pattern, maxcount=samples_per_shard, verbose=0, post=written.append) as sink:
        for sample in samples:
            sink.write(encode_sample(sample))
    return sorted(written)


def encode_sample(sample: Sample) -> dict[str, Any]:
    """Sample -> the dict a ``webdataset.TarWriter`` writes."""
    if "." in sample.key:
        raise SchemaError(f"sample key {sample.key!r} may not contain '.' (webdataset splits on it)")
    entry: dict[str, Any] = {"__key__": sample.key,
                             "json": json.dumps(sample.record(), ensure_ascii=False).encode()}
    for name in sample.image_order:
        if name not in sample.images:
            raise SchemaError(f"{sample.key}: task {sample.task!r} needs image {name!r}")
        data, ext = image_bytes(sample.images[name])
        entry[f"{name}.{ext}"] = data
    return entry


def decode_entry(entry: dict[str, Any]) -> Sample:
    """A raw webdataset entry (undecoded bytes) -> Sample with image *bytes*; validates."""
    key = entry.get("__key__", "?")
    where = f"{entry.get('__url__', '<stream>')}:{key}"
    if "json" not in entry:
        raise RecordParseError(f"{where}: no json record")
    try:
        record = json.loads(entry["json"])
    except (ValueError, UnicodeDecodeError) as err:
        raise RecordParseError(f"{where}: json record does not parse ({err})") from None
    images = {}
    for field_name, value in entry.items():
        stem, _, ext = field_name.partition(".")
        if stem in IMAGE_KEYS and ext.lower() in IMAGE_EXTENSIONS:
            images[stem] = value
    sample = sample_from_record(key, record, images, where)
    sample.meta.setdefault("__url__", entry.get("__url__"))
    return sample


def iter_shard_samples(urls: str | list[str]) -> Iterator[Sample]:
    """Every sample of the given shards in order (no shuffling, no splitting); for tools and tests."""
    import webdataset as wds

    dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, empty_check=False)
    for entry in dataset:
        yield decode_entry(entry)
