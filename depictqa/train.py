"""``fit``: recipe -> trained checkpoint, the function behind ``depictqa fit`` and the demo."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from depictqa.config import RESUMABLE_CHANGES, RecipeError, diff, save_recipe

log = logging.getLogger("depictqa")


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


@contextlib.contextmanager
def _without_lightning_ads() -> Iterator[None]:
    """Lightning logs product tips ("Tip: try installing ...") at start-up; they are not ours to show."""
    tips, lightning = _NoTips(), logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning.addFilter(tips)
    try:
        yield
    finally:
        lightning.removeFilter(tips)


def _tokenizer_texts(recipe: DictConfig) -> Iterable[str] | None:
    spec = recipe.model.llm.get("tokenizer")
    if not (OmegaConf.is_dict(spec) and "train" in spec):
        return None
    from depictqa.data.datamodule import source_specs
    from depictqa.data.mixer import iter_texts

    texts = list(iter_texts(source_specs(dict(recipe.data.sources)), recipe.data.tokenizer_samples))
    if not texts:
        raise RecipeError("model.llm.tokenizer.train: the data sources hold no text to train a tokenizer on")
    return texts


def make_logger(recipe: DictConfig, wandb_id: str | None = None) -> Any:
    """The recipe's ``logger`` plus its ``loggers`` (a list, or False for none). ``wandb_id``: the
    W&B run a resumed training continues (unless the recipe names one)."""
    from depictqa.plugins import instantiate

    block = OmegaConf.to_container(recipe.logger, resolve=True)
    name = block.pop("name")
    save_dir = block.pop("save_dir", recipe.out_dir)
    loggers = [instantiate(spec, f"loggers[{i}]") for i, spec in
               enumerate(OmegaConf.to_container(recipe.loggers, resolve=True) or [])]
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        loggers.insert(0, CSVLogger(save_dir=save_dir, name="logs", **block))
    elif name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.insert(0, TensorBoardLogger(save_dir=save_dir, name="tensorboard", **block))
    elif name == "wandb":
        from lightning.pytorch.loggers import WandbLogger  # imports wandb: only when asked for

        if wandb_id and "id" not in block:
            block.update(id=wandb_id, resume="allow")
        logger = WandbLogger(save_dir=save_dir, **block)
        logger.log_hyperparams(OmegaConf.to_container(recipe, resolve=True))
        loggers.insert(0, logger)
    return loggers or False


def make_trainer(recipe: DictConfig, model: torch.nn.Module, callbacks: Sequence[Any] = (),
                 elapsed_seconds: float = 0.0, wandb_id: str | None = None) -> Any:
    """The Trainer a recipe describes; ``elapsed_seconds``: training time a resumed run already
    spent of ``trainer.max_minutes``; ``wandb_id``: the W&B run to continue."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    from depictqa.plugins import instantiate

    from depictqa.callbacks import DepictQACheckpoint, EpochSeeder
    from depictqa.strategies import make_strategy, precision_for

    t = recipe.trainer
    ckpt = DepictQACheckpoint(Path(recipe.out_dir) / "checkpoints", every_n_steps=t.checkpoint_every_n_steps,
                              monitor=t.checkpoint_monitor, mode=t.checkpoint_mode)
    has_val = bool(recipe.data.val)
    logger = make_logger(recipe, wandb_id)
    user = [instantiate(spec, f"trainer.callbacks[{i}]")
            for i, spec in enumerate(OmegaConf.to_container(t.callbacks, resolve=True) or [])]
    if t.lr_monitor and logger:  # under max_minutes the schedule follows the clock: worth seeing
        user.append(LearningRateMonitor(logging_interval="step"))
    profiler = OmegaConf.to_container(t.profiler, resolve=True) if OmegaConf.is_config(t.profiler) else t.profiler
    if isinstance(profiler, dict):
        profiler = instantiate(profiler, "trainer.profiler")
    return L.Trainer(
        max_steps=t.max_steps, max_epochs=t.max_epochs,
        max_time={"seconds": max(1, int(60 * t.max_minutes - elapsed_seconds))} if t.max_minutes else None,
        accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=make_strategy(recipe, model), precision=precision_for(recipe),
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        gradient_clip_val=recipe.optim.grad_clip if recipe.trainer.strategy not in ("fsdp", "fsdp2") else None,
        val_check_interval=t.val_every_n_steps if has_val and t.val_every_n_steps else None,
        check_val_every_n_epoch=None if has_val and t.val_every_n_steps else 1,
        limit_val_batches=None if has_val else 0, num_sanity_val_steps=0,
        logger=logger, callbacks=[ckpt, EpochSeeder(), *user, *callbacks], profiler=profiler,
        enable_checkpointing=False, default_root_dir=recipe.out_dir, use_distributed_sampler=False)


def fit(recipe: DictConfig, resume: str | Path | None = None, callbacks: Sequence[Any] = (),
        overwrite: bool = False, init: str | Path | None = None) -> Path:
    """Train; returns the final checkpoint directory (``out_dir/checkpoints/last``).

    ``init``: start from the weights of a checkpoint folder (a released model imported with
    ``depictqa import-official``, or any depictqa checkpoint of the same architecture) with a fresh
    optimiser and step count — fine-tuning, not a resume.

    An ``out_dir`` that already holds another run's checkpoints is refused unless ``resume`` names
    one of them or ``overwrite`` is set (which deletes them first). A run stopped by SIGTERM (as
    cluster schedulers send before killing) or Ctrl-C saves a checkpoint and exits non-zero."""
    import lightning as L

    from depictqa.build import build_model, restrict_to_answers, sample_encoder
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from depictqa.checkpoint import (TOKENIZER, CheckpointError, check_complete, load_objectives, load_state,
                                     load_trainable, recipe_of)
    from depictqa.data.datamodule import DepictQADataModule
    from depictqa.task import DepictQATask

    _claim_out_dir(Path(recipe.out_dir) / "checkpoints", resume, overwrite)
    resume_state = None
    build_recipe = recipe
    if init is not None:
        if resume is not None:
            raise RecipeError("--init starts a new run from a checkpoint's weights, --resume continues one: give one")
        if not (Path(init) / "trainable.safetensors").is_file():
            raise CheckpointError(f"--init {init}: not a depictqa checkpoint folder (no trainable.safetensors)")
        tok = Path(init) / TOKENIZER
        if tok.is_dir():  # the tokenizer the weights were trained with, not a new one
            build_recipe = OmegaConf.merge(recipe, {"model": {"llm": {"tokenizer": str(tok.resolve())}}})
    if resume is not None:
        check_complete(resume)
        changes = diff(recipe_of(resume), recipe, ignore=RESUMABLE_CHANGES)
        if changes:
            raise RecipeError(f"--resume {resume}: the recipe differs from the run's:\n  " + "\n  ".join(changes))
        resume_state = load_state(resume)
        tok = Path(resume) / TOKENIZER
        if tok.is_dir():
            build_recipe = OmegaConf.merge(recipe, {"model": {"llm": {"tokenizer": str(tok.resolve())}}})
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    texts = _tokenizer_texts(build_recipe)
    model = build_model(build_recipe, texts=texts)
    if resume is not None or init is not None:
        load_trainable(model, Path(resume if resume is not None else init))
    skip = resume_state[1]["global_step"] * recipe.trainer.accumulate_grad_batches if resume_state else 0
    datamodule = DepictQADataModule(recipe, sample_encoder(model), skip_batches=skip)
    if getattr(model.llm, "output_vocab", None) == "answers" and resume is None:
        restrict_to_answers(model, datamodule.answers())  # a resumed run's head came with its checkpoint
    out = Path(recipe.out_dir)
    save_recipe(recipe, out / "recipe.yaml")
    task = DepictQATask(model, recipe, resume_state=resume_state)
    if resume is not None:
        load_objectives(task.objectives, Path(resume))
    if recipe.data.val and recipe.trainer.val_generate:
        from depictqa.eval.validation import GenerationValidator

        task.validators.append(GenerationValidator(keep_answers=recipe.trainer.val_log_answers))
    with warnings.catch_warnings(), _without_lightning_ads():
        # torch's own pytree deprecation, raised from inside Lightning on every batch transfer
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        wandb_id = resume_state[1].get("wandb_run_id") if resume_state else None
        trainer = make_trainer(recipe, model, callbacks, elapsed_seconds=task.elapsed_before, wandb_id=wandb_id)
        try:
            trainer.fit(task, datamodule=datamodule)
            _finish_wandb(trainer)  # a later run in this process (fit, evaluate --wandb) gets its own
        except SIGTERMException:
            # Lightning raises this (a SystemExit, code 0) after our checkpoint callback has saved.
            print(f"depictqa fit: stopped by SIGTERM after step {trainer.global_step}; "
                  f"continue with --resume {out / 'checkpoints' / 'last'}", file=sys.stderr)
            raise SystemExit(128 + signal.SIGTERM) from None
    return out / "checkpoints" / "last"


def _finish_wandb(trainer: Any) -> None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
            logger.experiment.finish()


def _claim_out_dir(checkpoints: Path, resume: str | Path | None, overwrite: bool) -> None:
    """Refuse to write a new run over another run's checkpoints (or delete them, when told to)."""
    import shutil

    existing = sorted(p.name for p in checkpoints.glob("*") if not p.name.startswith(".")) if checkpoints.is_dir() else []
    if not existing:
        return
    if overwrite:
        shutil.rmtree(checkpoints)
        return
    if resume is not None and Path(resume).resolve().parent == checkpoints.resolve():
        return
    raise RecipeError(f"out_dir {checkpoints.parent} already holds a run's checkpoints ({', '.join(existing)}): "
                      f"continue it with --resume {checkpoints / 'last'}, choose another out_dir, "
                      "or pass --overwrite (depictqa fit) / overwrite=True to delete them")
