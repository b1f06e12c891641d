"""Image loading and native-resolution geometry for the vision encoder.

:func:`load_image` turns stored bytes (or a path, PIL image, array) into an 8-bit RGB image, with
the odd modes real IQA data contains handled properly. :func:`prepare_images` turns the images of
one sample into normalised ``[3, H, W]`` tensors: aspect kept, downscaled (never upscaled) so the
short side is ≤ ``short_side`` and the long side ≤ ``max_long_side``, an optional training crop
and flip, then padded to ≥ ``min_size`` and a multiple of the patch size (at the bottom/right, or
evenly on both sides with ``pad_align="center"`` as the official DepictQA code does). All
images of a sample share one geometry, one crop and one flip, so a reference and its distorted
versions stay aligned.

Resampling is antialiased bicubic, done by ``torch.nn.functional.interpolate`` on the uint8
pixels: it matches PIL's bicubic resize to within one grey level and runs about 4x faster on a
CPU core (0.34 vs 1.42 ms for 512x384 -> 298x224; ``benchmarks/data_throughput.py``).
"""

from __future__ import annotations

import io
import math
import os
import random
from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from depictqa.encoders.base import CLIP_MEAN, CLIP_STD

ImageInput = Union[bytes, bytearray, str, os.PathLike, Image.Image, np.ndarray]



# Training flips (``ImageConfig.flip``), each drawn with probability 1/2 per sample: "h" mirrors
# left-right; "hv" also up-down; "dihedral" also transposes square images (the 8 symmetries of a
# square). They change the content, not the quality: every distortion is still there, as strong.
FLIPS = ("h", "hv", "dihedral")
PAD_ALIGNS = ("corner", "center")


class ImageError(ValueError):
    """An image that cannot be used: corrupt, truncated, empty or too large. Names where it came from."""


@dataclass
class ImageConfig:
    """Geometry and normalisation of encoder inputs (official DepictQA: 224 / 672 / 70 / patch 14).

    ``pad``: ``"black"`` pads with zero *pixels* before normalisation (the official code's choice,
    so the released weights see what they were trained on); ``"mean"`` pads with zeros *after*
    normalisation (the CLIP mean colour). ``pad_align``: ``"corner"`` puts the image at the top left
    and pads bottom/right; ``"center"`` pads evenly around it (the official code's centre crop to
    the larger size: the odd pixel goes to the bottom/right).
    ``uint8``: hand back uint8 pixels (padding in the pad colour) instead of normalised floats;
    :class:`~depictqa.model.DepictQAModel` normalises them on its device. A quarter of the bytes
    to copy between DataLoader workers and to the GPU, and no float work in the workers.
    """

    short_side: int = 224
    max_long_side: int = 672
    min_size: int = 70
    crop: tuple[float, float] | None = None  # training crop ratio range per side, e.g. (0.7, 1.0)
    # "random": a random box of the original, before resizing (no detail lost); "center": the
    # official code's crop, the centre of the resized image (crop (0.7, 1.0) as the official range)
    crop_mode: str = "random"
    flip: str | None = None  # training flips: "h", "hv" or "dihedral" (see FLIPS)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    max_pixels: int = 64_000_000
    pad: str = "black"
    pad_align: str = "corner"
    uint8: bool = False


def load_image(data: ImageInput, where: str = "", max_pixels: int = 64_000_000) -> Image.Image:
    """Decode ``data`` to an 8-bit RGB image with its EXIF orientation applied.

    Alpha is composited on white (transparent regions of PNG graphics are meant to show the
    page, and white is how viewers -- and the annotators -- saw them). 16-bit images are scaled
    to 8 bits, not clipped. Raises :class:`ImageError` naming ``where`` for corrupt, truncated,
    empty or larger-than-``max_pixels`` images; the size is checked before pixels are decoded.
    """
    where = where or "<image>"
    if isinstance(data, np.ndarray):
        image = _from_array(data, where)
    elif isinstance(data, Image.Image):
        image = data
    else:
        image = _open(data, where, max_pixels)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{where}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{where}: {width}x{height} = {width * height} pixels exceeds max_pixels="
                         f"{max_pixels} (possible decompression bomb)")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError(f"{where}: cannot decode image ({err})") from None
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 -- a broken EXIF block must not cost a good image
        pass
    return _to_rgb(image)


def _open(data: bytes | bytearray | str | os.PathLike, where: str, max_pixels: int) -> Image.Image:
    source = io.BytesIO(bytes(data)) if isinstance(data, (bytes, bytearray)) else os.fspath(data)
    if isinstance(data, (bytes, bytearray)) and not data:
        raise ImageError(f"{where}: empty image data")
    try:
        # Image.open reads only the header: the size check in load_image runs before any pixels.
        return Image.open(source)
    except Image.DecompressionBombError as err:
        raise ImageError(f"{where}: rejected as a decompression bomb ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{where}: not a readable image ({err})") from None


def _from_array(array: np.ndarray, where: str) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"{where}: array of shape {array.shape} is not HxW, HxWx3 or HxWx4")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16:
        array = _scale_16bit(array)
    elif np.issubdtype(array.dtype, np.floating):
        # float images are taken to be in [0, 1], the convention of skimage and torchvision
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"{where}: array dtype {array.dtype} is not uint8, uint16 or float")
    return Image.fromarray(np.ascontiguousarray(array))


def _scale_16bit(array: np.ndarray) -> np.ndarray:
    # 65535 / 257 = 255 exactly: the full 16-bit range maps onto the full 8-bit range
    return ((array.astype(np.uint32) + 128) // 257).clip(0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        # Pillow's convert("L") clips 16-bit values at 255 -- scale them instead
        gray = _scale_16bit(np.clip(np.asarray(image, dtype=np.int64), 0, 65535))
        return Image.fromarray(gray).convert("RGB")
    if mode == "F":
        gray = np.asarray(image, dtype=np.float32)
        scale = 255.0 if gray.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray((np.clip(gray * scale, 0, 255) + 0.5).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK (naive, ICC profiles ignored), YCbCr, LAB, HSV


def _fit(height: int, width: int, cfg: ImageConfig) -> tuple[int, int]:
    """The resized (never upscaled) size for a content size."""
    scale = min(1.0, cfg.short_side / min(height, width), cfg.max_long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _pad_to(size: int, cfg: ImageConfig, patch_size: int) -> int:
    return math.ceil(max(size, cfg.min_size) / patch_size) * patch_size


def output_size(height: int, width: int, cfg: ImageConfig, patch_size: int) -> tuple[int, int]:
    """Padded pixel size ``(H, W)`` that :func:`prepare_images` gives an image of this size (no crop)."""
    h, w = _fit(height, width, cfg)
    return _pad_to(h, cfg, patch_size), _pad_to(w, cfg, patch_size)


def image_token_grid(height: int, width: int, cfg: ImageConfig, patch_size: int) -> tuple[int, int]:
    """Patch grid ``(rows, cols)`` of an image of this size (no crop), computed without decoding.

    Tokens = rows * cols. A training crop changes the aspect ratio, so count cropped images from
    the prepared tensors' shapes instead.
    """
    h, w = output_size(height, width, cfg, patch_size)
    return h // patch_size, w // patch_size


CROP_MODES = ("random", "center")


def _crop_box(height: int, width: int, crop: tuple[float, float],
              rng: random.Random) -> tuple[int, int, int, int]:
    lo, hi = crop
    ch = max(1, min(height, round(height * rng.uniform(lo, hi))))
    cw = max(1, min(width, round(width * rng.uniform(lo, hi))))
    top, left = rng.randint(0, height - ch), rng.randint(0, width - cw)
    return left, top, left + cw, top + ch


def _flip_dims(flip: str, square: bool, rng: random.Random) -> tuple[list[int], bool]:
    """One sample's flip: (tensor dims to reverse, whether to transpose H and W)."""
    if flip not in FLIPS:
        raise ValueError(f"image flip {flip!r}: expected one of {', '.join(FLIPS)} or None")
    dims = [2] if rng.random() < 0.5 else []
    if flip in ("hv", "dihedral") and rng.random() < 0.5:
        dims.append(1)
    return dims, flip == "dihedral" and square and rng.random() < 0.5


def resize_uint8(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 ``[3, H, W]`` -> uint8 ``[3, height, width]``, antialiased bicubic (as PIL's BICUBIC)."""
    out = torch.nn.functional.interpolate(pixels.unsqueeze(0), size=(height, width), mode="bicubic",
                                          antialias=True, align_corners=False)
    return out[0]


def prepare_images(images: Mapping[str, Image.Image], cfg: ImageConfig, patch_size: int,
                   rng: random.Random | None = None) -> dict[str, torch.Tensor]:
    """RGB images of one sample -> normalised float tensors ``[3, H, W]``, H and W multiples of
    ``patch_size``, all of one shape.

    The geometry (and, when ``rng`` is given and ``cfg.crop`` set, one random crop box, taken
    before resizing so no detail is lost) comes from the first image, and so, with ``rng`` and
    ``cfg.flip``, does one random flip (:data:`FLIPS`) applied to every image. An image of another
    size is first resized to the first's size: distorted copies of a reference should match it,
    and a shared crop only means something on a shared pixel grid.
    """
    if not images:
        return {}
    first = next(iter(images.values()))
    width, height = first.size
    box = (0, 0, width, height)
    if cfg.crop_mode not in CROP_MODES:
        raise ValueError(f"image crop_mode {cfg.crop_mode!r}: expected one of {', '.join(CROP_MODES)}")
    centre = rng is not None and cfg.crop is not None and cfg.crop_mode == "center"
    if rng is not None and cfg.crop is not None and not centre:
        box = _crop_box(height, width, cfg.crop, rng)
    th, tw = _fit(box[3] - box[1], box[2] - box[0], cfg)
    rh, rw = th, tw  # resized size; the centre crop then keeps th x tw of it
    if centre:
        th = max(1, round(rh * rng.uniform(*cfg.crop)))
        tw = max(1, round(rw * rng.uniform(*cfg.crop)))
    flip_dims, transpose = _flip_dims(cfg.flip, th == tw, rng) if rng is not None and cfg.flip else ([], False)
    ph, pw = _pad_to(th, cfg, patch_size), _pad_to(tw, cfg, patch_size)
    mean = torch.tensor(cfg.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32).view(3, 1, 1)
    if cfg.uint8:
        fill = torch.zeros(3, 1, 1, dtype=torch.uint8) if cfg.pad == "black" else \
            torch.tensor([round(255 * m) for m in cfg.mean], dtype=torch.uint8).view(3, 1, 1)
    else:
        fill = (-mean / std) if cfg.pad == "black" else torch.zeros(3, 1, 1)
    out: dict[str, torch.Tensor] = {}
    for name, image in images.items():
        if image.mode != "RGB":
            image = _to_rgb(image)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        cropped = image.crop(box) if box != (0, 0, width, height) else image
        # HWC array viewed as CHW: a channels-last tensor, the layout interpolate's uint8 path wants.
        pixels = torch.from_numpy(np.array(cropped, dtype=np.uint8)).permute(2, 0, 1)
        if (rw, rh) != cropped.size:
            pixels = resize_uint8(pixels, rh, rw)
        if centre:
            top0, left0 = (rh - th) // 2, (rw - tw) // 2
            pixels = pixels[:, top0:top0 + th, left0:left0 + tw]
        if flip_dims:
            pixels = pixels.flip(flip_dims)
        if transpose:
            pixels = pixels.transpose(1, 2)
        tensor = fill.expand(3, ph, pw).clone()
        h0, w0 = pixels.shape[-2:]  # th x tw, or tw x th after a transpose
        top, left = ((ph - h0) // 2, (pw - w0) // 2) if cfg.pad_align == "center" else (0, 0)
        tensor[:, top:top + h0, left:left + w0] = pixels if cfg.uint8 else (pixels.float().div_(255.0) - mean).div_(std)
        out[name] = tensor
    return out
