"""Checkpointing in the checkpoint-directory layout (:mod:`depictqa.checkpoint`), with resumable state that needs no pickle.

Lightning's own checkpoints are pickles; ours are safetensors + JSON: the trainable weights, the
PEFT adapter, the recipe, and under ``state/`` the optimiser tensors, scheduler and loop counters
and the RNG states, enough for ``depictqa fit --resume DIR`` to continue the run exactly.

Nothing is written in place: a checkpoint is written to a hidden folder beside its final name,
flushed to disk, then renamed (an atomic step on one file system); ``last`` is a symbolic link
swapped atomically to the newest step, and ``best`` a copy swapped in the same way. A process
killed at any instant leaves every ``step-*``, ``last`` and ``best`` complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch

from depictqa.checkpoint import gather_module, gather_weights, save_objectives, save_pretrained, save_state


def optimizer_tensors(optimizer: torch.optim.Optimizer,
                      sharded: torch.nn.Module | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state as flat tensors + JSON info.

    ``sharded``: the module the optimiser's parameters belong to when FSDP shards them; the state
    is then gathered into full tensors keyed by parameter name (every rank must call this).
    """
    if sharded is not None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        sd = get_optimizer_state_dict(sharded, optimizer,
                                      options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        keys = "name"
    else:
        sd, keys = optimizer.state_dict(), "index"
    tensors = {f"state.{idx}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu()
               for idx, st in sd.get("state", {}).items() for k, v in st.items()}
    return tensors, {"param_groups": sd.get("param_groups", []), "optimizer_keys": keys}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any],
                      sharded: torch.nn.Module | None = None) -> None:
    """Inverse of :func:`optimizer_tensors` (``sharded``: as there; state saved by name is re-sharded)."""
    by_name = info.get("optimizer_keys") == "name"
    state: dict[Any, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            owner, name = key[len("state."):].rsplit(".", 1)
            state.setdefault(owner if by_name else int(owner), {})[name] = value
    sd = {"state": state, "param_groups": info["param_groups"]}
    if by_name != (sharded is not None):
        raise ValueError("this checkpoint's optimiser state was saved "
                         f"{'sharded (FSDP)' if by_name else 'unsharded'}; resume it with the same kind of strategy")
    if sharded is not None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(sharded, optimizer, sd, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(sd)


def sharded_root(trainer: L.Trainer, pl_module: L.LightningModule) -> torch.nn.Module | None:
    """The module whose parameters FSDP shards (None when nothing is sharded)."""
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    if isinstance(trainer.strategy, FSDPStrategy):
        return trainer.strategy.model  # the FSDP-wrapped LightningModule
    if isinstance(trainer.strategy, ModelParallelStrategy):
        return pl_module
    return None


class DepictQACheckpoint(L.Callback):
    """Every ``every_n_steps`` optimiser steps (and at the end) write ``dirpath/step-N`` and
    refresh ``dirpath/last``; keep the ``keep`` newest step folders."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 500, keep: int = 2,
                 monitor: str | None = None, mode: str = "max") -> None:
        self.dirpath, self.every, self.keep = Path(dirpath), every_n_steps, keep
        self.monitor, self.mode, self.best = monitor, mode, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Keep ``dirpath/best`` for the best value of ``monitor`` seen at validation."""
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is None or trainer.sanity_checking:
            return
        value = float(value)
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best = value
            target = self.save(trainer, pl_module)
            if trainer.is_global_zero:
                # A copy (the step folder may be pruned later) under its own name, then the link swapped.
                staging, copy = self.dirpath / ".best.tmp", self.dirpath / f".best-{target.name}"
                shutil.rmtree(staging, ignore_errors=True)
                shutil.copytree(target, staging)
                (staging / "best.json").write_text(f'{{"{self.monitor}": {value}, "step": {trainer.global_step}}}')
                publish(staging, copy)
                point_link(self.dirpath / "best", copy)
                for old in self.dirpath.glob(".best-step-*"):
                    if old != copy:
                        shutil.rmtree(old)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self.every and step and step % self.every == 0 and step != getattr(self, "_last_saved", None):
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != getattr(self, "_last_saved", None):
            self.save(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """SIGTERM (a scheduler's warning before the kill) and Ctrl-C keep the steps done so far.
        Other exceptions save nothing: the state they leave may be what went wrong."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)) and trainer.global_step:
            if trainer.global_step != getattr(self, "_last_saved", None):
                self.save(trainer, pl_module)

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        step = trainer.global_step
        self._last_saved = step
        target = self.dirpath / f"step-{step:07d}"
        # Collective under FSDP: every rank gathers, rank 0 writes.
        root = sharded_root(trainer, pl_module)
        weights, tensors, info, objectives = {}, {}, {}, {}
        if root is not None or trainer.is_global_zero:
            weights = gather_weights(pl_module.model, root)
            objectives = gather_module(getattr(pl_module, "objectives", torch.nn.ModuleList()), root)
            tensors, info = optimizer_tensors(trainer.optimizers[0], root)
        if trainer.is_global_zero:
            staging = self.dirpath / f".{target.name}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            save_pretrained(pl_module.model, pl_module.recipe, staging, weights=weights)
            save_objectives(staging, objectives)
            tensors["rng.torch"] = torch.get_rng_state()
            elapsed = pl_module.elapsed_seconds() if hasattr(pl_module, "elapsed_seconds") else None
            info.update(global_step=step, epoch=trainer.current_epoch, elapsed_seconds=elapsed,
                        wandb_run_id=wandb_run_id(trainer),
                        scheduler=_json_safe(trainer.lr_scheduler_configs[0].scheduler.state_dict()))
            save_state(staging, tensors, info)
            publish(staging, target)
            point_link(self.dirpath / "last", target)
            steps = sorted(self.dirpath.glob("step-*"))
            for old in steps[:-self.keep] if self.keep else []:
                if old != target:
                    retire(old)
            for junk in self.dirpath.glob(".*.old"):  # left by a process killed while deleting
                shutil.rmtree(junk, ignore_errors=True)
        trainer.strategy.barrier()
        return target


def _fsync_tree(root: Path) -> None:
    """Flush every file below ``root`` and the folders holding them to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(folder)


def _fsync_dir(folder: str | Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, target: Path) -> None:
    """Move the finished folder ``staging`` to ``target``, replacing an older ``target``, so that
    ``target`` is at every instant either the old complete folder or the new one (or, the first
    time, absent)."""
    _fsync_tree(staging)
    if target.is_symlink() or target.is_file():
        target.unlink()
    retired = _hide(target) if target.exists() else None  # a folder cannot be renamed over a full one
    os.replace(staging, target)
    _fsync_dir(target.parent)
    if retired is not None:
        shutil.rmtree(retired)


def retire(folder: Path) -> None:
    """Delete a checkpoint folder without ever leaving a visible half-deleted one."""
    shutil.rmtree(_hide(folder))


def _hide(folder: Path) -> Path:
    """Rename ``folder`` to a hidden sibling (atomic); returns the new path."""
    hidden = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(hidden, ignore_errors=True)
    os.replace(folder, hidden)
    return hidden


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` a relative symbolic link to ``target`` (a sibling), swapped atomically."""
    staging = link.with_name(f".{link.name}.tmp")
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    staging.symlink_to(target.name)
    if link.is_dir() and not link.is_symlink():  # a run written before ``last`` became a link
        shutil.rmtree(link)
    os.replace(staging, link)
    _fsync_dir(link.parent)


def wandb_run_id(trainer: L.Trainer) -> str | None:
    """The W&B run of this training (stored with each checkpoint so that ``--resume`` continues it)."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":  # no wandb import for runs that do not use it
            return str(logger.version) if logger.version else None
    return None


def _json_safe(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "lr_lambdas"}


def restore_training_state(trainer: L.Trainer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Load optimiser, scheduler, step counters and torch RNG into a freshly started trainer."""
    restore_optimizer(trainer.optimizers[0], tensors, info, sharded_root(trainer, trainer.lightning_module))
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    scheduler.load_state_dict({**scheduler.state_dict(), **info["scheduler"]})
    loop = trainer.fit_loop.epoch_loop
    step = int(info["global_step"])
    loop.automatic_optimization.optim_progress.optimizer.step.total.completed = step
    loop.automatic_optimization.optim_progress.optimizer.step.total.ready = step
    loop._batches_that_stepped = step
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])


class EpochSeeder(L.Callback):
    """Tell the data module which epoch starts, so the mixer reseeds per (seed, rank, worker, epoch)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(trainer.current_epoch)
