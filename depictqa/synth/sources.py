"""Pristine source images: embedded offline photos, user folders, and their train/test split.

Photos come from ``skimage.data`` (only those shipped with the wheel, greyscale -> RGB) and
``sklearn.datasets.load_sample_images()``, each with a hand-written true caption. Every source
image is split by columns: crops for training lie left of ``TEST_SPLIT`` (fraction of the
width), held-out test crops lie right of it, so test crops never overlap a training crop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEST_SPLIT = 0.7  # columns [0, 0.7W) train, [0.7W, W) test
MIN_SIDE = 64
CROP_SCALES = (0.5, 0.65, 0.8, 1.0)

CAPTIONS = {
    "astronaut": "a photo of an astronaut in a white spacesuit posing in front of an American flag",
    "chelsea": "a photo of a tabby cat with green eyes lying down and looking to the side",
    "cat": "a photo of a tabby cat with green eyes lying down and looking to the side",
    "coffee": "a photo of a cup of coffee with latte art on a saucer, next to a spoon",
    "rocket": "a photo of a rocket standing on a launch pad under a blue sky",
    "camera": "a black and white photo of a man operating a camera on a tripod",
    "coins": "a grey photo of rows of old coins on a dark surface",
    "moon": "a grey close-up of the cratered surface of the moon",
    "immunohistochemistry": "a microscope image of stained tissue with brown and blue cells",
    "hubble_deep_field": "a deep-space photo of many small galaxies on a black background",
    "colorwheel": "an image of a circular color wheel showing a continuous spectrum of hues",
    "grass": "a grey close-up texture of grass blades",
    "gravel": "a grey close-up texture of gravel stones",
    "brick": "a grey close-up of a brick wall",
    "clock": "a grey photo of a wall clock",
    "china": "a photo of a Chinese temple with a tiled roof among trees",
    "flower": "a photo of a pink flower with a yellow center",
}


@dataclass
class SourceImage:
    """A pristine RGB image ``pixels`` uint8 ``[H, W, 3]`` with an id and (maybe) a caption."""

    id: str
    pixels: np.ndarray
    caption: str | None = None


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64) / max(float(a.max()), 1e-8), 0, 1) * 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def embedded_images() -> list[SourceImage]:
    """The offline photos (about 17); each loader is optional so a slimmer skimage still works."""
    import skimage.data
    out = []
    for name in CAPTIONS:
        if name in ("china", "flower", "cat"):  # "cat" duplicates "chelsea" in skimage
            continue
        try:
            out.append(SourceImage(f"skimage/{name}", _rgb(getattr(skimage.data, name)()), CAPTIONS[name]))
        except Exception:  # noqa: BLE001 -- a missing / download-only image is just absent
            continue
    try:
        from sklearn.datasets import load_sample_images
        bunch = load_sample_images()
        for path, img in zip(bunch.filenames, bunch.images):
            stem = Path(path).stem
            out.append(SourceImage(f"sklearn/{stem}", _rgb(img), CAPTIONS.get(stem)))
    except Exception:  # noqa: BLE001
        pass
    return out


MAX_PIXELS = 64_000_000  # a user image larger than this is skipped unread


def folder_images(folder: str | os.PathLike) -> tuple[list[SourceImage], list[str]]:
    """Readable RGB images under ``folder`` -> (images, skipped "path: reason" lines)."""
    from PIL import Image, UnidentifiedImageError
    images, skipped = [], []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:  # checked before decoding: a small file may declare a huge image
                    skipped.append(f"{path}: too large ({im.width}x{im.height} > {MAX_PIXELS} pixels; "
                                   "possible decompression bomb)")
                    continue
                arr = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
            skipped.append(f"{path}: unreadable ({type(err).__name__})")
            continue
        if min(arr.shape[:2]) < MIN_SIDE or arr.shape[1] * (1 - TEST_SPLIT) < MIN_SIDE / 2:
            skipped.append(f"{path}: too small ({arr.shape[1]}x{arr.shape[0]}, need >= {MIN_SIDE} px)")
            continue
        images.append(SourceImage(f"user/{path.relative_to(folder).as_posix()}", arr))
    return images, skipped


def crop_box(rng: np.random.Generator, shape: tuple[int, ...], split: str) -> tuple[int, int, int, int]:
    """A square crop ``(x0, y0, x1, y1)`` inside the ``split`` ("train"/"test") columns.

    Both splits draw the same sides (a share of the narrower test columns), so training and test
    crops are downscaled alike: with sides taken from each split's own width, training crops of a
    512 px photo were 179-358 px (2.8-5.6x smaller at 64 px) and test crops 77-154 px (1.2-2.4x).
    """
    h, w = shape[:2]
    cut = int(round(w * TEST_SPLIT))
    lo, hi = (0, cut) if split == "train" else (cut, w)
    side = max(16, int(min(w - cut, h) * float(rng.choice(CROP_SCALES))))
    x0 = int(rng.integers(lo, hi - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    return x0, y0, x0 + side, y0 + side


def in_split(box: tuple[int, int, int, int], width: int, split: str) -> bool:
    """Whether a crop box lies wholly inside the given split's columns."""
    cut = int(round(width * TEST_SPLIT))
    return box[2] <= cut if split == "train" else box[0] >= cut


def random_crop(src: SourceImage, rng: np.random.Generator, size: int, split: str) -> tuple[np.ndarray, dict]:
    """Crop + resize to ``[size, size, 3]`` uint8; returns (pixels, provenance dict)."""
    from PIL import Image
    box = crop_box(rng, src.pixels.shape, split)
    assert in_split(box, src.pixels.shape[1], split), (src.id, box, split)
    x0, y0, x1, y1 = box
    patch = Image.fromarray(src.pixels[y0:y1, x0:x1]).resize((size, size), Image.LANCZOS)
    return np.asarray(patch), {"id": src.id, "box": list(box), "split": split}
