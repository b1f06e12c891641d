"""Official meta JSON -> shards -> samples, for all seven official task types, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depictqa.cli import main
from depictqa.data.convert import convert_meta, guess_style
from depictqa.data.images import ImageConfig
from depictqa.data.mixer import MixedSampleStream, SourceSpec
from depictqa.data.shards import iter_shard_samples

SINGLE_Q = "What distortion is in the image? Answer the question using a single word or phrase."
LONG = " ".join(["word"] * 30)


def write_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name, size in [("ref.png", (40, 30)), ("A.png", (40, 30)), ("B.png", (40, 30)), ("cap.png", (20, 50))]:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / name)


def record(rid: str, task_type: str, question: str = "Evaluate the image.", answer: str = "Noise.",
           **extra: object) -> dict[str, object]:
    images = {"image_ref": None, "image_A": None, "image_B": None}
    if task_type == "description":
        images["image"] = "cap.png"
    else:
        images["image_A"], images["image_B"] = "A.png", "B.png"
        if "noref" not in task_type:
            images["image_ref"] = "ref.png"
    return {"id": rid, "task_type": task_type, **images,
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}], **extra}


def test_round_trip_all_official_tasks(tmp_path: Path) -> None:
    write_images(tmp_path)
    records = [
        record("r.0", "quality_single_A", SINGLE_Q, "Noise", distortion_class="noise", severity=3),
        record("r.1", "quality_single_B", answer=LONG, distortion_name="gaussian_blur"),
        record("r.2", "quality_single_A_noref"),
        record("r.3", "quality_single_B_noref"),
        record("r.4", "quality_compare", A_better_B=True, distortions_A=["noise"]),
        record("r.5", "quality_compare_noref", SINGLE_Q, "Image B"),
        record("r.6", "description", "Describe the image.", LONG),
    ]
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(records))
    summary = convert_meta([meta], tmp_path, tmp_path / "out", samples_per_shard=3, progress=False)
    assert summary["written"] == 7 and summary["skipped"] == {} and len(summary["shards"]) == 3

    samples = list(iter_shard_samples(summary["shards"]))
    by_id = {s.meta["id"]: s for s in samples}
    expected = {"r.0": ("assess", True, "single"), "r.1": ("assess", True, "detail"),
                "r.2": ("assess", False, "brief"), "r.3": ("assess", False, "brief"),
                "r.4": ("compare", True, "brief"), "r.5": ("compare", False, "single"),
                "r.6": ("caption", False, "detail")}
    raw = {n: (tmp_path / n).read_bytes() for n in ("ref.png", "A.png", "B.png", "cap.png")}
    for rid, (task, reference, style) in expected.items():
        s = by_id[rid]
        assert (s.task, s.reference, s.style) == (task, reference, style), rid
        assert "." not in s.key and set(s.images) == set(s.image_order), rid
    assert by_id["r.1"].images["a"] == raw["B.png"]  # quality_single_B: its image is image_B
    assert by_id["r.0"].images["a"] == raw["A.png"] and by_id["r.0"].images["ref"] == raw["ref.png"]
    assert by_id["r.6"].images["img"] == raw["cap.png"]
    assert by_id["r.0"].meta["distortion_class"] == "noise" and by_id["r.0"].meta["severity"] == 3
    assert by_id["r.4"].meta["A_better_B"] is True and by_id["r.4"].meta["official_task"] == "quality_compare"

    stream = MixedSampleStream([SourceSpec("all", summary["shards"])], ImageConfig(), 14, train=False)
    prepared = list(stream)
    assert len(prepared) == 7
    for s in prepared:
        shapes = {tuple(t.shape) for t in s.images.values()}
        assert len(shapes) == 1 and tuple(s.images) == s.image_order


def test_guess_style() -> None:
    turn = lambda q, a: [{"from": "human", "value": q}, {"from": "gpt", "value": a}]  # noqa: E731
    assert guess_style(turn(SINGLE_Q, "Blur and noise")) == "single"
    assert guess_style(turn("Why?", " ".join(["w"] * 21))) == "brief"
    assert guess_style(turn("Why?", " ".join(["w"] * 22))) == "detail"


def test_missing_images_and_unknown_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_images(tmp_path)
    records = [record("ok.1", "quality_compare"), record("gone.7", "quality_compare", image_ref="nope.png"),
               record("odd.2", "quality_triple")]
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(records))
    summary = convert_meta([meta], tmp_path, tmp_path / "lenient", progress=False)
    assert summary["written"] == 1 and summary["skipped"] == {"missing_image": 1, "unknown_task": 1}

    code = main(["convert", "--meta", str(meta), "--images", str(tmp_path), "--out", str(tmp_path / "s"),
                 "--strict", "--quiet"])
    assert code == 2 and "gone.7" in capsys.readouterr().err
    code = main(["convert", "--meta", str(meta), "--images", str(tmp_path), "--out", str(tmp_path / "l"),
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "wrote 1 samples" in out and "missing_image: 1" in out
