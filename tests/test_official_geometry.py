"""The official DepictQA encoder geometry: CLIP position embeddings interpolated bicubically with
corners aligned, and images padded evenly around their centre (recipes for released models select
both: ``model.encoder.pos_interpolation: official``, ``data.image.pad_align: center``)."""

import numpy as np
import pytest
import torch

SIZES = [(224, 224), (224, 336), (70, 98)]


def tiny_clip(pos_interpolation: str):
    from depictqa.encoders.clip import build_clip

    torch.manual_seed(0)
    config = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 224, "patch_size": 14}
    return build_clip(config=config, pos_interpolation=pos_interpolation).eval()


def cubic_weights(t: float, a: float = -0.75) -> list[float]:
    """Keys' cubic convolution weights of the 4 taps around a point at fraction ``t``."""
    def k(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        return 0.0
    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


def resize_axis(x: np.ndarray, out: int, axis: int) -> np.ndarray:
    """Bicubic resize of one axis with aligned corners, border taps clamped (a reference written
    from the definition, independent of torch)."""
    n = x.shape[axis]
    x = np.moveaxis(x, axis, 0)
    rows = []
    for i in range(out):
        src = i * (n - 1) / (out - 1) if out > 1 else 0.0
        base = int(np.floor(src))
        w = cubic_weights(src - base)
        taps = [x[min(max(base + d, 0), n - 1)] for d in (-1, 0, 1, 2)]
        rows.append(sum(wi * ti for wi, ti in zip(w, taps)))
    return np.moveaxis(np.stack(rows), 0, axis)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_official_position_embeddings_equal_a_reference_interpolation(size):
    enc = tiny_clip("official")
    emb = enc.model.embeddings
    pixels = torch.randn(1, 3, *size)
    got = enc.official_embeddings(pixels)[0]
    pos = emb.position_embedding.weight.detach().numpy()
    grid = pos[1:].reshape(16, 16, -1)
    gh, gw = size[0] // 14, size[1] // 14
    want_grid = resize_axis(resize_axis(grid, gh, 0), gw, 1).reshape(gh * gw, -1)
    patches = emb.patch_embedding(pixels).flatten(2).transpose(1, 2)[0].detach().numpy()
    want = np.concatenate([(emb.class_embedding.detach().numpy() + pos[0])[None], patches + want_grid])
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-5)


def test_at_the_native_size_both_interpolations_equal_transformers_own_forward():
    official, plain = tiny_clip("official"), tiny_clip("transformers")
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference = plain.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
        torch.testing.assert_close(official(pixels), reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(plain(pixels), reference, rtol=1e-5, atol=1e-5)
        other = torch.randn(1, 3, 224, 336)
        assert not torch.allclose(official(other), plain(other), atol=1e-4)  # elsewhere they differ


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="pos_interpolation 'nearest' is not one of transformers, official"):
        tiny_clip("nearest")


@pytest.mark.parametrize("content,padded", [((224, 224), (224, 224)), ((224, 336), (224, 336)), ((60, 90), (70, 98)),
                                            ((51, 61), (70, 70))])
def test_center_padding_puts_the_image_in_the_middle(content, padded):
    from PIL import Image

    from depictqa.data.images import ImageConfig, prepare_images
    from tests.conftest import random_image

    array = random_image(3, *content)
    cfg = ImageConfig(short_side=224, max_long_side=672, min_size=70, pad_align="center", uint8=True)
    out = prepare_images({"a": Image.fromarray(array)}, cfg, 14)["a"]
    assert tuple(out.shape[-2:]) == padded
    # the official centre crop to a larger size: left/top padding = difference // 2
    top, left = (padded[0] - content[0]) // 2, (padded[1] - content[1]) // 2
    want = np.zeros((*padded, 3), np.uint8)
    want[top:top + content[0], left:left + content[1]] = array
    assert np.array_equal(out.permute(1, 2, 0).numpy(), want)
    corner = prepare_images({"a": Image.fromarray(array)}, ImageConfig(min_size=70, uint8=True), 14)["a"]
    assert np.array_equal(corner[:, :content[0], :content[1]].permute(1, 2, 0).numpy(), array)
