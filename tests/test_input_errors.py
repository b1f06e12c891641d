"""Bad input fails early with one line naming the culprit, exit code 2, nothing written lost (issue 23)."""

from __future__ import annotations

import json
import math
import os
import re
import typing
from pathlib import Path

import pytest
import torch
from PIL import Image

from depictqa.cli import main
from depictqa.config import RecipeError, load_recipe
from tests.conftest import TINY_OVERRIDES, random_image, tiny_recipe, write_tiny_shards


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# D3 -- a batch of no samples made fit hang


@pytest.mark.parametrize("size", [0, -1])
def test_batch_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(RecipeError, match=rf"data.batch_size must be >= 1, got {size}"):
        tiny_recipe(f"data.batch_size={size}")


# D8 -- recipe values checked when the recipe is read, not minutes into fit


@pytest.mark.parametrize("override,message", [
    ("out_dir=${missing.key}", r"out_dir: Interpolation key 'missing.key' not found"),
    ("out_dir=${oc.env:DEPICTQA_TEST_UNSET}", r"out_dir: .*DEPICTQA_TEST_UNSET"),
    ("trainer.max_steps=${oc.decode:'[1,'}", r"trainer.max_steps: "),
])
def test_interpolation_errors_name_the_key(override: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPICTQA_TEST_UNSET", raising=False)
    with pytest.raises(RecipeError, match=message):
        tiny_recipe(override)


@pytest.mark.parametrize("override,message", [
    ("optim.lr=0", r"optim.lr must be > 0"),
    ("optim.lr=-1e-4", r"optim.lr must be > 0"),
    ("trainer.max_steps=0", r"trainer.max_steps must be >= 1"),
    ("trainer.max_steps=-1", r"trainer.max_steps must be >= 1"),
    ("data.image.short_side=0", r"data.image.short_side must be >= 1"),
    ("data.image.max_long_side=0", r"data.image.max_long_side must be >= 1"),
    ("data.image.min_size=0", r"data.image.min_size must be >= 1"),
    ("data.image.short_side=64", r"data.image.short_side \(64\) must be <= data.image.max_long_side \(48\)"),
    ("data.val_samples=0", r"data.val_samples must be >= 1"),
    ("data.num_workers=-1", r"data.num_workers must be >= 0"),
    ("trainer.accumulate_grad_batches=0", r"trainer.accumulate_grad_batches must be >= 1"),
    ("trainer.checkpoint_every_n_steps=-1", r"trainer.checkpoint_every_n_steps must be >= 0"),
    ("trainer.precision=17", r"trainer.precision: '17' is not one of .*bf16-mixed"),
    ("trainer.accelerator=quantum", r"trainer.accelerator: 'quantum' is not one of auto, cpu, cuda, gpu, mps"),
    ("optim.lr_scale.foo=2", r"optim.lr_scale.foo: .*valid: encoder, projector, llm, conditioners, objectives"),
    ("logger.foo=1", r"logger.foo: the none logger takes no 'foo'"),
    ("logger={name: csv, project: x}", r"logger.project: the csv logger takes no 'project'; valid: "
                                       r"flush_logs_every_n_steps, prefix, save_dir, version"),
])
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        tiny_recipe(override)


def test_good_values_still_pass() -> None:
    r = tiny_recipe("trainer.precision=bf16-mixed", "optim.lr_scale.projector=2", "data.num_workers=0",
                    "trainer.checkpoint_every_n_steps=0", "logger={name: wandb, project: p, entity: e, offline: true}")
    assert r.trainer.precision == "bf16-mixed" and r.logger.entity == "e"


def test_precisions_are_lightnings() -> None:
    from lightning.fabric.connector import _PRECISION_INPUT

    from depictqa.recipe_checks import PRECISIONS

    def flat(tp: typing.Any) -> set[str]:
        args = typing.get_args(tp)
        return {str(a) for t in args for a in (flat(t) if typing.get_args(t) else [t])}

    assert set(PRECISIONS) == flat(_PRECISION_INPUT)


@pytest.mark.parametrize("accelerator", ["tpu", "cuda", "gpu"])
def test_unavailable_accelerator_is_refused(accelerator: str) -> None:
    if accelerator != "tpu" and torch.cuda.is_available():
        pytest.skip("this machine has the device")
    with pytest.raises(RecipeError, match=rf"trainer.accelerator: '{accelerator}' is not available on this machine"):
        tiny_recipe(f"trainer.accelerator={accelerator}")
    # a recipe read to build a model (elsewhere) skips what depends on this machine
    assert load_recipe(overrides=[*TINY_OVERRIDES, f"trainer.accelerator={accelerator}"],
                       check_local=False).trainer.accelerator == accelerator


def test_shard_patterns_must_match_files(tmp_path: Path) -> None:
    write_tiny_shards(tmp_path, n=4, prefix="s", per_shard=2)  # s-000000.tar, s-000001.tar
    ok = tiny_recipe(f"data.sources.a.shards='{tmp_path}/s-{{000000..000001}}.tar'",
                     f"data.sources.b.shards='{tmp_path}/*.tar'", "data.sources.c.shards='pipe:cat x.tar'",
                     "data.sources.d.shards='https://example.org/d-{000..009}.tar'")
    assert set(ok.data.sources) == {"a", "b", "c", "d"}
    with pytest.raises(RecipeError, match=rf"data.sources.a.shards: {tmp_path}/s-000002.tar does not exist "
                                          rf"\(2 of the 4 shards"):
        tiny_recipe(f"data.sources.a.shards='{tmp_path}/s-{{000000..000003}}.tar'")
    with pytest.raises(RecipeError, match=r"data.sources.a.shards: no shard matches '.*/nowhere/\*.tar'"):
        tiny_recipe(f"data.sources.a.shards='{tmp_path}/nowhere/*.tar'")
    with pytest.raises(RecipeError, match=rf"data.val.shards: {tmp_path}/val.tar does not exist"):
        tiny_recipe(f"data.val={{shards: '{tmp_path}/val.tar'}}")
    with pytest.raises(RecipeError, match=r"data.sources.a.shards: .*s-000009.tar does not exist"):
        tiny_recipe(f"data.sources.a.shards=[{tmp_path}/s-000000.tar, {tmp_path}/s-000009.tar]")


@pytest.mark.parametrize("override,key", [
    ("data.batch_size=0", "data.batch_size"),
    ("out_dir=${oc.env:DEPICTQA_TEST_UNSET}", "out_dir"),
    ("trainer.accelerator=tpu", "trainer.accelerator"),
    ("data.sources.a.shards=/nonexistent/depictqa/shard-{000..009}.tar", "data.sources.a.shards"),
])
def test_validate_command_exits_2_with_one_line(override: str, key: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPICTQA_TEST_UNSET", raising=False)
    code = main(["validate", "--no-build", *TINY_OVERRIDES, override])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and err.startswith(f"depictqa: error: {key}")


# D12 -- too many bad samples: a message and exit 2, not a traceback


def test_fit_exits_2_when_too_many_samples_are_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depictqa.data.schema import Sample
    from depictqa.data.shards import write_shards

    write_tiny_shards(tmp_path / "good", n=8, prefix="good", per_shard=4)
    conv = [{"from": "human", "value": "What distortion does the image have?"}, {"from": "gpt", "value": "Noise"}]
    bad = [Sample(f"bad{i}", "assess", False, conv, style="single", images={"a": b"\x89PNG-not-really"})
           for i in range(4)]
    write_shards(bad, tmp_path / "bad", prefix="bad", samples_per_shard=4)
    code = main(["fit", *TINY_OVERRIDES,
                 f"data.sources={{good: {{shards: '{tmp_path}/good/*.tar'}}, bad: {{shards: '{tmp_path}/bad/*.tar'}}}}",
                 "data.resampled=false", "data.samples_per_epoch=null", "data.num_workers=1",
                 "data.max_skip_rate=0.1", "data.batch_size=2", f"out_dir={tmp_path / 'run'}",
                 "trainer.max_steps=50"])
    line = error_line(capsys)
    assert code == 2
    assert line.startswith("depictqa: error: 4 of 12 samples skipped") and "max_skip_rate=0.1" in line


# convert: tiny official meta + images, as tests/data/test_convert.py builds them


def official_set(root: Path, records: list[dict]) -> tuple[Path, Path]:
    """``root/images/{A,B}.png`` and ``root/meta.json`` holding ``records`` -> (meta, images)."""
    images = root / "images"
    images.mkdir(parents=True)
    for i, name in enumerate(("A.png", "B.png")):
        Image.fromarray(random_image(i)).save(images / name)
    meta = root / "meta.json"
    meta.write_text(json.dumps(records))
    return meta, images


def compare(rid: str, a: object = "A.png", b: object = "B.png", conversations: object = None) -> dict:
    conv = [{"from": "human", "value": "Which image is better?"}, {"from": "gpt", "value": "Image A"}]
    return {"id": rid, "task_type": "quality_compare_noref", "image_ref": None, "image_A": a, "image_B": b,
            "conversations": conv if conversations is None else conversations}


def shard_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("*.tar")))


# D4 -- image paths must stay inside --images


def test_convert_refuses_image_paths_outside_the_images_folder(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-BYTES")
    meta, images = official_set(tmp_path, [compare("ok"), compare("up", a="../secret.txt"),
                                           compare("abs", b=str(secret)), compare("passwd", a="/etc/passwd"),
                                           compare("link", a="link.png"), compare("deep", b="sub/../../secret.txt")])
    os.symlink(secret, images / "link.png")
    code = main(["convert", "--meta", str(meta), "--images", str(images), "--out", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "wrote 1 samples" in out and "outside_images: 5" in out
    assert b"TOP-SECRET" not in shard_bytes(tmp_path / "out") and b"root:" not in shard_bytes(tmp_path / "out")

    code = main(["convert", "--meta", str(meta), "--images", str(images), "--out", str(tmp_path / "strict"),
                 "--quiet", "--strict"])
    assert code == 2 and "up: image_A '../secret.txt' is outside the images folder" in error_line(capsys)


# D9 -- malformed conversations are skipped and counted, not a crash


def test_convert_skips_malformed_conversations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depictqa.data.convert import convert_meta
    from depictqa.data.shards import iter_shard_samples

    bad = [compare("int", conversations=[{"from": "human", "value": 3}, {"from": "gpt", "value": "Image A"}]),
           compare("strs", conversations=["Which image is better?", "Image A"]),
           compare("lists", conversations=[["human", "Which?"], ["gpt", "Image A"]]),
           compare("none", conversations=[{"from": "human", "value": None}, {"from": "gpt", "value": "x"}]),
           {**compare("task"), "task_type": ["quality_compare"]}]
    meta, images = official_set(tmp_path, [compare("ok"), *bad])
    summary = convert_meta([meta], images, tmp_path / "out", progress=False)
    assert summary["written"] == 1 and summary["skipped"] == {"bad_record": 4, "unknown_task": 1}
    assert any("strs: conversations[0]" in e for e in summary["errors"])
    assert [s.meta["id"] for s in iter_shard_samples(summary["shards"])] == ["ok"]

    code = main(["convert", "--meta", str(meta), "--images", str(images), "--out", str(tmp_path / "cli"), "--quiet"])
    assert code == 0 and "bad_record: 4" in capsys.readouterr().out


# D14 -- an --out that holds shards is refused; --overwrite replaces only them


def test_convert_refuses_a_folder_with_shards_unless_overwrite(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    meta, images = official_set(tmp_path, [compare(f"r{i}") for i in range(3)])
    out = tmp_path / "out"
    args = ["convert", "--meta", str(meta), "--images", str(images), "--out", str(out), "--quiet"]
    assert main([*args, "--samples-per-shard", "1"]) == 0
    capsys.readouterr()
    (out / "notes.txt").write_text("keep me")
    (out / "val-000000.tar").write_bytes(b"another prefix")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["notes.txt", "train-000000.tar", "train-000001.tar", "train-000002.tar",
                              "val-000000.tar"]

    one = tmp_path / "one.json"
    one.write_text(json.dumps([compare("new")]))
    code = main(["convert", "--meta", str(one), "--images", str(images), "--out", str(out), "--quiet"])
    line = error_line(capsys)
    assert code == 2 and str(out) in line and "choose an empty folder or pass --overwrite" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched

    code = main(["convert", "--meta", str(one), "--images", str(images), "--out", str(out), "--quiet", "--overwrite"])
    assert code == 0 and "wrote 1 samples to 1 shard(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train-000000.tar", "val-000000.tar"]
    assert (out / "notes.txt").read_text() == "keep me" and (out / "val-000000.tar").read_bytes() == b"another prefix"


# D15 -- evaluate: confidences outside [0, 1] and repeated ids


def write_eval_files(tmp_path: Path, preds: list[dict], gt: list[dict] | None = None) -> tuple[Path, Path]:
    gt = gt if gt is not None else [
        {"id": i, "task": "quality_single_A_noref", "image_A": f"{i}.png", "query": "What distortion?",
         "answer": "Noise", "style": "single", "distortions": [{"category": "noise"}]} for i in ("a", "b", "c")]
    pred_path, gt_path = tmp_path / "pred.json", tmp_path / "gt.json"
    pred_path.write_text(json.dumps(preds))
    gt_path.write_text(json.dumps(gt))
    return pred_path, gt_path


@pytest.mark.parametrize("preds,culprit", [
    ([{"id": "a", "text": "Noise", "confidence": 0.9}, {"id": "b", "text": "Noise", "confidence": 1.5}],
     r"record 1 \(b\) 'confidence' is 1.5, outside \[0, 1\]"),
    ([{"id": "a", "text": "Noise", "confidence": -0.2}], r"record 0 \(a\) 'confidence' is -0.2, outside"),
    ([{"id": "a", "text": "Noise", "confidence": math.nan}], r"record 0 \(a\) 'confidence' is nan, outside"),
    ([{"id": "a", "text": "Noise"}, {"id": "c", "text": "Blur"}, {"id": "c", "text": "Noise"}],
     r"id 'c' is repeated \(records 1 and 2\)"),
])
def test_evaluate_refuses_bad_predictions(preds: list[dict], culprit: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = write_eval_files(tmp_path, preds)
    code = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--metric", "identification", "confidence"])
    line = error_line(capsys)
    assert code == 2 and f"prediction file {pred}" in line
    assert re.search(culprit, line), line


def test_evaluate_refuses_repeated_ground_truth_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt_records = [{"id": 7, "task": "quality_single_A_noref", "answer": "Noise", "style": "single"},
                  {"id": "7", "task": "quality_single_A_noref", "answer": "Blur", "style": "single"}]
    pred, gt = write_eval_files(tmp_path, [{"id": "7", "text": "Noise", "confidence": 0.5}], gt_records)
    code = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--metric", "identification"])
    line = error_line(capsys)
    assert code == 2 and f"ground-truth file {gt}" in line and "id '7' is repeated" in line


def test_evaluate_accepts_the_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = [{"id": "a", "text": "Noise", "confidence": 0}, {"id": "b", "text": "Noise", "confidence": 1},
             {"id": "c", "text": "Noise", "confidence": None}]
    pred, gt = write_eval_files(tmp_path, preds)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--metric", "identification", "confidence"]) == 0
    assert "Traceback" not in capsys.readouterr().err
