"""Probe images for the distortion tests: two photo crops and a procedural scene."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def images(request) -> list[np.ndarray]:
    """Astronaut and coffee (top-left 256 px, resized) and one scene, at the module's
    ``IMAGE_SIZE`` (default 64) px."""
    from PIL import Image

    from depictqa.synth.scenes import make_scene
    from depictqa.synth.sources import embedded_images

    size = getattr(request.module, "IMAGE_SIZE", 64)
    photos = {p.id: p.pixels for p in embedded_images()}
    out = [np.asarray(Image.fromarray(photos[k][:256, :256]).resize((size, size)))
           for k in ("skimage/astronaut", "skimage/coffee")]
    return out + [make_scene(np.random.default_rng(3), size)[0]]
