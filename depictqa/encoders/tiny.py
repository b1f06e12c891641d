"""A small from-scratch ViT for CPU recipes and tests (no pretrained weights needed).

Learned 2-D position embeddings on a fixed grid, bilinearly resized to the input's patch grid,
so any H x W that is a multiple of the patch size runs. ``stem="conv"`` replaces the linear patch
embedding with stride-2 3x3 convolutions (Xiao et al., "Early convolutions help transformers see
better"): a linear patch projection cannot measure local energy (noise level, sharpness) by
itself, and a from-scratch model trained for minutes learns those low-level cues far faster with a
convolutional stem.

``mscn=True`` also feeds the stem each colour channel's mean-subtracted contrast-normalised (MSCN)
coefficients, ``(x - mu) / (sigma + c)`` with a 7x7 Gaussian window (Mittal et al., BRISQUE, 2012).
They are the classic hand-made cue of no-reference IQA: noise, blur, blocking and banding change
their statistics whatever the scene's brightness and contrast. A from-scratch encoder trained for
minutes on a CPU identifies distortions markedly better with them (docs/performance.md).

``stats=True`` adds an embedding of :class:`GlobalStats` to every patch token: thirty fixed,
whole-image measurements of the kind no-reference IQA models were built on before deep learning
(colour and luminance moments, MSCN moments and neighbour products, Laplacian energy, 8x8 block
edges, histogram gaps, colour count, local-contrast percentiles). Brightness, contrast, saturation,
quantisation and compression are properties of the whole image; a small encoder trained from
scratch for minutes learns to aggregate them slowly, while these statistics state them outright.
The embedding (a BatchNorm and a two-layer MLP) is trained with the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depictqa.encoders.base import CLIP_MEAN, CLIP_STD


def conv_stem(patch_size: int, embed_dim: int, in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """3x3 stride-2 convolutions down to ``patch_size`` (a power of two), then a 1x1 to the width.

    ``batch_norm``: BatchNorm after each 3x3 convolution. It normalises over the batch, so unlike a
    per-image norm it keeps each image's absolute brightness and contrast, and it lets a stem
    trained from scratch learn faster (running statistics at inference)."""
    steps = patch_size.bit_length() - 1
    if 2 ** steps != patch_size:
        raise ValueError(f"stem 'conv' needs a power-of-two patch_size, got {patch_size}")
    layers: list[nn.Module] = []
    width = in_channels
    for i in range(steps):
        out = min(embed_dim, 16 * 2 ** i)
        # No per-image normalisation: it would erase the brightness and contrast the model must judge.
        layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), *([nn.BatchNorm2d(out)] if batch_norm else []),
                   nn.GELU()]
        width = out
    stem = nn.Sequential(*layers, nn.Conv2d(width, embed_dim, 1))
    # He initialisation: PyTorch's default shrinks the activation variance about threefold per
    # layer, so after five layers the tokens barely depend on the image and a from-scratch VLM
    # learns to ignore them before the encoder can catch up.
    for conv in stem:
        if isinstance(conv, nn.Conv2d):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
    return stem


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def reflect_smoothing_matrix(n: int, window: torch.Tensor) -> torch.Tensor:
    """``[n, n]`` matrix ``M`` with ``x @ M`` = ``x`` convolved with ``window`` along its last axis,
    reflect-padded (as ``F.pad(mode="reflect")`` + ``conv1d``).

    On the CPU one small matmul per axis is faster than the padded depthwise convolutions it
    replaces (1.7 against 4.5 ms for 70 RGB images of 64 px, measured on 2 cores), and the
    statistics of every image of every training step run through it."""
    k = window.numel()
    if n <= k // 2:
        raise ValueError(f"cannot reflect-pad a size-{n} axis for a {k}-tap window")
    out = torch.arange(n, device=window.device)[:, None].expand(n, k)
    src = out + torch.arange(k, device=window.device)[None, :] - k // 2
    src = src.abs()
    src = torch.where(src >= n, 2 * (n - 1) - src, src)
    m = torch.zeros(n, n, dtype=window.dtype, device=window.device)
    return m.index_put_((src.flatten(), out.flatten()), window.repeat(n), accumulate=True)


class MSCN(nn.Module):
    """Per-channel MSCN coefficients of ``[B, C, H, W]`` pixels in [0, 1] (separable Gaussian window)."""

    def __init__(self, size: int = 7, sigma: float = 7 / 6, c: float = 1 / 255) -> None:
        super().__init__()
        self.register_buffer("window", gaussian_window(size, sigma), persistent=False)
        self.c = c
        self._matrices: dict[tuple, torch.Tensor] = {}

    def _matrix(self, n: int, like: torch.Tensor) -> torch.Tensor:
        key = (n, like.dtype, like.device)
        if key not in self._matrices:
            self._matrices[key] = reflect_smoothing_matrix(n, self.window.to(like.device, like.dtype))
        return self._matrices[key]

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian smoothing of ``[..., H, W]``, reflect-padded."""
        h, w = x.shape[-2:]
        return self._matrix(h, x).T @ (x @ self._matrix(w, x))

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local mean and local standard deviation (Gaussian window)."""
        mu = self._smooth(x)
        return mu, (self._smooth(x * x) - mu * mu).clamp_min(0).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, sigma = self.moments(x)
        return (x - mu) / (sigma + self.c)


def _percentiles(x: torch.Tensor, qs: tuple[float, ...]) -> list[torch.Tensor]:
    """Per-row percentiles of ``[B, N]``: the value of rank ``round(q * (N - 1))``, by ``kthvalue``
    (``torch.quantile`` caps the input size; sorting was over a third of the statistics' time in
    the profiler)."""
    n = x.shape[1] - 1
    return [x.kthvalue(round(q * n) + 1, dim=1).values for q in qs]


def _std(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Unbiased standard deviation along ``dim`` by the two-pass formula (``Tensor.std`` along an
    inner axis is several times slower on the CPU)."""
    return _var(x, dim).sqrt()


def _var(x: torch.Tensor, dim: int) -> torch.Tensor:
    centred = x - x.mean(dim, keepdim=True)
    return (centred * centred).sum(dim) / max(1, x.shape[dim] - 1)


class GlobalStats(nn.Module):
    """Whole-image quality statistics of ``[B, 3, H, W]`` pixels in [0, 1] -> ``[B, 30]`` (no parameters).

    Per channel: mean and std (6). Saturation: mean and std (2). Luminance: mean, std, 1st and 99th
    percentile (4). Luminance MSCN: variance, mean |x|, kurtosis, horizontal and vertical neighbour
    products (5). Laplacian: log variance and log mean |x| (2). Gradients: the mean |dx| on 8-pixel
    block edges over the mean |dx| everywhere, the same for dy, log mean |dx|, the share of flat
    steps in x and in y (5). Histogram of the 8-bit values: share of empty bins and entropy (2).
    Distinct colours per pixel (1). Local contrast (the MSCN sigma): 10th, 50th, 90th percentile (3).
    """

    size = 30
    LUMA = (0.299, 0.587, 0.114)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("luma", torch.tensor(self.LUMA).view(1, 3, 1, 1), persistent=False)
        self.mscn = MSCN()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().clamp(0, 1)
        b = x.shape[0]
        flat = x.flatten(2)
        y = (x * self.luma).sum(1, keepdim=True)  # [B, 1, H, W]
        yf = y.flatten(1)
        out = [flat.mean(2), _std(flat, 2)]
        hi, lo = x.amax(1), x.amin(1)
        sat = ((hi - lo) / (hi + 1e-3)).flatten(1)
        out += [sat.mean(1, keepdim=True), _std(sat, 1)[:, None], yf.mean(1, keepdim=True), _std(yf, 1)[:, None]]
        out += [p[:, None] for p in _percentiles(yf, (0.01, 0.99))]
        mu, sigma = self.mscn.moments(y)
        m = (y - mu) / (sigma + self.mscn.c)
        mf = m.flatten(1)
        var = _var(mf, 1)
        kurt = ((mf - mf.mean(1, keepdim=True)) ** 4).mean(1) / (var ** 2 + 1e-6)
        out += [torch.stack([var, mf.abs().mean(1), kurt, (m[..., :, 1:] * m[..., :, :-1]).flatten(1).mean(1),
                             (m[..., 1:, :] * m[..., :-1, :]).flatten(1).mean(1)], 1)]
        lap = (y[..., :-2, 1:-1] + y[..., 2:, 1:-1] + y[..., 1:-1, :-2] + y[..., 1:-1, 2:] - 4 * y[..., 1:-1, 1:-1]).flatten(1)
        out += [torch.stack([(_var(lap, 1) + 1e-6).log(), (lap.abs().mean(1) + 1e-6).log()], 1)]
        dx, dy = (y[..., :, 1:] - y[..., :, :-1]).abs(), (y[..., 1:, :] - y[..., :-1, :]).abs()
        mdx, mdy = dx.flatten(1).mean(1), dy.flatten(1).mean(1)
        edge_x = dx[..., :, 7::8].flatten(1).mean(1) if dx.shape[-1] > 7 else mdx
        edge_y = dy[..., 7::8, :].flatten(1).mean(1) if dy.shape[-2] > 7 else mdy
        out += [torch.stack([edge_x / (mdx + 1e-6), edge_y / (mdy + 1e-6), (mdx + 1e-6).log(),
                             (dx < 1 / 255).flatten(1).float().mean(1), (dy < 1 / 255).flatten(1).float().mean(1)], 1)]
        q = (flat * 255).round().long()  # [B, 3, HW]
        hist = torch.zeros(b, 256, device=x.device).scatter_add_(1, q.flatten(1), torch.ones_like(q.flatten(1), dtype=torch.float))
        prob = hist / hist.sum(1, keepdim=True)
        entropy = -(prob * (prob + 1e-12).log()).sum(1)
        codes = (q[:, 0] * 65536 + q[:, 1] * 256 + q[:, 2]).int().sort(dim=1).values  # 24 bits: int32 sorts faster
        colours = 1 + (codes[:, 1:] != codes[:, :-1]).sum(1)
        out += [torch.stack([(hist == 0).float().mean(1), entropy, colours / codes.shape[1]], 1)]
        out += [torch.stack(_percentiles(sigma.flatten(1), (0.1, 0.5, 0.9)), 1)]
        stats = torch.cat(out, 1)
        # asinh: a log-like squash for heavy tails (kurtosis of a blocky image runs into the hundreds)
        return torch.asinh(stats)


class StatsNorm(nn.BatchNorm1d):
    """BatchNorm over images; a training batch of one image (a lone shape group) uses the running
    statistics instead of failing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class TinyViT(nn.Module):
    def __init__(self, patch_size: int = 14, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 2.0, grid: int = 16, stem: str = "patch", mscn: bool = False, stem_bn: bool = False,
                 stats: bool = False) -> None:
        super().__init__()
        self.patch_size, self.embed_dim = patch_size, embed_dim
        self.mean, self.std = CLIP_MEAN, CLIP_STD
        if stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        channels = 6 if mscn else 3
        self.mscn = MSCN() if mscn else None
        self.stats = GlobalStats() if stats else None
        if stats:
            self.stats_embed = nn.Sequential(StatsNorm(GlobalStats.size), nn.Linear(GlobalStats.size, embed_dim),
                                             nn.GELU(), nn.Linear(embed_dim, embed_dim))
        if mscn or stats:
            self.register_buffer("mean_", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std_", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        if stem_bn and stem != "conv":
            raise ValueError("stem_bn needs stem='conv'")
        self.patch = (conv_stem(patch_size, embed_dim, channels, stem_bn) if stem == "conv"
                      else nn.Conv2d(channels, embed_dim, patch_size, stride=patch_size))
        self.pos = nn.Parameter(torch.randn(1, embed_dim, grid, grid) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(embed_dim, num_heads, int(embed_dim * mlp_ratio), dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, (H/p)*(W/p), D]"""
        glob = 0
        if self.mscn is not None or self.stats is not None:
            # The pipeline hands CLIP-normalised pixels; MSCN and the statistics use [0, 1] intensities,
            # in float32 even under bf16 autocast (local variance is a difference of near-equal terms).
            with torch.autocast(pixels.device.type, enabled=False):
                raw = pixels.float() * self.std_ + self.mean_
                stats = self.stats(raw) if self.stats is not None else None
                mscn = self.mscn(raw) if self.mscn is not None else None
            if stats is not None:
                glob = self.stats_embed(stats).to(pixels.dtype)[:, :, None, None]
            if mscn is not None:
                pixels = torch.cat([pixels, 0.5 * mscn.to(pixels.dtype)], 1)
        x = self.patch(pixels)
        pos = F.interpolate(self.pos, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = (x + pos + glob).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def wrap_classes(self) -> set[type[nn.Module]]:
        return {nn.TransformerEncoderLayer}


def build_tiny_vit(patch_size: int = 14, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                   mlp_ratio: float = 2.0, grid: int = 16, stem: str = "patch", mscn: bool = False,
                   stem_bn: bool = False, stats: bool = False) -> TinyViT:
    """Small from-scratch ViT for CPU recipes (``mscn``: MSCN coefficients as extra input channels;
    ``stem_bn``: BatchNorm in the conv stem; ``stats``: a global-statistics embedding on every token)."""
    return TinyViT(patch_size, embed_dim, depth, num_heads, mlp_ratio, grid, stem, mscn, stem_bn, stats)
