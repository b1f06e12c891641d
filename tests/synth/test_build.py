"""End-to-end: the synth CLI writes readable shards, test metas disjoint from training, a manifest."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depictqa.cli import main
from depictqa.data.shards import iter_shard_samples
from depictqa.synth import answers as A
from depictqa.synth import quality as Q
from depictqa.synth.build import build_dataset
from depictqa.synth.samples import Config, Kind, make_record
from depictqa.synth.sources import TEST_SPLIT, embedded_images, folder_images


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    rc = main(["synth", "--out", str(out), "--samples", "160", "--test-samples", "28", "--size", "64",
               "--workers", "2", "--seed", "5"])
    assert rc == 0
    return out


def _samples(out: Path):
    urls = sorted(glob.glob(str(out / "*" / "*.tar")))
    assert urls
    return [s for s in iter_shard_samples(urls)]


def test_shards_readable_and_answers_match_meta(built):
    samples = _samples(built)
    manifest = json.loads((built / "manifest.json").read_text())
    assert len(samples) == manifest["samples"] == 160
    for s in samples:
        q, a = s.conversations[0]["value"], s.conversations[1]["value"]
        m = s.meta
        assert "<Img" not in q
        if s.style == "single":
            assert q.endswith(" Answer the question using a single word or phrase.")
        if s.task == "assess":
            cats = [d["category"] for d in m["distortions"]]
            got = {"single": lambda: Q.parse_label(a), "brief": lambda: Q.parse_phrases(a),
                   "detail": lambda: Q.parse_phrases(a), "level": lambda: cats}[s.style]()
            assert got == cats, (a, m)
            if s.style == "level":
                assert a == m["level"] == Q.level(Q.quality(m["distortions"]))
        elif s.task == "compare":
            assert m["A_better_B"] == (Q.quality(m["distortions_A"]) > Q.quality(m["distortions_B"]))
            assert A.parse_winner(a) == ("A" if m["A_better_B"] else "B")
        assert m["source"]["split"] == "train"


def test_test_metas_disjoint_and_official_format(built):
    train_boxes = {}
    for s in _samples(built):
        train_boxes.setdefault(s.meta["source"]["id"], []).append(s.meta["source"]["box"])
    files = sorted((built / "test").glob("*.json"))
    assert {"quality_single_A_noref_single.json", "quality_single_A_single.json",
            "quality_compare_noref_single.json", "quality_compare_single.json"} <= {f.name for f in files}
    n = 0
    for f in files:
        for e in json.loads(f.read_text()):
            n += 1
            assert {"id", "image_ref", "image_A", "image_B", "query", "answer", "task"} <= set(e)
            assert (built / "test" / e["image_A"]).is_file()
            assert (e["image_ref"] is None) == f.name.startswith(("quality_single_A_noref", "quality_compare_noref"))
            x0, y0, x1, y1 = e["source"]["box"]
            for a0, b0, a1, b1 in train_boxes.get(e["source"]["id"], []):
                assert not (x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1)
    assert n == 28


def test_clean_rate_and_determinism_across_workers(tmp_path):
    cfg = Config(seed=0, size=48, clean_rate=0.3)
    photos = embedded_images()
    kind = Kind("assess", "single", False)
    clean = sum(make_record(i, kind, cfg, "train", photos)["meta"]["distortions"] == [] for i in range(200))
    assert 0.2 < clean / 200 < 0.4
    m1 = build_dataset(tmp_path / "w1", samples=40, size=48, workers=1, seed=9)
    m2 = build_dataset(tmp_path / "w2", samples=40, size=48, workers=2, seed=9)
    assert m1["counts"] == m2["counts"]
    s1, s2 = _samples(tmp_path / "w1"), _samples(tmp_path / "w2")
    assert [(s.key, s.conversations, s.images["a"] if "a" in s.images else s.images["img"]) for s in s1] == \
           [(s.key, s.conversations, s.images["a"] if "a" in s.images else s.images["img"]) for s in s2]


def test_user_images_folder_skips_bad_files(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    images, skipped = folder_images(tmp_path)
    assert [i.id for i in images] == ["user/ok.png"]
    assert len(skipped) == 2 and any("tiny" in s for s in skipped) and any("broken" in s for s in skipped)
    assert 0 < TEST_SPLIT < 1


def test_user_images_that_would_decompress_to_huge_sizes_are_skipped_unread(tmp_path, monkeypatch):
    import depictqa.synth.sources as sources

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(sources, "MAX_PIXELS", 10_000)       # our own limit, checked before decoding
    images, skipped = folder_images(tmp_path)
    assert not images and "too large (160x120 > 10000 pixels" in skipped[0]
    monkeypatch.setattr(sources, "MAX_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000)    # PIL's own bomb check raises in Image.open
    images, skipped = folder_images(tmp_path)
    assert not images and "unreadable (DecompressionBombError)" in skipped[0]


def test_mixes_follow_their_weights_and_unknown_mix_is_refused():
    from collections import Counter

    from depictqa.synth.build import DEMO_MIX, MIX, plan

    n = 20000
    for name, table in (("dq", MIX), ("demo", DEMO_MIX)):
        counts = Counter(kind for _, kind in plan(n, seed=0, mix=name))
        total = sum(w for _, _, w in table)
        for _, kind, weight in table:
            assert abs(counts[kind] / n - weight / total) < 0.01, (name, kind)
    demo = Counter((k.task, k.style) for _, k in plan(n, seed=0, mix="demo"))
    dq = Counter((k.task, k.style) for _, k in plan(n, seed=0, mix="dq"))
    assert demo[("assess", "single")] > 1.5 * dq[("assess", "single")]  # identification-heavy
    with pytest.raises(ValueError, match="unknown mix 'dq2'"):
        plan(10, seed=0, mix="dq2")


def test_train_and_test_crops_have_the_same_sizes_in_their_own_columns():
    from depictqa.synth.sources import CROP_SCALES, crop_box

    rng = np.random.default_rng(0)
    for shape in ((512, 512, 3), (300, 451, 3), (640, 200, 3)):
        cut = int(round(shape[1] * TEST_SPLIT))
        sides = {}
        for split in ("train", "test"):
            boxes = [crop_box(rng, shape, split) for _ in range(400)]
            assert all(b[2] - b[0] == b[3] - b[1] for b in boxes)  # square
            assert all((b[2] <= cut) if split == "train" else (b[0] >= cut) for b in boxes), split
            sides[split] = {b[2] - b[0] for b in boxes}
        # a test crop is downscaled to the synthesis size as much as a training crop is
        assert sides["train"] == sides["test"] and len(sides["test"]) == len(CROP_SCALES), shape
