"""Checkpointing in the DESIGN.md layout, with resumable state that needs no pickle.

Lightning's own checkpoints are pickles; ours are safetensors + JSON: the trainable weights, the
PEFT adapter, the recipe, and under ``state/`` the optimiser tensors, scheduler and loop counters
and the RNG states, enough for ``depictqa fit --resume DIR`` to continue the run exactly.
"""

from __future__ import annotations

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
                best = self.dirpath / "best"
                if best.exists():
                    shutil.rmtree(best)
                shutil.copytree(target, best)
                (best / "best.json").write_text(f'{{"{self.monitor}": {value}, "step": {trainer.global_step}}}')

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self.every and step and step % self.every == 0 and step != getattr(self, "_last_saved", None):
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
            save_pretrained(pl_module.model, pl_module.recipe, target, weights=weights)
            save_objectives(target, objectives)
            tensors["rng.torch"] = torch.get_rng_state()
            info.update(global_step=step, epoch=trainer.current_epoch,
                        scheduler=_json_safe(trainer.lr_scheduler_configs[0].scheduler.state_dict()))
            save_state(target, tensors, info)
            last = self.dirpath / "last"
            if last.exists():
                shutil.rmtree(last)
            shutil.copytree(target, last)
            steps = sorted(self.dirpath.glob("step-*"))
            for old in steps[:-self.keep] if self.keep else []:
                shutil.rmtree(old)
        trainer.strategy.barrier()
        return target


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
