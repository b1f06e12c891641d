"""The from-scratch encoder of the CPU recipes: its tokens must carry the image from step 0."""

import torch

from depictqa.encoders.tiny import TinyViT
from depictqa.iqa_stats import MSCN, GlobalStats


def _images(n: int = 8, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 3, 1, 1, generator=g)  # different colours and textures per image
    return (base + 0.3 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def test_conv_stem_tokens_depend_on_the_image_at_initialisation():
    # With PyTorch's default conv init the signal shrank ~3x per layer and the tokens of different
    # images were nearly identical (spread/norm ~0.004): a from-scratch VLM then learned to ignore them.
    torch.manual_seed(0)
    enc = TinyViT(patch_size=16, embed_dim=128, depth=3, grid=8, stem="conv", mscn=True).eval()
    with torch.no_grad():
        tokens = enc((_images() - 0.45) / 0.27)
    spread = tokens.std(0).mean() / tokens.norm(dim=-1).mean()
    assert spread > 0.02


def test_mscn_is_zero_on_flat_images_and_ignores_brightness_and_contrast():
    flat = torch.full((1, 3, 32, 32), 0.4)
    assert MSCN()(flat).abs().max() < 1e-3
    mscn = MSCN(c=1e-6)  # negligible stabiliser: exact invariance on textured images
    x = _images(2, 32)
    torch.testing.assert_close(mscn(0.5 * x + 0.2), mscn(x), rtol=1e-3, atol=1e-3)
    assert mscn(x).std() > 0.5  # textured images give unit-scale coefficients


def test_mscn_input_changes_the_stem_and_keeps_the_token_grid():
    plain = TinyViT(patch_size=16, embed_dim=32, depth=1, grid=4, stem="conv")
    with_mscn = TinyViT(patch_size=16, embed_dim=32, depth=1, grid=4, stem="conv", mscn=True)
    assert plain.patch[0].in_channels == 3 and with_mscn.patch[0].in_channels == 6
    x = torch.randn(2, 3, 48, 64)
    assert with_mscn(x).shape == plain(x).shape == (2, 12, 32)
    # The extra coefficients are computed, not learned: the state dict holds no new tensors.
    assert set(with_mscn.state_dict()) == set(plain.state_dict())


def _stat(stats: torch.Tensor, name: str) -> torch.Tensor:
    """One named column of GlobalStats (asinh-squashed, so monotone in the raw value)."""
    order = ["mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "sat_mean", "sat_std", "luma_mean", "luma_std",
             "luma_p1", "luma_p99", "mscn_var", "mscn_abs", "mscn_kurt", "mscn_h", "mscn_v", "lap_logvar",
             "lap_logabs", "block_x", "block_y", "grad_log", "flat_x", "flat_y", "hist_empty", "hist_entropy",
             "colours", "sigma_p10", "sigma_p50", "sigma_p90"]
    assert len(order) == GlobalStats.size
    return stats[:, order.index(name)]


def test_global_stats_respond_to_the_distortions_they_stand_for():
    from torch.nn import functional as F

    stats = GlobalStats()
    x = _images(4, 64)
    base = stats(x)
    assert base.shape == (4, GlobalStats.size) and torch.isfinite(base).all()
    assert (_stat(stats((x + 0.2).clamp(0, 1)), "luma_mean") > _stat(base, "luma_mean")).all()  # brighten
    assert (_stat(stats(0.5 + 0.3 * (x - 0.5)), "luma_std") < _stat(base, "luma_std")).all()  # contrast weaken
    grey = x.mean(1, keepdim=True).expand_as(x)
    assert (_stat(stats(0.5 * x + 0.5 * grey), "sat_mean") < _stat(base, "sat_mean")).all()  # desaturate
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (_stat(stats(noisy), "lap_logvar") > _stat(base, "lap_logvar")).all()  # noise
    blurred = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    assert (_stat(stats(blurred), "lap_logvar") < _stat(base, "lap_logvar")).all()  # blur
    quantised = (x * 3).round() / 3
    assert (_stat(stats(quantised), "colours") < _stat(base, "colours")).all()  # quantisation
    assert (_stat(stats(quantised), "hist_empty") > _stat(base, "hist_empty")).all()
    blocks = F.interpolate(F.avg_pool2d(x, 8), scale_factor=8, mode="nearest")  # 8x8 blocking
    assert (_stat(stats(0.5 * x + 0.5 * blocks), "block_x") > _stat(base, "block_x")).all()


def test_global_stats_are_per_image_and_their_embedding_is_saved():
    torch.manual_seed(0)
    enc = TinyViT(patch_size=16, embed_dim=32, depth=1, grid=4, stem="conv", mscn=True, stem_bn=True,
                  stats=True).eval()
    x = (_images(3, 48) - 0.45) / 0.27
    with torch.no_grad():
        together = enc(x)
        alone = torch.cat([enc(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert together.shape == (3, 9, 32)  # the token grid is unchanged: stats are added, not appended
    # the statistics' normaliser keeps running statistics: they must travel in checkpoints
    assert {"stats_embed.0.running_mean", "stats_embed.0.running_var"} <= set(enc.state_dict())
    # every token carries the image's statistics: silencing their embedding changes all of them
    with torch.no_grad():
        enc.stats_embed[-1].weight.zero_()
        enc.stats_embed[-1].bias.zero_()
        silent = enc(x)
    assert ((silent - together).abs().amax(-1) > 1e-4).all()


def test_stats_embedding_trains_on_a_lone_image():
    # encode_images groups images by shape: a group of one must not break BatchNorm in training
    enc = TinyViT(patch_size=16, embed_dim=32, depth=1, grid=4, stem="conv", stats=True).train()
    enc(torch.randn(1, 3, 32, 48)).sum().backward()
    assert enc.stats_embed[1].weight.grad is not None


def test_hand_made_features_stay_float32_under_bf16_autocast():
    # bf16-mixed training autocasts convolutions; local variance (E[x^2] - E[x]^2) would lose its digits
    enc = TinyViT(patch_size=16, embed_dim=32, depth=1, grid=4, stem="conv", mscn=True, stats=True).eval()
    seen = {}
    enc.stats_embed.register_forward_hook(lambda m, i, o: seen.update(stats=i[0]))
    enc.mscn.register_forward_hook(lambda m, i, o: seen.setdefault("mscn", o))
    x = (_images(2, 48) - 0.45) / 0.27
    with torch.autocast("cpu", dtype=torch.bfloat16):
        enc(x)
    assert seen["stats"].dtype == seen["mscn"].dtype == torch.float32
    eight_bit = ((x * enc.std_ + enc.mean_).clamp(0, 1) * 255).round() / 255  # the statistics read 8-bit content
    torch.testing.assert_close(seen["stats"], GlobalStats()(eight_bit), rtol=1e-4, atol=1e-5)


def test_matrix_smoothing_equals_reflect_padded_convolution():
    import torch.nn.functional as F

    from depictqa.iqa_stats import gaussian_window

    w = gaussian_window()
    k = w.numel()
    x = torch.rand(2, 3, 20, 37, generator=torch.Generator().manual_seed(0))
    ref = F.pad(x.reshape(6, 1, 20, 37), (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    ref = F.conv2d(F.conv2d(ref, w.view(1, 1, 1, k)), w.view(1, 1, k, 1)).view(2, 3, 20, 37)
    torch.testing.assert_close(MSCN()._smooth(x), ref, rtol=1e-5, atol=1e-6)


def test_percentiles_are_the_sorted_values_at_their_rank():
    from depictqa.iqa_stats import _percentiles

    x = torch.rand(3, 1001, generator=torch.Generator().manual_seed(1))
    v = x.sort(dim=1).values
    for q, got in zip((0.01, 0.5, 0.99), _percentiles(x, (0.01, 0.5, 0.99))):
        assert torch.equal(got, v[:, round(q * 1000)])
