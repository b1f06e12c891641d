"""Checkpoints survive kills, SIGTERM saves, runs are not overwritten, damaged checkpoints are named,
and a checkpoint never runs code it was not allowed to."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEXTS, tiny_recipe, write_tiny_shards

SCRIPT = """
import sys, lightning as L
from depictqa.train import fit
from tests.conftest import tiny_recipe
shards, out, every, flag = sys.argv[1:5]

class Mark(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 3:
            open(flag, "w").close()

recipe = tiny_recipe(f"data.sources={{brief: {{shards: '{shards}/*.tar'}}}}", "data.batch_size=2", f"out_dir={out}",
                     "trainer.max_steps=100000", f"trainer.checkpoint_every_n_steps={every}", "logger={name: none}")
fit(recipe, callbacks=[Mark()])
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_tiny_shards(out, n=20, prefix="brief")
    return out


def start(shards: Path, out: Path, every: int) -> tuple[subprocess.Popen, Path]:
    script, flag = out.parent / f"{out.name}.py", out.parent / f"{out.name}.started"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, str(script), str(shards), str(out), str(every), str(flag)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not flag.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"training did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    return proc, flag


def test_a_kill_at_any_moment_leaves_only_complete_checkpoints(shards, tmp_path):
    from depictqa.checkpoint import check_complete, load_pretrained

    rng = random.Random(0)
    for round_ in range(4):
        out = tmp_path / f"run{round_}"
        proc, _ = start(shards, out, every=1)  # a checkpoint every step: most of the time is spent writing
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpts = out / "checkpoints"
        visible = [p for p in ckpts.iterdir() if not p.name.startswith(".")]
        assert visible and (ckpts / "last").is_symlink()
        for p in visible:
            check_complete(p)  # raises on a missing or unreadable file
        load_pretrained(ckpts / "last")


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(shards, tmp_path):
    from depictqa.checkpoint import check_complete, load_state

    out = tmp_path / "run"
    proc, _ = start(shards, out, every=100000)  # no periodic checkpoint: only SIGTERM can write one
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM" in err
    last = out / "checkpoints" / "last"
    check_complete(last)
    assert load_state(last)[1]["global_step"] >= 3


def test_a_new_run_into_a_used_out_dir_is_refused_unless_told(shards, tmp_path):
    from depictqa.config import RecipeError
    from depictqa.train import fit

    def recipe(steps):
        return tiny_recipe(f"data.sources={{brief: {{shards: '{shards}/*.tar'}}}}", "data.batch_size=2",
                           f"out_dir={tmp_path / 'run'}", f"trainer.max_steps={steps}", "logger={name: none}")

    first = fit(recipe(2)).resolve()
    with pytest.raises(RecipeError, match="already holds a run's checkpoints.*--resume.*--overwrite"):
        fit(recipe(3))
    assert first.is_dir()  # nothing of the first run was touched
    again = fit(recipe(3), overwrite=True)
    assert again.resolve().name == "step-0000003" and not first.exists()


def test_resume_of_a_damaged_checkpoint_names_the_newest_complete_one(shards, tmp_path):
    from depictqa.checkpoint import CheckpointError
    from depictqa.train import fit

    recipe = tiny_recipe(f"data.sources={{brief: {{shards: '{shards}/*.tar'}}}}", "data.batch_size=2",
                         f"out_dir={tmp_path / 'run'}", "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2",
                         "logger={name: none}")
    fit(recipe)
    ckpts = tmp_path / "run" / "checkpoints"
    damaged = ckpts / "step-0000004"
    (damaged / "state" / "optimizer.safetensors").write_bytes(b"\x00" * 10)  # a torn write
    with pytest.raises(CheckpointError, match=r"step-0000004 cannot be resumed: state/optimizer.safetensors is "
                                              r"damaged.*newest complete checkpoint beside it is .*step-0000002"):
        fit(recipe, resume=damaged)
    (ckpts / "step-0000002" / "trainable.safetensors").unlink()
    with pytest.raises(CheckpointError, match="trainable.safetensors is missing"):
        fit(recipe, resume=ckpts / "step-0000002")


def test_a_checkpoint_asking_for_remote_code_is_refused_unless_trusted(tmp_path, capsys):
    from omegaconf import OmegaConf

    from depictqa.build import build_model
    from depictqa.checkpoint import CheckpointError, load_pretrained, save_pretrained
    from depictqa.cli import main
    from tests.conftest import random_image

    recipe = tiny_recipe()
    save_pretrained(build_model(recipe, texts=TEXTS), recipe, tmp_path / "ckpt")
    saved = OmegaConf.load(tmp_path / "ckpt/recipe.yaml")
    saved.model.llm.trust_remote_code = True
    OmegaConf.save(saved, tmp_path / "ckpt/recipe.yaml")
    with pytest.raises(CheckpointError, match="model.llm.trust_remote_code.*would run Python code.*--trust-remote-code"):
        load_pretrained(tmp_path / "ckpt")
    with pytest.warns(UserWarning, match="running remote code"):
        load_pretrained(tmp_path / "ckpt", trust_remote_code=True)
    folder = tmp_path / "hub_model"  # a model folder whose config maps to its own code
    folder.mkdir()
    (folder / "config.json").write_text('{"auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}')
    from depictqa.checkpoint import _remote_code_files

    assert _remote_code_files([str(folder)]) == [str(folder / "modeling_evil.py")]
    from PIL import Image

    Image.fromarray(random_image(0)).save(tmp_path / "x.png")
    assert main(["assess", str(tmp_path / "x.png"), "--ckpt", str(tmp_path / "ckpt")]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err


def test_recipe_overrides_may_follow_options(monkeypatch, capsys):
    import depictqa.commands.fit as fit_command
    from depictqa.cli import main

    seen = {}
    monkeypatch.setattr(fit_command, "run", lambda args: seen.update(recipe=args.recipe, resume=args.resume) or 0)
    assert main(["fit", "r.yaml", "--resume", "ckpt", "optim.lr=0.1", "seed=2"]) == 0
    assert seen == {"recipe": ["r.yaml", "optim.lr=0.1", "seed=2"], "resume": "ckpt"}
    with pytest.raises(SystemExit):
        main(["fit", "r.yaml", "--resume", "ckpt", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_resumed_run_continues_its_clock(model):
    """With trainer.max_minutes, a resumed run keeps the budget and the LR schedule where they were."""
    from lightning.pytorch.callbacks import Timer

    from depictqa.task import DepictQATask, lr_lambda
    from depictqa.train import make_trainer

    recipe = tiny_recipe("trainer.max_minutes=1", "trainer.max_steps=1000", "optim.warmup_ratio=0",
                         "optim.min_lr_ratio=0", "logger={name: none}")
    fresh = DepictQATask(model, recipe)
    resumed = DepictQATask(model, recipe, resume_state=({}, {"global_step": 10, "elapsed_seconds": 30.0}))
    for task, progress in ((fresh, 0.0), (resumed, 0.5)):
        scheduler = task.configure_optimizers()["lr_scheduler"]["scheduler"]
        want = recipe.optim.lr * lr_lambda(int(progress * 1000), 1000, 0, "cosine", 0.0)
        assert scheduler.get_last_lr()[0] == pytest.approx(want, rel=0.02)
    timer = next(c for c in make_trainer(recipe, model, elapsed_seconds=30.0).callbacks if isinstance(c, Timer))
    assert timer._duration == 30


def test_damaged_files_and_bad_options_are_errors_not_tracebacks(tmp_path, capsys):
    import json

    from omegaconf import OmegaConf

    from depictqa.build import build_model
    from depictqa.checkpoint import CheckpointError, load_pretrained, save_pretrained
    from depictqa.cli import main
    from tests.conftest import random_image

    recipe = tiny_recipe()
    save_pretrained(build_model(recipe, texts=TEXTS), recipe, tmp_path / "ckpt")
    from PIL import Image

    Image.fromarray(random_image(0)).save(tmp_path / "x.png")
    assert main(["assess", str(tmp_path / "x.png"), "--ckpt", str(tmp_path / "ckpt"), "--device", "cuda:0"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps([{"id": "1", "image_A": "x.png"}]))
    for out, says in ((tmp_path, "is a folder"), (tmp_path / "missing" / "a.json", "does not exist")):
        assert main(["infer", "--ckpt", str(tmp_path / "ckpt"), "--meta", str(meta), "--task",
                     "quality_single_A_noref", "--out", str(out)]) == 2
        assert says in capsys.readouterr().err
    weights = tmp_path / "ckpt" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short
    with pytest.raises(CheckpointError, match="trainable.safetensors is damaged"):
        load_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "recipe.yaml").write_text("model: {encoder: [unclosed")
    with pytest.raises(CheckpointError, match="recipe.yaml is not valid YAML"):
        load_pretrained(tmp_path / "ckpt")
    OmegaConf.save(OmegaConf.create({"model": {"projector": {"name": "nope"}}}), tmp_path / "ckpt" / "recipe.yaml")
    with pytest.raises(CheckpointError, match="recipe.yaml does not load: .*unknown projector 'nope'"):
        load_pretrained(tmp_path / "ckpt")


def test_infer_does_not_resume_answers_of_another_checkpoint(tmp_path, capsys, monkeypatch):
    import json

    import torch
    from PIL import Image

    import depictqa.commands.infer as infer_command
    from depictqa.build import build_model
    from depictqa.checkpoint import save_pretrained
    from depictqa.cli import main
    from tests.conftest import random_image

    recipe, ckpt = tiny_recipe(), tmp_path / "ckpt"
    model = build_model(recipe, texts=TEXTS)
    save_pretrained(model, recipe, ckpt)
    for i in range(2):
        Image.fromarray(random_image(i)).save(tmp_path / f"{i}.png")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps([{"id": str(i), "image_A": f"{i}.png", "query": "What is wrong?"} for i in range(2)]))
    args = ["infer", "--ckpt", str(ckpt), "--meta", str(meta), "--task", "quality_single_A_noref",
            "--out", str(tmp_path / "a.json"), "--max-new-tokens", "2", "--batch-size", "1"]
    real = infer_command.answer_entries

    def first_then_killed(assessor, pending, *rest, **kw):
        real(assessor, pending[:1], *rest, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(infer_command, "answer_entries", first_then_killed)
    assert main(args) == 130
    assert len((tmp_path / "a.json.jsonl").read_text().splitlines()) == 2  # the header and one answer
    with torch.no_grad():  # another model is written over the same folder
        for p in model.projector.parameters():
            p.add_(1.0)
    save_pretrained(model, recipe, ckpt)
    monkeypatch.setattr(infer_command, "answer_entries", real)
    assert main(args) == 2
    assert "written by a run with other settings" in capsys.readouterr().err


def test_a_checkpoint_trained_elsewhere_loads_without_its_shards_or_accelerator(tmp_path):
    from depictqa.build import build_model
    from depictqa.checkpoint import load_pretrained, save_pretrained
    from depictqa.config import RecipeError, load_recipe
    from tests.conftest import TINY_OVERRIDES

    elsewhere = [*TINY_OVERRIDES, "data.sources={brief: {shards: '/cluster/data/brief-{000..009}.tar'}}",
                 "trainer.accelerator=gpu"]
    with pytest.raises(RecipeError):
        load_recipe(overrides=elsewhere)  # to train here, the shards and the GPU must exist
    recipe = load_recipe(overrides=elsewhere, check_local=False)
    save_pretrained(build_model(recipe, texts=TEXTS), recipe, tmp_path / "ckpt")
    assert load_pretrained(tmp_path / "ckpt") is not None


def test_deleting_or_replacing_a_checkpoint_never_leaves_a_visible_half(tmp_path, monkeypatch):
    """A kill in the middle of deleting an old checkpoint (or of replacing one) must leave no visible
    folder with files missing: the deletion happens under a hidden name."""
    import shutil

    import depictqa.callbacks as cb

    def killed_midway(path, *args, **kwargs):  # deletes one file, then the process "dies"
        if not Path(path).exists():
            return
        next(p for p in Path(path).rglob("*") if p.is_file()).unlink()
        raise KeyboardInterrupt

    def checkpoint(name):
        folder = tmp_path / name
        (folder / "state").mkdir(parents=True)
        for f in ("recipe.yaml", "trainable.safetensors", "state/trainer.json"):
            (folder / f).write_text("x")
        return folder

    old = checkpoint("step-0000001")
    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        cb.retire(old)
    assert not old.exists() and [p.name for p in tmp_path.iterdir()] == [".step-0000001.old"]
    monkeypatch.undo()
    target, staging = checkpoint("step-0000002"), checkpoint(".step-0000002.tmp")
    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        cb.publish(staging, target)  # the same step saved again (a resume from an earlier step)
    assert sorted(p.name for p in target.rglob("*")) == ["recipe.yaml", "state", "trainable.safetensors",
                                                          "trainer.json"]
