"""The from-scratch encoder of the CPU recipes: its tokens must carry the image from step 0."""

import torch

from depictqa.encoders.tiny import MSCN, TinyViT


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
