"""Blur, noise and compression operators of the DQ-495K taxonomy.

Every operator takes ``x``: float32 ``[H, W, 3]`` in [0, 1], a severity parameter ``p`` (one of
the five values listed in :mod:`depictqa.synth.distortions`) and a ``numpy.random.Generator``,
and returns a float32 ``[H, W, 3]`` array (clipping is done by the caller). Random operators
draw their randomness *before* using ``p`` so that, for one seed, the five severities share the
same noise field / angle and differ only in strength -- that is what makes severity monotone.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage, signal


def _per_channel_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with ``kernel`` ([k, k]); reflect padding avoids dark borders."""
    k = kernel / kernel.sum()
    pad = kernel.shape[0] // 2 + 1
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    # fftconvolve, not ndimage.convolve: a 41x41 motion kernel is ~50x faster in the Fourier domain
    out = signal.fftconvolve(xp, k[:, :, None], mode="same", axes=(0, 1))
    return out[pad:-pad, pad:-pad].astype(np.float32)


def gaussian_blur(x, p, rng):
    return ndimage.gaussian_filter(x, sigma=(p, p, 0), mode="reflect")


def motion_blur(x, p, rng):
    angle = rng.uniform(0, np.pi)
    size = 2 * int(np.ceil(p)) + 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    # dense samples along a line of length p through the centre, splatted to the nearest pixel
    for t in np.linspace(-p / 2, p / 2, int(4 * p) + 1):
        kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] += 1
    return _per_channel_conv(x, kernel)


def _displace(x, amount, rng, field):
    """Move every pixel by a random offset in [-amount, amount] (same unit field for all p)."""
    h, w = x.shape[:2]
    dy = np.rint(field[0] * amount).astype(int)
    dx = np.rint(field[1] * amount).astype(int)
    yy = np.clip(np.arange(h)[:, None] + dy, 0, h - 1)
    xx = np.clip(np.arange(w)[None, :] + dx, 0, w - 1)
    return x[yy, xx]


def glass_blur(x, p, rng):
    sigma, amount = p
    field = rng.uniform(-1, 1, (2,) + x.shape[:2])
    y = ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0))
    y = _displace(y, amount, rng, field)
    return ndimage.gaussian_filter(y, sigma=(sigma, sigma, 0))


def lens_blur(x, p, rng):
    r = int(np.ceil(p))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return _per_channel_conv(x, (yy ** 2 + xx ** 2 <= p ** 2).astype(np.float32))


def zoom_blur(x, p, rng):
    h, w = x.shape[:2]
    img = Image.fromarray((x * 255).astype(np.uint8))
    acc = x.astype(np.float64).copy()
    zooms = np.arange(1.01, p + 1e-6, 0.01)
    for z in zooms:  # average of centre crops enlarged by z: a radial streak like a zooming lens
        ch, cw = h / z, w / z
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        acc += np.asarray(img.resize((w, h), Image.BILINEAR, box=box), np.float64) / 255
    return (acc / (len(zooms) + 1)).astype(np.float32)


def jitter_blur(x, p, rng):
    field = rng.uniform(-1, 1, (2,) + x.shape[:2])
    return _displace(x, p, rng, field)


def gaussian_noise_rgb(x, p, rng):
    return x + rng.standard_normal(x.shape, dtype=np.float32) * p


_RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                    np.float32)


def gaussian_noise_ycbcr(x, p, rng):
    n = rng.standard_normal(x.shape, dtype=np.float32) * np.array([p, p / 2, p / 2], np.float32)
    ycc = x @ _RGB2YCC.T + n  # luma noise at full strength, chroma at half: camera-like grain
    return ycc @ np.linalg.inv(_RGB2YCC).T.astype(np.float32)


def speckle_noise(x, p, rng):
    return x + x * rng.standard_normal(x.shape, dtype=np.float32) * p


def correlated_noise(x, p, rng):
    n = ndimage.gaussian_filter(rng.standard_normal(x.shape, dtype=np.float32), sigma=(1, 1, 0))
    return x + n / (n.std() + 1e-8) * p


def poisson_noise(x, p, rng):
    # p is the photon count of a white pixel; fewer photons -> relatively more shot noise
    return (rng.poisson(x.astype(np.float64) * p) / p).astype(np.float32)


def impulse_noise(x, p, rng):
    u = rng.uniform(size=x.shape[:2])
    salt = rng.uniform(size=x.shape[:2]) < 0.5
    y = x.copy()
    hit = u < p
    y[hit & salt] = 1.0
    y[hit & ~salt] = 0.0
    return y


def _codec(x, **save):
    buf = io.BytesIO()
    Image.fromarray(np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)).save(buf, **save)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255


def jpeg(x, p, rng):
    return _codec(x, format="JPEG", quality=int(p))


def jpeg2000(x, p, rng):
    # p is a target PSNR in dB, not a compression rate: OpenJPEG's rate mode has a byte floor
    # that makes severities 3-5 identical on small (<100 px) images
    return _codec(x, format="JPEG2000", quality_mode="dB", quality_layers=[float(p)])
