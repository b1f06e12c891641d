"""Frozen-encoder feature cache: same tokens as without it, the encoder skipped on repeats."""

import pytest
import torch

from depictqa.data.collate import collate
from depictqa.feature_cache import FeatureCache, image_key
from tests.conftest import TEXTS, mixed_items, tiny_recipe


def _frozen_model(*extra):
    from depictqa.build import build_model

    torch.manual_seed(0)
    return build_model(tiny_recipe("model.encoder.train=frozen", *extra), texts=TEXTS).eval()


def test_lru_keeps_within_budget_and_drops_least_recently_used():
    one = torch.zeros(4, 8)  # 128 bytes
    cache = FeatureCache(max_bytes=3 * 128)
    for k in "abc":
        cache.put(k, one)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", one)
    assert len(cache) == 3 and cache.bytes == 384
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("d") is not None


def test_image_key_depends_on_content_shape_and_dtype():
    x = torch.arange(24, dtype=torch.uint8).view(2, 3, 4)
    assert image_key(x) == image_key(x.clone())
    assert image_key(x) != image_key(x.flip(-1))
    assert image_key(x) != image_key(x.view(2, 4, 3))
    assert image_key(x) != image_key(x.float())


@pytest.mark.parametrize("extra", [(), ("model.conditioners=[{name: relative-stats}]",)], ids=["plain", "relative_stats"])
def test_cached_features_equal_fresh_ones_and_skip_the_encoder(extra):
    model = _frozen_model("model.encoder_cache_gb=0.01", *extra)
    plain = _frozen_model(*extra)
    for m in (model, plain):
        if len(m.conditioners):  # as after training: the relative term changes the tokens
            torch.manual_seed(1)
            torch.nn.init.normal_(m.conditioners[0].embed[-1].weight, std=0.5)
    items = mixed_items(model)
    for it in items:
        it.image_keys = [image_key(p) for p in it.pixels]
    batch = collate(items)
    calls = []
    model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    first = model(batch).sample_loss
    second = model(batch).sample_loss
    torch.testing.assert_close(first, plain(batch).sample_loss)
    torch.testing.assert_close(second, first)
    assert sum(calls) == len(batch.pixels)  # only the first pass ran the encoder
    assert model.feature_cache.hits == len(batch.pixels) and len(model.feature_cache) == len(batch.pixels)


def test_cache_is_refused_with_a_trained_encoder_or_random_crops():
    from depictqa.build import build_model
    from depictqa.config import RecipeError

    with pytest.raises(RecipeError, match="encoder.train: frozen"):
        build_model(tiny_recipe("model.encoder.train=full", "model.encoder_cache_gb=1"), texts=TEXTS)
    with pytest.raises(RecipeError, match="crop"):
        build_model(tiny_recipe("model.encoder.train=frozen", "model.encoder_cache_gb=1",
                                "data.image.crop=[0.7, 1.0]"), texts=TEXTS)
    with pytest.raises(RecipeError, match="flip"):
        build_model(tiny_recipe("model.encoder.train=frozen", "model.encoder_cache_gb=1",
                                "data.image.flip=h"), texts=TEXTS)


def test_training_items_carry_image_keys_only_when_caching():
    from depictqa.build import sample_encoder
    from depictqa.data.schema import Sample

    conv = [{"from": "human", "value": "Which image is better?"}, {"from": "gpt", "value": "Image A"}]
    pixels = {k: torch.randint(0, 255, (3, 16, 24), dtype=torch.uint8) for k in ("ref", "a", "b")}
    sample = Sample("s0", "compare", True, conv, style="single", images=pixels)
    assert sample_encoder(_frozen_model())(sample).image_keys is None
    item = sample_encoder(_frozen_model("model.encoder_cache_gb=0.01"))(sample)
    assert item.image_keys == [image_key(sample.images[k]) for k in sample.image_order]
