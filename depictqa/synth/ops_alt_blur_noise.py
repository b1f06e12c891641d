"""Second (and third) implementations of the blur, noise and compression sub-types.

Each sub-type of :mod:`depictqa.synth.ops_blur_noise` has a *base* implementation; the functions
here render the same sub-type with another library or another construction (Pillow's box-pass
Gaussian, an anti-aliased motion kernel, bilinear instead of nearest displacement, a hexagonal
aperture, a block-DCT codec written with ``scipy.fft``, ...), so that a model trained on the
synthesised data learns the visible effect rather than one function's fingerprint. Same contract:
``x`` float32 ``[H, W, 3]`` in [0, 1], severity parameter ``p`` (same meaning and range as the
base), a ``numpy.random.Generator`` -> float32 ``[H, W, 3]``; randomness is drawn before ``p`` is
used, so one seed gives one noise field at every severity (severity stays monotone).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage
from scipy.fft import dctn, idctn

from depictqa.synth.ops_blur_noise import _RGB2YCC, _codec, _per_channel_conv


def to_pil(x: np.ndarray) -> Image.Image:
    """float ``[H, W, 3]`` in [0, 1] -> 8-bit RGB Pillow image (rounded)."""
    return Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))


def from_pil(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), np.float32) / 255


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


# --- blur -----------------------------------------------------------------------------------

def gaussian_blur_pil(x, p, rng):
    """Pillow's Gaussian (three box passes), 8-bit in and out."""
    return from_pil(to_pil(x).filter(ImageFilter.GaussianBlur(p)))


def gaussian_blur_cv(x, p, rng):
    """OpenCV's conventions in scipy: kernel of ``round(6σ + 1) | 1`` taps, reflect-101 border."""
    half = int(round(6 * p + 1)) // 2
    t = np.arange(-half, half + 1, dtype=np.float32)
    k = np.exp(-t ** 2 / (2 * p * p))
    k /= k.sum()
    y = ndimage.correlate1d(x, k, axis=0, mode="mirror")
    return ndimage.correlate1d(y, k, axis=1, mode="mirror")


def motion_blur_antialiased(x, p, rng):
    """A line kernel drawn by Pillow at 4x and box-reduced: sub-pixel (anti-aliased) streak."""
    angle = rng.uniform(0, np.pi)
    size = 2 * int(np.ceil(p / 2)) + 3
    big = Image.new("F", (4 * size, 4 * size), 0.0)
    c, d = 2 * size, 2 * p * np.array([np.cos(angle), np.sin(angle)])
    ImageDraw.Draw(big).line([(c - d[0], c - d[1]), (c + d[0], c + d[1])], fill=1.0, width=4)
    kernel = np.asarray(big.reduce(4), np.float32)
    return _per_channel_conv(x, kernel)


def _bilinear_displace(x, field, amount):
    """Move every pixel by ``field * amount`` px with bilinear resampling (edges clamped)."""
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = [yy + field[0] * amount, xx + field[1] * amount]
    return np.stack([ndimage.map_coordinates(x[..., c], coords, order=1, mode="nearest")
                     for c in range(3)], axis=-1)


def glass_blur_bilinear(x, p, rng):
    sigma, amount = p
    field = rng.uniform(-1, 1, (2,) + x.shape[:2]).astype(np.float32)
    y = from_pil(to_pil(x).filter(ImageFilter.GaussianBlur(sigma)))
    y = _bilinear_displace(y, field, amount)
    return from_pil(to_pil(y).filter(ImageFilter.GaussianBlur(sigma)))


def lens_blur_hexagon(x, p, rng):
    """Six-blade aperture of circumradius ``p``, anti-aliased by 4x4 supersampling, random turn."""
    turn = rng.uniform(0, np.pi / 3)
    r = int(np.ceil(p))
    t = (np.arange(-(r + 0.5) * 4 + 0.5, (r + 0.5) * 4) / 4).astype(np.float32)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    angles = turn + np.arange(6) * np.pi / 3  # inside: every edge normal projection <= apothem
    inside = np.all(xx[..., None] * np.cos(angles) + yy[..., None] * np.sin(angles) <= p * np.cos(np.pi / 6),
                    axis=-1)
    n = 2 * r + 1
    kernel = inside.reshape(n, 4, n, 4).mean(axis=(1, 3)).astype(np.float32)
    return _per_channel_conv(x, kernel)


def zoom_blur_affine(x, p, rng):
    """Mean of nine centre zooms from 1 to ``p`` by scipy's bilinear affine resampling."""
    h, w = x.shape[:2]
    acc = np.zeros_like(x, dtype=np.float32)
    zooms = np.linspace(1.0, p, 9)
    for z in zooms:
        m = np.array([1 / z, 1 / z, 1.0])
        offset = np.array([(h - 1) / 2, (w - 1) / 2, 0.0]) * (1 - m)
        acc += ndimage.affine_transform(x, m, offset=offset, order=1, mode="nearest")
    return acc / len(zooms)


def jitter_blur_bilinear(x, p, rng):
    field = rng.uniform(-1, 1, (2,) + x.shape[:2]).astype(np.float32)
    return _bilinear_displace(x, field, p)


# --- noise ----------------------------------------------------------------------------------

def gaussian_noise_skimage(x, p, rng):
    from skimage.util import random_noise
    return random_noise(x, mode="gaussian", var=p * p, rng=_seed(rng), clip=False).astype(np.float32)


def gaussian_noise_ycbcr_pil(x, p, rng):
    """Noise added to Pillow's 8-bit YCbCr planes (chroma at half strength), converted back."""
    n = rng.standard_normal(x.shape, dtype=np.float32) * np.array([p, p / 2, p / 2], np.float32) * 255
    ycc = np.asarray(to_pil(x).convert("YCbCr"), np.float32) + n
    ycc = np.clip(ycc + 0.5, 0, 255).astype(np.uint8)
    return from_pil(Image.frombytes("YCbCr", (x.shape[1], x.shape[0]), ycc.tobytes()))


def speckle_noise_uniform(x, p, rng):
    """Multiplicative noise from a uniform law of unit variance (base: Gaussian)."""
    u = rng.uniform(-np.sqrt(3), np.sqrt(3), x.shape).astype(np.float32)
    return x + x * u * p


def correlated_noise_upsampled(x, p, rng):
    """White noise at half resolution, bilinearly enlarged: grain about two pixels wide."""
    h, w = x.shape[:2]
    n = rng.standard_normal((h // 2 + 2, w // 2 + 2, 3), dtype=np.float32)
    n = ndimage.zoom(n, (2, 2, 1), order=1)[:h, :w]
    return x + n / (n.std() + 1e-8) * p


def poisson_noise_gaussian(x, p, rng):
    """Shot noise by its Gaussian approximation: variance ``x / p`` for ``p`` photons at white."""
    n = rng.standard_normal(x.shape, dtype=np.float32)
    return x + np.sqrt(np.maximum(x, 0) / p) * n


def impulse_noise_skimage(x, p, rng):
    """scikit-image's salt and pepper: each channel of each pixel hit independently (coloured)."""
    from skimage.util import random_noise
    return random_noise(x, mode="s&p", amount=p, rng=_seed(rng)).astype(np.float32)


# --- compression ----------------------------------------------------------------------------

def jpeg_444(x, p, rng):
    """Pillow JPEG without chroma subsampling (base: 4:2:0)."""
    return _codec(x, format="JPEG", quality=int(p), subsampling=0)


# the JPEG standard's (Annex K) luminance and chrominance quantisation tables
_Q_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float32).reshape(8, 8)
_Q_CHROMA = np.full((8, 8), 99, np.float32)
_Q_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def jpeg_dct(x, p, rng):
    """A JPEG-like codec in ``scipy.fft``: float 8x8 DCT, IJG quality scaling, 4:4:4, no entropy
    coding (lossless). The orthonormal 8x8 DCT is JPEG's FDCT, so the standard tables apply."""
    q = int(p)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    h, w = x.shape[:2]
    ph, pw = -h % 8, -w % 8
    # JFIF YCbCr in 0..255 (chroma centred on 128), level-shifted by -128 as JPEG does
    ycc = np.pad(x @ _RGB2YCC.T * 255, ((0, ph), (0, pw), (0, 0)), mode="edge")
    ycc[..., 0] -= 128
    out = np.empty_like(ycc)
    for c, table in enumerate((_Q_LUMA, _Q_CHROMA, _Q_CHROMA)):
        step = np.clip(np.floor((table * scale + 50) / 100), 1, 255)
        blocks = ycc[..., c].reshape(ycc.shape[0] // 8, 8, ycc.shape[1] // 8, 8)
        coef = dctn(blocks, axes=(1, 3), norm="ortho")
        coef = np.round(coef / step[None, :, None, :]) * step[None, :, None, :]
        out[..., c] = idctn(coef, axes=(1, 3), norm="ortho").reshape(ycc.shape[:2])
    out = np.round(np.clip(out + 128, 0, 255)) - np.array([0, 128, 128], np.float32)  # 8-bit planes
    rgb = out[:h, :w] / 255 @ np.linalg.inv(_RGB2YCC).T
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.float32) / 255


def jpeg2000_irreversible(x, p, rng):
    """OpenJPEG with the irreversible 9/7 wavelet (base: the reversible 5/3), same PSNR target."""
    return _codec(x, format="JPEG2000", quality_mode="dB", quality_layers=[float(p)], irreversible=True)
