"""Image loading (odd modes, EXIF, bombs, corrupt data) and native-resolution geometry."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from depictqa.data.images import ImageConfig, ImageError, image_token_grid, load_image, prepare_images


def encode(image: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_odd_modes_load_as_rgb_with_right_size() -> None:
    rgb = Image.new("RGB", (30, 20), (200, 100, 50))
    images = {"L": rgb.convert("L"), "P": rgb.convert("P"), "1": rgb.convert("1"),
              "LA": rgb.convert("LA"), "RGBA": rgb.convert("RGBA")}
    for mode, image in images.items():
        loaded = load_image(encode(image), where=mode)
        assert loaded.mode == "RGB" and loaded.size == (30, 20), mode
    cmyk = load_image(encode(rgb.convert("CMYK"), "JPEG", quality=95))
    assert cmyk.mode == "RGB" and cmyk.size == (30, 20)
    assert np.abs(np.asarray(cmyk, dtype=int)[10, 10] - [200, 100, 50]).max() < 12


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:, :2] = (255, 0, 0, 255)  # opaque red left half, fully transparent right half
    loaded = np.asarray(load_image(encode(Image.fromarray(rgba, "RGBA"))))
    assert tuple(loaded[0, 0]) == (255, 0, 0) and tuple(loaded[0, 3]) == (255, 255, 255)


def test_16bit_is_scaled_not_clipped() -> None:
    gray = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    for data in (encode(Image.fromarray(gray)), gray):  # a 16-bit PNG and a uint16 array
        loaded = np.asarray(load_image(data))[0, :, 0]
        assert loaded.tolist() == [0, 128, 255, 4]


def test_exif_rotation_is_applied() -> None:
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = 255  # stored: white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    loaded = load_image(encode(Image.fromarray(array), "JPEG", quality=95, exif=exif.tobytes()))
    assert loaded.size == (20, 40)  # displayed portrait
    pixels = np.asarray(loaded).mean(axis=(1, 2))
    assert pixels[:15].mean() > 200 and pixels[-15:].mean() < 50  # white half now on top


def png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims another size (what a decompression bomb looks like)."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bomb_rejected_before_decoding() -> None:
    with pytest.raises(ImageError, match="bomb.*|pixels"):
        load_image(png_with_size(30_000, 30_000), where="shard-0:key")  # Pillow's own limit
    with pytest.raises(ImageError, match="shard-0:key.*exceeds max_pixels"):
        load_image(png_with_size(9_000, 9_000), where="shard-0:key")  # ours (64M), under Pillow's


def test_corrupt_truncated_and_empty_data_rejected() -> None:
    jpeg = encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")
    with pytest.raises(ImageError, match="s0:k1"):
        load_image(b"not an image at all", where="s0:k1")
    with pytest.raises(ImageError, match="s0:k2"):
        load_image(jpeg[: len(jpeg) // 2], where="s0:k2")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"", where="s0:k3")
    with pytest.raises(ImageError, match="zero size"):
        load_image(np.zeros((0, 5, 3), dtype=np.uint8), where="s0:k4")


@pytest.mark.parametrize("size", [(512, 384), (50, 40), (100, 2000), (224, 224), (1000, 300), (71, 69)])
def test_geometry_and_token_grid(size: tuple[int, int]) -> None:
    width, height = size
    cfg = ImageConfig()
    out = prepare_images({"a": Image.new("RGB", size, (10, 20, 30))}, cfg, patch_size=14)["a"]
    _, h, w = out.shape
    assert h % 14 == 0 and w % 14 == 0 and h >= 70 and w >= 70
    assert image_token_grid(height, width, cfg, 14) == (h // 14, w // 14)
    assert min(h, w) <= max(224, 70) + 13 and max(h, w) <= 672


def test_downscale_keeps_aspect_and_never_upscales() -> None:
    cfg = ImageConfig()
    image = Image.new("RGB", (512, 384), (255, 255, 255))
    out = prepare_images({"a": image}, cfg, 14)["a"]
    assert out.shape == (3, 224, 308)  # content 299x224, padded to a multiple of 14
    white = (1 - torch.tensor(cfg.mean)) / torch.tensor(cfg.std)
    black = -torch.tensor(cfg.mean) / torch.tensor(cfg.std)
    assert torch.allclose(out[:, 100, 298], white, atol=1e-4)  # last content column
    assert torch.allclose(out[:, 100, 299], black, atol=1e-6)  # first pad column: black pixels
    small = prepare_images({"a": Image.new("RGB", (50, 40))}, cfg, 14)["a"]
    assert small.shape == (3, 70, 70) and torch.allclose(small[:, 39, 49], black)  # 50x40 kept
    mean_pad = prepare_images({"a": image}, ImageConfig(pad="mean"), 14)["a"]
    assert mean_pad[:, :, 299:].abs().max() == 0


def test_full_reference_group_shares_one_crop() -> None:
    array = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    cfg = ImageConfig(crop=(0.7, 1.0))
    out = prepare_images({"ref": image, "a": image.copy(), "b": image.copy()}, cfg, 14, random.Random(3))
    assert torch.equal(out["ref"], out["a"]) and torch.equal(out["a"], out["b"])
    uncropped = prepare_images({"ref": image}, cfg, 14)["ref"]
    assert uncropped.shape == (3, 224, 308) and not torch.equal(out["ref"], uncropped[:, :, :])
    again = prepare_images({"ref": image}, cfg, 14, random.Random(3))["ref"]
    assert torch.equal(again, out["ref"])  # the crop depends only on the rng


def test_official_centre_crop_is_the_middle_of_the_resized_image() -> None:
    """crop_mode center: resize first, then keep the centre 70-100% of each side (the official
    training crop); the sample's images share the draw."""
    array = np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    cfg = ImageConfig(crop=(0.7, 1.0), crop_mode="center", uint8=True, pad_align="corner")
    from depictqa.data.images import _fit

    rh, rw = _fit(300, 400, cfg)
    resized = prepare_images({"a": image}, ImageConfig(uint8=True), 14)["a"][:, :rh, :rw]
    sizes = set()
    for seed in range(6):
        out = prepare_images({"ref": image, "a": image.copy()}, cfg, 14, random.Random(seed))
        assert torch.equal(out["ref"], out["a"])
        rows, cols = (out["a"].sum(0).sum(1) > 0).sum().item(), (out["a"].sum(0).sum(0) > 0).sum().item()
        assert 0.7 * rh - 1 <= rows <= rh and 0.7 * rw - 1 <= cols <= rw
        top, left = (rh - rows) // 2, (rw - cols) // 2
        assert torch.equal(out["a"][:, :rows, :cols], resized[:, top:top + rows, left:left + cols])
        sizes.add((rows, cols))
    assert len(sizes) > 3  # the ratio is drawn
    with pytest.raises(ValueError, match="crop_mode"):
        prepare_images({"a": image}, ImageConfig(crop=(0.7, 1.0), crop_mode="middle"), 14, random.Random(0))


def test_training_flip_is_shared_by_the_sample_and_reaches_every_symmetry() -> None:
    array = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    plain = prepare_images({"a": Image.fromarray(array)}, ImageConfig(min_size=32, uint8=True), 16)["a"]
    base = torch.from_numpy(array).permute(2, 0, 1)
    symmetries = {t.numpy().tobytes() for r in range(4) for t in (torch.rot90(base, r, (1, 2)),
                                                                   torch.rot90(base, r, (1, 2)).flip(2))}
    for flip, variants in (("h", 2), ("hv", 4), ("dihedral", 8)):
        cfg = ImageConfig(flip=flip, min_size=32, uint8=True)  # 64 px: no padding
        seen = set()
        for seed in range(64):
            out = prepare_images({"ref": Image.fromarray(array), "a": Image.fromarray(255 - array)}, cfg, 16,
                                 random.Random(seed))
            assert torch.equal(out["a"], 255 - out["ref"])  # one flip for all images of the sample
            seen.add(out["ref"].numpy().tobytes())
        assert len(seen) == variants and seen <= symmetries, flip
    # no rng (evaluation, inference): never flipped; a non-square image is never transposed
    assert torch.equal(prepare_images({"a": Image.fromarray(array)},
                                      ImageConfig(flip="dihedral", min_size=32, uint8=True), 16)["a"], plain)
    wide = Image.fromarray(np.zeros((64, 96, 3), np.uint8))
    cfg = ImageConfig(flip="dihedral", short_side=64, max_long_side=96, min_size=32)
    shapes = {prepare_images({"a": wide}, cfg, 16, random.Random(s))["a"].shape for s in range(16)}
    assert shapes == {(3, 64, 96)}
    with pytest.raises(ValueError, match="flip"):
        prepare_images({"a": wide}, ImageConfig(flip="rotate"), 16, random.Random(0))


def test_group_of_different_sizes_resized_to_the_first() -> None:
    cfg = ImageConfig()
    out = prepare_images({"ref": Image.new("RGB", (400, 300)), "a": Image.new("RGB", (200, 100))}, cfg, 14)
    assert out["ref"].shape == out["a"].shape == (3, 224, 308)


def test_resampling_matches_pil_bicubic_and_uint8_output_matches_float() -> None:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:300, 0:400].astype(np.float32)
    photo = np.clip(np.stack([x / 2, y / 1.5, (x + y) / 3], -1) + rng.normal(0, 15, (300, 400, 3)), 0, 255)
    image = Image.fromarray(photo.astype(np.uint8))
    cfg = ImageConfig(short_side=120, max_long_side=400, min_size=16, uint8=True)
    got = prepare_images({"a": image}, cfg, patch_size=8)["a"]
    assert got.dtype == torch.uint8 and tuple(got.shape) == (3, 120, 160)
    pil = np.asarray(image.resize((160, 120), Image.Resampling.BICUBIC)).astype(int)
    diff = np.abs(got.permute(1, 2, 0).numpy().astype(int) - pil)
    assert diff.max() <= 2 and diff.mean() < 0.05
    as_float = prepare_images({"a": image}, ImageConfig(short_side=120, max_long_side=400, min_size=16), 8)["a"]
    mean, std = torch.tensor(cfg.mean).view(3, 1, 1), torch.tensor(cfg.std).view(3, 1, 1)
    torch.testing.assert_close((got.float() / 255 - mean) / std, as_float)
