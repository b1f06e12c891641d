"""MixedSampleStream: proportions, determinism, rank/worker splitting, resampling, bad data."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from data_builders import png_bytes
from depictqa.data.images import ImageConfig
from depictqa.data.mixer import (DataQualityError, MixedSampleStream, SourceSpec, iter_texts,
                                 pick_source)

CFG = ImageConfig()


def keys(stream: Any, workers: int = 0) -> list[str]:
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    return [sample.key for sample in loader]


def test_source_choice_proportions_over_20k_draws() -> None:
    weights = [5.0, 3.0, 2.0]
    rng = random.Random(0)
    counts = Counter(pick_source(rng, weights) for _ in range(20_000))
    for i, w in enumerate(weights):
        assert abs(counts[i] / 20_000 - w / sum(weights)) < 0.02


def test_end_to_end_proportions_and_rerun(make_source: Callable[..., list[str]]) -> None:
    sources = [SourceSpec("big", make_source("big", 40), 3.0), SourceSpec("small", make_source("small", 40), 1.0)]
    stream = MixedSampleStream(sources, CFG, 14, seed=7, resampled=True, samples_per_epoch=600)
    samples = list(stream)
    assert len(samples) == 600
    share = sum(s.meta["source"] == "big" for s in samples) / 600
    assert abs(share - 0.75) < 0.06
    first = [s.key for s in samples]
    rerun = [s.key for s in MixedSampleStream(sources, CFG, 14, seed=7, resampled=True, samples_per_epoch=600)]
    other = [s.key for s in MixedSampleStream(sources, CFG, 14, seed=8, resampled=True, samples_per_epoch=600)]
    assert rerun == first and other != first
    image = samples[0].images["a"]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 70, 70)


def test_exhausted_source_drops_out_and_rerun_is_identical(make_source: Callable[..., list[str]]) -> None:
    sources = [SourceSpec("a", make_source("a", 30), 1.0), SourceSpec("b", make_source("b", 5), 1.0)]
    first = keys(MixedSampleStream(sources, CFG, 14, seed=1, shuffle_buffer=8))
    assert sorted(first) == sorted([f"a_{i:05d}" for i in range(30)] + [f"b_{i:05d}" for i in range(5)])
    assert keys(MixedSampleStream(sources, CFG, 14, seed=1, shuffle_buffer=8)) == first
    stream = MixedSampleStream(sources, CFG, 14, seed=1)
    epoch0, epoch1 = keys(stream), keys(stream)  # the epoch advances, the shard order changes
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1


def test_two_ranks_two_workers_disjoint_and_complete(make_source: Callable[..., list[str]]) -> None:
    shards = make_source("s", 64, per_shard=4)  # 16 shards
    seen: list[set[str]] = []
    for rank in range(2):
        stream = MixedSampleStream([SourceSpec("s", shards)], CFG, 14, seed=3, rank=rank, world_size=2)
        got = keys(stream, workers=2)
        assert len(got) == len(set(got))
        seen.append(set(got))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {f"s_{i:05d}" for i in range(64)}


def test_resampled_yields_exactly_samples_per_epoch(make_source: Callable[..., list[str]]) -> None:
    shards = make_source("r", 12, per_shard=4)
    stream = MixedSampleStream([SourceSpec("r", shards)], CFG, 14, resampled=True, samples_per_epoch=37,
                               rank=1, world_size=4)
    assert len(keys(stream)) == 37
    assert len(keys(stream, workers=2)) == 37
    with pytest.raises(ValueError, match="samples_per_epoch"):
        MixedSampleStream([SourceSpec("r", shards)], CFG, 14, resampled=True)


def write_bad_shards(tmp_path: Path, good: int) -> list[str]:
    """Shard 0: good samples plus one corrupt image, one bad json, one schema error.
    Shard 1: three samples, cut off inside the last one's header. Shard 2: cut inside t1's image."""
    record = {"task": "assess", "reference": False,
              "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    paths = [str(tmp_path / f"bad-{i}.tar") for i in range(3)]
    with wds.TarWriter(paths[0]) as sink:
        for i in range(good):
            sink.write({"__key__": f"g{i}", "json": json.dumps(record).encode(), "a.png": png_bytes(seed=i)})
        sink.write({"__key__": "corrupt", "json": json.dumps(record).encode(), "a.png": b"\x89PNG garbage"})
        sink.write({"__key__": "badjson", "json": b"{not json", "a.png": png_bytes()})
        sink.write({"__key__": "noimage", "json": json.dumps(record).encode()})
    buf = io.BytesIO()
    with wds.TarWriter(buf) as sink:
        for i in range(3):
            sink.write({"__key__": f"t{i}", "json": json.dumps(record).encode(), "a.png": png_bytes(64, 64, i)})
    data = buf.getvalue()
    Path(paths[1]).write_bytes(data[: len(data) - 4000])  # cuts t2.json's header
    Path(paths[2]).write_bytes(data[:30_000])  # cuts t1.a.png's data
    return paths


def test_bad_data_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = write_bad_shards(tmp_path, good=5)
    stream = MixedSampleStream([SourceSpec("bad", paths)], CFG, 14, train=False, max_skip_rate=1.0)
    got = [s.key for s in stream]
    assert set(got) == {f"g{i}" for i in range(5)} | {"t0", "t1"}
    assert stream.stats["skipped"] == {"bad_image": 1, "bad_json": 1, "schema": 1, "truncated_tar": 2}
    assert stream.stats["yielded"] == 8
    assert "corrupt" in caplog.text and "bad-1.tar" in caplog.text


def test_too_many_bad_samples_raise(tmp_path: Path) -> None:
    paths = write_bad_shards(tmp_path, good=60)
    stream = MixedSampleStream([SourceSpec("bad", paths)], CFG, 14, train=False, max_skip_rate=0.01)
    with pytest.raises(DataQualityError, match="max_skip_rate"):
        list(stream)


def test_transform_and_texts(make_source: Callable[..., list[str]]) -> None:
    sources = [SourceSpec("c", make_source("c", 6, task="compare", reference=True))]
    stream = MixedSampleStream(sources, ImageConfig(crop=(0.7, 1.0)), 14,
                               transform=lambda s: (s.key, tuple(s.images), s.image_order))
    key, names, order = next(iter(stream))
    assert names == order == ("ref", "a", "b")
    texts = list(iter_texts(sources, limit=2))
    assert texts == ["question c_00000", "answer c_00000", "question c_00001", "answer c_00001"]


def test_repeat_counts_give_the_official_mix_proportions(make_source: Callable[..., list[str]]) -> None:
    """The official mix: brief x1, detail x5, captions x4. Over an epoch every sample of a source
    appears exactly `repeats` times (so the proportions are repeats x size), spread over the epoch
    rather than one source after another, and each pass is in its own order."""
    sources = [SourceSpec("brief", make_source("brief", 60), repeats=1),
               SourceSpec("detail", make_source("detail", 20, 4), repeats=5),
               SourceSpec("cap", make_source("cap", 10), repeats=4)]
    got = keys(MixedSampleStream(sources, CFG, 14, seed=3))
    per_key = Counter(got)
    assert len(got) == 60 + 100 + 40
    assert all(per_key[k] == {"brief": 1, "detail": 5, "cap": 4}[k.split("_")[0]] for k in per_key)
    assert len(per_key) == 90
    first_half = Counter(k.split("_")[0] for k in got[:100])
    assert min(first_half[s] for s in ("brief", "detail", "cap")) >= 5  # interleaved, not in blocks
    detail = [k for k in got if k.startswith("detail")]
    assert detail[:20] != detail[20:40]  # a second pass is reshuffled (shard order)


def test_repeats_and_weights_do_not_mix(make_source: Callable[..., list[str]]) -> None:
    a, b = make_source("a", 10), make_source("b", 10)
    with pytest.raises(ValueError, match="every source or for none"):
        MixedSampleStream([SourceSpec("a", a, repeats=2), SourceSpec("b", b)], CFG, 14)


def test_recipe_repeats_are_validated(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from depictqa.config import RecipeError, load_recipe

    raw = OmegaConf.load("recipes/tiny.yaml")
    raw.data.sources = {"a": {"shards": "a.tar", "repeats": 1}, "b": {"shards": "b.tar", "repeats": 5}}
    OmegaConf.save(raw, tmp_path / "mix.yaml")
    recipe = load_recipe(str(tmp_path / "mix.yaml"), check_local=False)
    assert recipe.data.sources.b.repeats == 5
    for bad, said in ((["data.sources.c.shards=c.tar"], "but not for c"),
                      (["data.sources.b.repeats=0"], "integer >= 1"),
                      (["data.sources.a.weight=3"], "not both")):
        with pytest.raises(RecipeError, match=said):
            load_recipe(str(tmp_path / "mix.yaml"), overrides=bad, check_local=False)
