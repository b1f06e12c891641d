"""Training end to end on CPU: fit a few steps, checkpoints, exact resume, refusal of a changed recipe."""

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from tests.conftest import ROOT, tiny_recipe, write_tiny_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_tiny_shards(out / "brief", n=30, prefix="brief")
    write_tiny_shards(out / "caption", n=10, prefix="cap")
    return out


def recipe_for(shards, out, *extra):
    return tiny_recipe(f"data.sources={{brief: {{shards: '{shards}/brief/*.tar', weight: 3}}, "
                       f"cap: {{shards: '{shards}/caption/*.tar', weight: 1}}}}",
                       f"data.val={{shards: '{shards}/brief/*.tar'}}", "data.val_samples=4",
                       "data.batch_size=4", f"out_dir={out}", "trainer.max_steps=6",
                       "trainer.checkpoint_every_n_steps=3", "trainer.log_every_n_steps=1",
                       "trainer.val_every_n_steps=3", "logger={name: csv}", "optim.lr=3e-3", *extra)


def test_fit_learns_and_writes_checkpoints(shards, tmp_path):
    from depictqa.train import fit

    recipe = recipe_for(shards, tmp_path / "run", "trainer.max_steps=30", "trainer.checkpoint_every_n_steps=15",
                        "data.val_samples=10", "trainer.checkpoint_monitor=val/rating_acc")
    last = fit(recipe)
    assert {p.name for p in last.iterdir()} >= {"recipe.yaml", "trainable.safetensors", "tokenizer", "state"}
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").glob("step-*")) == ["step-0000015", "step-0000030"]
    import csv

    rows = list(csv.DictReader(open(next((tmp_path / "run/logs").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 20 and sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert any(r.get("val/loss") for r in rows)
    # generation-based validation metrics, and the best checkpoint chosen by one of them
    acc = [float(r["val/rating_acc"]) for r in rows if r.get("val/rating_acc")]
    assert acc and all(0.0 <= a <= 1.0 for a in acc)
    assert any(r.get("val/identification_acc") for r in rows)
    import json

    best = json.loads((tmp_path / "run/checkpoints/best/best.json").read_text())
    assert best["val/rating_acc"] == max(acc)


PLUG_INS = ("objectives=[{name: distortion, weight: 1.0}]", "model.conditioners=[{name: relative-stats}]")
ANSWER_HEAD = ("model.llm.output_vocab=answers",)


@pytest.mark.parametrize("extra", [(), PLUG_INS, ANSWER_HEAD], ids=["plain", "objective+conditioner", "answer-head"])
def test_resume_continues_exactly(shards, tmp_path, extra):
    from depictqa.train import fit

    straight = fit(recipe_for(shards, tmp_path / "a", *extra))
    # The same run stopped after 3 steps (its step-3 checkpoint written), then resumed to 6.
    fit(recipe_for(shards, tmp_path / "b", *extra), callbacks=[_StopAt(3)])
    assert (tmp_path / "b/checkpoints/step-0000003").is_dir()
    resumed = fit(recipe_for(shards, tmp_path / "b", *extra), resume=tmp_path / "b/checkpoints/step-0000003")
    a = load_file(str(straight / "trainable.safetensors"))
    b = load_file(str(resumed / "trainable.safetensors"))
    assert a.keys() == b.keys()
    if extra == ANSWER_HEAD:  # the head's token ids travel with its rows, and the resumed run kept them
        assert a["llm.model.lm_head.ids"].numel() == a["llm.model.lm_head.weight"].shape[0] < 100
    if extra == PLUG_INS:  # the objective's weights are training state: under state/, resumed like the rest
        assert any(k.startswith("conditioners.") for k in a) and not any(k.startswith("objectives") for k in a)
        a.update({f"objective.{k}": v for k, v in load_file(str(straight / "state/objectives.safetensors")).items()})
        b.update({f"objective.{k}": v for k, v in load_file(str(resumed / "state/objectives.safetensors")).items()})
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    # the optimiser's moments and step counts too (not only the weights they produced)
    opt_a, opt_b = (load_file(str(d / "state/optimizer.safetensors")) for d in (straight, resumed))
    assert opt_a.keys() == opt_b.keys() and any(k.endswith(".exp_avg_sq") for k in opt_a)
    for k in opt_a:
        if k != "rng.torch":
            torch.testing.assert_close(opt_a[k], opt_b[k], rtol=1e-5, atol=1e-7, msg=k)
    start = load_file(str(tmp_path / "b/checkpoints/step-0000003/trainable.safetensors"))
    assert any(not torch.allclose(start[k], b[k]) for k in b)  # the resumed steps did train


class _StopAt:
    """A callback that kills the run after n optimiser steps (as a crash would, minus the crash)."""

    def __new__(cls, n):
        import lightning as L

        class Stop(L.Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step >= n:
                    trainer.should_stop = True

        return Stop()


def test_resume_with_a_different_recipe_is_refused(shards, tmp_path):
    from depictqa.config import RecipeError
    from depictqa.train import fit

    last = fit(recipe_for(shards, tmp_path / "c", "trainer.max_steps=2"))
    with pytest.raises(RecipeError, match=r"optim.lr: 0.003 -> 0.01"):
        fit(recipe_for(shards, tmp_path / "c", "optim.lr=0.01"), resume=last)


def test_fit_cli_bad_recipe_exits_2():
    proc = subprocess.run([sys.executable, "-m", "depictqa.cli", "fit", str(ROOT / "recipes/tiny.yaml"),
                           "model.projector.name=nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "valid: abstractor, linear, mlp, official-abstractor" in proc.stderr


def test_skipped_samples_are_counted_across_workers_and_logged(tmp_path, caplog):
    import csv
    import logging
    import re

    from depictqa.data.schema import Sample
    from depictqa.data.shards import write_shards
    from depictqa.train import fit

    good = write_tiny_shards(tmp_path / "good", n=20, prefix="good", per_shard=5)
    conv = [{"from": "human", "value": "What distortion does the image have?"}, {"from": "gpt", "value": "Noise"}]
    bad = [Sample(f"bad{i}", "assess", False, conv, style="single", images={"a": b"\x89PNG-not-really"})
           for i in range(4)]
    write_shards(bad, tmp_path / "bad", prefix="bad", samples_per_shard=2)
    recipe = tiny_recipe(f"data.sources={{good: {{shards: '{tmp_path}/good/*.tar', weight: 1}}, "
                         f"bad: {{shards: '{tmp_path}/bad/*.tar', weight: 1}}}}",
                         "data.resampled=false", "data.samples_per_epoch=null", "data.num_workers=2",
                         "data.max_skip_rate=0.9", "data.batch_size=4", f"out_dir={tmp_path / 'run'}",
                         "trainer.max_steps=40", "trainer.log_every_n_steps=1", "logger={name: csv}")
    with caplog.at_level(logging.INFO):
        fit(recipe)
    rows = [r for r in csv.DictReader(open(next((tmp_path / "run/logs").rglob("metrics.csv")))) if r.get("data/skipped")]
    # Once both workers have read their shards in full, every corrupt sample is counted once, by reason.
    assert max(float(r["data/skipped"]) for r in rows) == 4
    assert max(float(r["data/skipped_bad_image"]) for r in rows) == 4
    # The end-of-training summary (the run stops at max_steps, mid-epoch: up to 4 skipped so far).
    assert re.search(r"data: skipped [1-4] of \d+ samples read: \{'bad_image': [1-4]\}", caplog.text)


def test_compiled_llm_blocks_train_like_eager_ones(shards, tmp_path):
    from depictqa.train import fit

    eager = fit(recipe_for(shards, tmp_path / "eager", "data.val=null", "trainer.max_steps=3"))
    # aot_eager traces and runs the same graphs inductor would compile, without a C++ toolchain.
    compiled = fit(recipe_for(shards, tmp_path / "compiled", "data.val=null", "trainer.max_steps=3",
                              "trainer.compile=true", "trainer.compile_backend=aot_eager"))
    a = load_file(str(eager / "trainable.safetensors"))
    b = load_file(str(compiled / "trainable.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_compile_wraps_every_decoder_layer(recipe):
    from depictqa.build import build_model
    from depictqa.strategies import compile_llm_blocks
    from tests.conftest import TEXTS

    model = build_model(recipe, texts=TEXTS)
    n = compile_llm_blocks(model, backend="eager")
    layers = model.llm._base().model.layers
    assert n == len(layers) == recipe.model.llm.config.num_hidden_layers
    assert all(layer._compiled_call_impl is not None for layer in layers)


def test_lr_scale_gives_each_component_its_own_learning_rate():
    from depictqa.build import build_model
    from depictqa.task import DepictQATask
    from tests.conftest import TEXTS

    scaled = tiny_recipe("optim.lr=1e-3", "optim.lr_scale.projector=4.0")
    model = build_model(scaled, texts=TEXTS)
    opt = DepictQATask(model, scaled).configure_optimizers()["optimizer"]
    # the scheduler scales every group by the same warm-up factor; initial_lr is the peak
    lr_of = {id(p): g["initial_lr"] for g in opt.param_groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert lr_of[id(p)] == pytest.approx(4e-3 if name.startswith("projector.") else 1e-3), name
            assert decay_of[id(p)] == (scaled.optim.weight_decay if p.ndim >= 2 else 0.0), name
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in model.parameters())

    with pytest.raises(ValueError, match="optim.lr_scale.projecter"):  # the recipe check refuses it
        tiny_recipe("optim.lr_scale.projecter=4.0")
    typo = OmegaConf.merge(scaled, {"optim": {"lr_scale": {"projecter": 4.0}}})  # unchecked: the task refuses too
    with pytest.raises(ValueError, match="projecter"):
        DepictQATask(build_model(typo, texts=TEXTS), typo).configure_optimizers()

