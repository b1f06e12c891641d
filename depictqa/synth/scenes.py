"""Procedural scenes whose generator knows what it drew, so their captions are true.

``make_scene(rng, size)`` -> ``(image uint8 [size, size, 3], caption str)``. A scene is a
background (flat, gradient or texture) plus 1-3 shapes and sometimes a word of text; the caption
lists exactly those. Used for the regulariser (caption) source and as extra distortion sources.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORS = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
          "orange": (235, 130, 30), "purple": (130, 60, 170), "white": (245, 245, 245), "black": (20, 20, 20),
          "pink": (235, 130, 170), "brown": (120, 80, 40)}
LIGHT = {"light grey": (205, 205, 205), "pale blue": (185, 210, 235), "beige": (230, 215, 180),
         "light green": (190, 225, 185), "dark grey": (70, 70, 70), "navy": (30, 40, 90)}
SHAPES = ("circle", "square", "triangle", "ellipse", "star")
WORDS = ("SUN", "CAT", "HELLO", "DATA", "TREE", "BLUE", "STOP", "OPEN")


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.mgrid[0:size, 0:size] / (size - 1)`` (y, x), cached and read-only."""
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    kind = rng.choice(["flat", "gradient", "stripes", "checker", "noise"])
    names = list(LIGHT)
    n1, n2 = rng.choice(len(names), 2, replace=False)
    c1, c2 = np.array(LIGHT[names[n1]], float), np.array(LIGHT[names[n2]], float)
    yy, xx = _grid(size)
    if kind == "flat":
        return np.broadcast_to(c1, (size, size, 3)).copy(), f"a plain {names[n1]} background"
    if kind == "gradient":
        t = (xx if rng.random() < 0.5 else yy)[..., None]
        return c1 * (1 - t) + c2 * t, f"a smooth gradient from {names[n1]} to {names[n2]}"
    if kind == "stripes":
        period = int(rng.integers(8, 24))
        t = ((xx * size // period) % 2)[..., None]
        return c1 * (1 - t) + c2 * t, f"a background of {names[n1]} and {names[n2]} vertical stripes"
    if kind == "checker":
        period = int(rng.integers(8, 24))
        t = (((xx * size // period) + (yy * size // period)) % 2)[..., None]
        return c1 * (1 - t) + c2 * t, f"a {names[n1]} and {names[n2]} checkerboard background"
    from scipy.ndimage import gaussian_filter
    tex = gaussian_filter(rng.standard_normal((size, size)), 3)
    t = ((tex - tex.min()) / (np.ptp(tex) + 1e-8))[..., None]
    return c1 * (1 - t) + c2 * t, f"a mottled {names[n1]} and {names[n2]} texture"


def _shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "ellipse":
        draw.ellipse((x0, y0 + (y1 - y0) // 4, x1, y1 - (y1 - y0) // 4), fill=fill)
    elif kind == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:  # five-pointed star
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
        ang = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        draw.polygon(list(zip(cx + rad * np.cos(ang), cy - rad * np.sin(ang))), fill=fill)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def make_scene(rng: np.random.Generator, size: int = 224) -> tuple[np.ndarray, str]:
    """A random scene ``[size, size, 3]`` uint8 and its true caption."""
    bg, bg_text = _background(rng, size)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    things = []
    color_names = list(COLORS)
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(SHAPES))
        cname = str(rng.choice(color_names))
        s = int(rng.integers(size // 6, size // 2))
        x0, y0 = (int(v) for v in rng.integers(0, size - s, 2))
        _shape(draw, kind, (x0, y0, x0 + s, y0 + s), COLORS[cname])
        things.append(f"a {cname} {kind}")
    caption = f"{_join(things)} on {bg_text}"
    if rng.random() < 0.3:
        word, cname = str(rng.choice(WORDS)), str(rng.choice(["black", "white", "red", "blue"]))
        font = ImageFont.load_default(size=max(10, size // 8))
        draw.text((int(rng.integers(0, size // 3)), int(rng.integers(0, size * 2 // 3))), word,
                  fill=COLORS[cname], font=font)
        caption += f", with the word \"{word}\" written in {cname} letters"
    return np.asarray(img), caption[:1].upper() + caption[1:] + "."
