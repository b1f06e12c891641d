"""Several implementations per sub-type, parameters across each severity's band (issue 20, item 3)."""

from __future__ import annotations

import numpy as np
import pytest

from depictqa.synth.distortions import (CATEGORIES, DistortionFailed, apply, apply_chain, info, list_distortions,
                                        sample_distortions)
from depictqa.synth.implementations import ALTERNATIVES, BASE, parameter

PAIRS = [(r.name, impl) for r in list_distortions(available_only=True) for impl in r.implementations]



def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255 ** 2 / max(((a.astype(np.float64) - b) ** 2).mean(), 1e-10))


def test_every_sub_type_has_two_or_more_implementations():
    records = list_distortions()
    assert set(ALTERNATIVES) == {r.name for r in records}  # no alternative for a name that does not exist
    assert all(len(r.implementations) >= 2 and r.implementations[0] == BASE for r in records)
    per_category = {c: sum(len(r.implementations) for r in records if r.category == c) for c in CATEGORIES}
    assert min(per_category.values()) >= 2 and len(PAIRS) >= 70


@pytest.mark.parametrize("name,impl", PAIRS, ids=[f"{n}:{i}" for n, i in PAIRS])
def test_each_implementation_is_monotone_in_severity_at_any_strength(name, impl, images):
    """PSNR against the clean image falls as severity rises, at the weak end and the middle of the
    bands. (Not tested at the strong end: there severity 5 is only half a band step beyond 4, and
    pixelation of a 64-px image at scale 0.225 vs 0.2, 14 vs 13 cells, is as strong either way.)"""
    for strength in (0.0, 0.5):
        table = []
        for img in images:
            try:
                row = [_psnr(apply(name, img, s, seed=4, impl=impl, strength=strength), img) for s in range(1, 6)]
            except DistortionFailed:
                continue
            table.append(row)
        assert len(table) >= 2, f"{name}:{impl} failed on most test images"
        means = np.mean(table, axis=0)
        assert all(a > b for a, b in zip(means, means[1:])), f"{name}:{impl} at {strength}: {means.round(1)}"


@pytest.mark.parametrize("name,impl", [p for p in PAIRS if p[1] != BASE], ids=lambda v: str(v))
def test_an_alternative_is_not_the_base_in_disguise(name, impl, images):
    """Same sub-type, severity, seed and parameter: the pixels differ from the base's, and the
    result is deterministic (uint8 [H, W, 3])."""
    img = images[0]
    out = apply(name, img, 3, seed=2, impl=impl)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, apply(name, img, 3, seed=2, impl=impl))
    assert not np.array_equal(out, apply(name, img, 3, seed=2))


def test_bands_tile_the_listed_range_without_overlap():
    params = info("blur.motion").params  # 5, 9, 13, 17, 20
    assert parameter(params, 3, None) == 13
    assert parameter(params, 1, 0.0) == 5 and parameter(params, 5, 1.0) == 20  # the official ends
    assert parameter(params, 2, 1.0) == parameter(params, 3, 0.0) == 11  # adjacent bands meet
    glass = info("blur.glass").params
    assert parameter(glass, 5, 1.0) == glass[-1] and parameter(glass, 1, 0.0) == glass[0]
    for r in list_distortions():
        for u in (0.0, 0.3, 1.0):
            values = [parameter(r.params, s, u) for s in range(1, 6)]
            first = [v[0] if isinstance(v, tuple) else v for v in values]
            step = np.sign(first[-1] - first[0])
            assert all(step * (b - a) > 0 for a, b in zip(first, first[1:])), (r.name, u, values)
    with pytest.raises(ValueError, match="strength"):
        parameter(params, 2, 1.5)


def test_the_sampler_draws_implementations_and_strengths(images):
    rng = np.random.default_rng(0)
    draws = [d for _ in range(3000) for d in sample_distortions(rng, 1)]
    seen: dict[str, set[str]] = {}
    for d in draws:
        name = f"{d['category']}.{d['subtype']}"
        assert d["impl"] in info(name).implementations and 0 <= d["strength"] <= 1
        seen.setdefault(name, set()).add(d["impl"])
    assert all(seen[n] == set(info(n).implementations) for n in ("blur.gaussian", "compression.jpeg", "pixelate.block"))
    strengths = np.array([d["strength"] for d in draws])
    assert strengths.min() < 0.05 and strengths.max() > 0.95  # the whole band, not only its listed value


def test_records_without_implementation_fields_render_as_before(images):
    """Distortion records written before implementations existed get the base at the listed value."""
    old = [{"category": "blur", "subtype": "gaussian", "severity": 2}]
    assert np.array_equal(apply_chain(images[0], old, 5), apply("blur.gaussian", images[0], 2, 5))
    with pytest.raises(KeyError, match="valid: base, pil, cv"):
        apply("blur.gaussian", images[0], 2, impl="opencv")


def test_base_mode_draws_the_official_function_and_value_only(tmp_path):
    import json

    from depictqa.synth import build_dataset
    from depictqa.synth.distortions import sample_distortions

    rng = np.random.default_rng(0)
    drawn = [d for _ in range(300) for d in sample_distortions(rng, 2, implementations="base")]
    assert drawn and all("impl" not in d and "strength" not in d for d in drawn)
    with pytest.raises(ValueError, match="implementations must be one of"):
        sample_distortions(rng, 1, implementations="pil")
    manifest = build_dataset(tmp_path / "base", samples=30, size=32, implementations="base")
    assert manifest["implementations"] == "base"
    from depictqa.data.shards import iter_shard_samples

    metas = [s.meta for p in sorted((tmp_path / "base").glob("*/*.tar")) for s in iter_shard_samples(str(p))]
    records = [d for m in metas for key in ("distortions", "distortions_A", "distortions_B") for d in m.get(key) or []]
    assert records and all("impl" not in d for d in records)
    mixed = build_dataset(tmp_path / "all", samples=30, size=32)
    assert mixed["implementations"] == json.loads((tmp_path / "all/manifest.json").read_text())["implementations"] == "all"
    metas = [s.meta for p in sorted((tmp_path / "all").glob("*/*.tar")) for s in iter_shard_samples(str(p))]
    records = [d for m in metas for key in ("distortions", "distortions_A", "distortions_B") for d in m.get(key) or []]
    assert records and all("impl" in d and 0 <= d["strength"] <= 1 for d in records)


@pytest.mark.parametrize("name, impl", [(n, i) for n, impls in ALTERNATIVES.items() for i in impls])
def test_a_flat_image_renders_or_is_refused_without_numeric_warnings(name, impl):
    """Flat crops happen (sky, a wall): each implementation renders one or refuses it with
    DistortionFailed (the synthesiser then draws another), without numeric warnings."""
    import warnings

    flat = np.full((48, 48, 3), 102, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = apply(name, flat, 3, seed=0, impl=impl)
        except DistortionFailed:
            return
    assert out.shape == flat.shape and out.dtype == np.uint8
