"""Lightning plug-ins from a recipe: user modules (`imports:`), callbacks, loggers and a profiler in
Lightning's class_path form, the learning-rate monitor, and logger changes on --resume (the W&B
run continues)."""

from __future__ import annotations

import textwrap

import pytest

from depictqa.config import RecipeError
from tests.test_train import recipe_for, shards  # noqa: F401  (the module-scoped shard fixture)

USER_MODULE = '''
import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from depictqa import encoders
from depictqa.encoders.tiny import build_tiny_vit


class Recorder(Callback):
    """Writes what it saw: proof that a recipe-named callback ran inside the fit."""

    def __init__(self, path: str, tag: str = "") -> None:
        self.path, self.tag, self.steps, self.run_ids = Path(path), tag, 0, []

    def on_train_batch_end(self, trainer, *args):
        self.steps += 1
        self.run_ids = [str(lg.version) for lg in trainer.loggers]
        self.path.write_text(json.dumps({"steps": self.steps, "tag": self.tag, "loggers": self.run_ids}))


@encoders.register("user-vit")
def build_user_vit(**kwargs):
    return build_tiny_vit(**kwargs)
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    from depictqa import encoders

    name = f"user_plugins_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    encoders.REGISTRY._entries.pop("user-vit", None)  # other tests iterate the registries


def _recipe(shards, out, module, *extra):  # noqa: F811
    return recipe_for(shards, out, f"imports=[{module}]", "data.val=null", "trainer.max_steps=2",
                      "trainer.checkpoint_every_n_steps=1", *extra)


def test_recipe_callbacks_loggers_profiler_and_user_encoder_all_run(shards, tmp_path, user_module):  # noqa: F811
    import json

    from depictqa.train import fit

    record = tmp_path / "seen.json"
    recipe = _recipe(shards, tmp_path / "run", user_module, "model.encoder.name=user-vit",
                     f"trainer.callbacks=[{{class_path: {user_module}.Recorder, init_args: {{path: '{record}', tag: hi}}}}]",
                     "logger={name: tensorboard}", "trainer.profiler=simple",
                     f"loggers=[{{class_path: lightning.pytorch.loggers.CSVLogger, "
                     f"init_args: {{save_dir: '{tmp_path / 'csv'}', name: extra}}}}]")
    fit(recipe)
    seen = json.loads(record.read_text())
    assert seen["steps"] == 2 and seen["tag"] == "hi" and len(seen["loggers"]) == 2
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    metrics = next((tmp_path / "csv" / "extra").rglob("metrics.csv")).read_text().splitlines()[0]
    assert "lr-" in metrics  # LearningRateMonitor is on by default
    from omegaconf import OmegaConf

    saved = OmegaConf.load(tmp_path / "run" / "checkpoints" / "last" / "recipe.yaml")
    assert saved.model.encoder.name == "user-vit"


@pytest.mark.parametrize("override, said", [
    ("trainer.callbacks=[{class_path: lightning.pytorch.callbacks.NoSuchThing}]", "not an importable class"),
    ("trainer.callbacks=[{class_path: collections.OrderedDict}]", "is not a lightning.pytorch.callbacks"),
    ("trainer.callbacks=[{class_path: lightning.pytorch.callbacks.EarlyStopping, init_args: {bogus: 1}}]",
     "does not take them"),
    ("imports=[no_such_module_anywhere]", "imports[0]: cannot import 'no_such_module_anywhere'"),
    ("trainer.profiler=fastest", "trainer.profiler: 'fastest' is not one of"),
    ("loggers=[{class_path: lightning.pytorch.callbacks.EarlyStopping}]", "is not a lightning.pytorch.loggers"),
])
def test_a_bad_plugin_fails_when_the_recipe_loads(override, said):
    from tests.conftest import tiny_recipe

    with pytest.raises(RecipeError) as err:
        tiny_recipe(override)
    assert said in str(err.value)


def test_resume_may_change_logging_and_continues_the_wandb_run(shards, tmp_path, user_module, monkeypatch):  # noqa: F811
    import json

    from depictqa.train import fit

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    record = tmp_path / "seen.json"
    callback = f"trainer.callbacks=[{{class_path: {user_module}.Recorder, init_args: {{path: '{record}'}}}}]"
    val = [f"data.val={{shards: '{shards}/brief/*.tar'}}", "trainer.val_every_n_steps=2", "trainer.val_log_answers=3"]
    first = _recipe(shards, tmp_path / "run", user_module, callback, "logger={name: wandb, offline: true, project: t}",
                    *val)
    last = fit(first)
    # validation put a table of answers (images, question, answer, truth, confidence) in the run
    tables = list(tmp_path.rglob("answers_*.table.json"))
    assert tables, "no val/answers table in the offline W&B run"
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["key", "images", "question", "answer", "truth", "confidence"]
    assert 1 <= len(table["data"]) <= 3 and all(0 <= row[-1] <= 1 for row in table["data"])
    run_id = json.loads(record.read_text())["loggers"][0]
    assert json.loads((last / "state" / "trainer.json").read_text())["wandb_run_id"] == run_id
    # the logging cadence and logger settings may change on resume; the W&B run is the same one
    again = _recipe(shards, tmp_path / "run", user_module, callback, "trainer.max_steps=3",
                    "trainer.log_every_n_steps=2", "logger={name: wandb, offline: true, project: t, tags: [resumed]}", *val)
    try:
        fit(again, resume=last)
    finally:
        import wandb

        wandb.teardown()  # wandb keeps its settings (WANDB_DIR) per process: later tests need their own
    assert json.loads(record.read_text())["loggers"][0] == run_id
