"""DepictQATask: the thin LightningModule around :class:`~depictqa.model.DepictQAModel`.

The answer loss plus the recipe's training objectives (:mod:`depictqa.objectives`, which live
here, not in the model), optimiser (AdamW), warmup + cosine/linear schedule, logging of loss and
answer-token accuracy, and loading of a resumed run's optimiser and loop state (see
:mod:`depictqa.callbacks`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import lightning as L
import torch
from omegaconf import DictConfig

from depictqa.batch import Batch
from depictqa.model import DepictQAModel, Output


def lr_lambda(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return min_ratio + (1 - min_ratio) * decay


def reduce_loss(out: Output, how: str) -> torch.Tensor:
    """The batch's LM loss from per-token losses. ``token``: the mean over every answer token;
    ``sample``: the mean of per-sample means; ``sqrt``: each sample's summed loss over the square
    root of its token count, normalised by the sum of those roots (between the two: a 30-token
    answer's tokens weigh 1/sqrt(30) each against 1/sqrt(2) for a one-word label's)."""
    if how == "sample":
        return out.sample_loss.mean()
    if how == "sqrt":
        root = out.sample_tokens.sqrt()
        return (out.sample_loss * root).sum() / root.sum().clamp(min=1)
    return out.loss


class DepictQATask(L.LightningModule):
    """Trains ``model`` as ``recipe`` says. ``objectives``: ``[(log name, weight, objective)]``
    (default: built from the recipe's ``objectives`` block, :func:`depictqa.build.build_objectives`)."""

    def __init__(self, model: DepictQAModel, recipe: DictConfig, resume_state: tuple | None = None,
                 objectives: Sequence[tuple[str, float, torch.nn.Module]] | None = None) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe
        if objectives is None:
            from depictqa.build import build_objectives

            objectives = build_objectives(recipe, model.llm.hidden_size)
        self.objective_names = [name for name, _, _ in objectives]
        self.objective_weights = [float(weight) for _, weight, _ in objectives]
        self.objectives = torch.nn.ModuleList([objective for _, _, objective in objectives])
        self._resume_state = resume_state
        # training seconds of the run before this process (a resumed run continues its clock)
        self.elapsed_before = float(resume_state[1].get("elapsed_seconds") or 0.0) if resume_state else 0.0
        self._clock_start: float | None = None
        self.validators: list[Any] = []  # callables (task, batch) -> dict of metrics, see depictqa.eval
        self.data_stats: dict[int, dict[str, Any]] = {}  # DataLoader worker -> its latest running counts

    def forward(self, batch: Batch) -> Any:
        return self.model(batch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        bs = batch.num_samples
        loss = reduce_loss(out, self.recipe.optim.loss_reduction)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for name, weight, objective in zip(self.objective_names, self.objective_weights, self.objectives):
            extra = objective(batch, out)
            self.log(f"train/{name}_loss", extra, batch_size=bs)
            loss = loss + weight * extra
        self.log("train/token_acc", out.correct.float() / out.tokens.clamp(min=1), batch_size=bs)
        self.log("train/answer_tokens", out.tokens.float(), reduce_fx="sum", batch_size=bs)
        if batch.info.data_stats is not None:
            self._log_data_stats(batch.info.data_stats)
        cache = self.model.feature_cache
        if cache is not None and cache.hits + cache.misses:
            self.log("data/encoder_cache_hit_rate", cache.hits / (cache.hits + cache.misses), batch_size=1)
        return loss

    def data_summary(self) -> tuple[int, dict[str, int]]:
        """(samples read, skipped by reason) on this rank, summed over its DataLoader workers."""
        skipped: dict[str, int] = {}
        for stats in self.data_stats.values():
            for reason, n in stats["skipped"].items():
                skipped[reason] = skipped.get(reason, 0) + n
        return sum(s["seen"] for s in self.data_stats.values()), skipped

    def _log_data_stats(self, stats: dict[str, Any]) -> None:
        self.data_stats[stats["worker"]] = stats
        seen, skipped = self.data_summary()
        self.log("data/seen", float(seen), batch_size=1)
        self.log("data/skipped", float(sum(skipped.values())), batch_size=1)
        for reason, n in skipped.items():
            self.log(f"data/skipped_{reason}", float(n), batch_size=1)

    def on_train_end(self) -> None:
        seen, skipped = self.data_summary()
        if skipped:
            from lightning.pytorch.utilities import rank_zero_info

            rank_zero_info(f"data: skipped {sum(skipped.values())} of {seen} samples read: {skipped}")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self.model(batch)
        bs = batch.num_samples
        self.log("val/loss", out.loss, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/token_acc", out.correct.float() / out.tokens.clamp(min=1), batch_size=bs, sync_dist=True)
        for validator in self.validators:
            for name, value in validator(self, batch).items():
                self.log(f"val/{name}", value, batch_size=bs, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Hand the validators' answer rows to a logger that shows tables (W&B)."""
        for validator in self.validators:
            rows = validator.take_rows() if hasattr(validator, "take_rows") else []
            if rows and self.trainer is not None and self.trainer.is_global_zero:
                log_answer_table(self.trainer.loggers, validator.COLUMNS, rows, self.global_step)

    def configure_optimizers(self) -> Any:
        o = self.recipe.optim
        scale = dict(o.lr_scale or {})
        components = [name for name, _ in self.model.named_children()] + ["objectives"]
        unknown = sorted(set(scale) - set(components))
        if unknown:
            raise ValueError(f"optim.lr_scale: unknown component(s) {unknown}; the model has {components}")
        groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
        named = [*self.model.named_parameters(), *(("objectives." + n, p) for n, p in self.objectives.named_parameters())]
        for name, p in named:
            if p.requires_grad:
                # Norm weights and biases are not decayed (standard transformer practice).
                key = (float(scale.get(name.split(".", 1)[0], 1.0)), p.ndim >= 2)
                groups.setdefault(key, []).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": ps, "lr": o.lr * s, "weight_decay": o.weight_decay if decay else 0.0}
             for (s, decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))],
            lr=o.lr, betas=tuple(o.betas))
        total = int(self.recipe.trainer.max_steps)
        warmup = int(o.warmup_ratio * total)
        budget = self.recipe.trainer.max_minutes
        if budget:
            # Under a wall-clock budget the run may stop long before max_steps: decay by whichever
            # of steps or time is further along, so the LR has annealed when time runs out.
            seconds = 60.0 * budget

            def factor(s: int) -> float:
                frac = max(s / max(1, total), self.elapsed_seconds() / seconds)
                return lr_lambda(int(frac * total), total, warmup, o.schedule, o.min_lr_ratio)
        else:
            def factor(s: int) -> float:
                return lr_lambda(s, total, warmup, o.schedule, o.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_model(self) -> None:
        """Compile LLM blocks when asked; fsdp2 shards here; auto/ddp turn on activation checkpointing
        here; fsdp does both itself."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        t = self.recipe.trainer
        if t.compile and not getattr(self, "_compiled", False):  # before sharding: FSDP2 wraps compiled blocks
            from depictqa.strategies import compile_llm_blocks

            compile_llm_blocks(self.model, t.compile_backend)
            self._compiled = True
        if isinstance(self.trainer.strategy, ModelParallelStrategy):
            if not getattr(self, "_sharded", False):  # fit may call this more than once
                from depictqa.strategies import shard_fsdp2

                shard_fsdp2(self.model, self.device_mesh["data_parallel"],
                            activation_checkpointing=t.activation_checkpointing)
                for objective in self.objectives:  # called by training_step directly: its own unit
                    shard_fsdp2(objective, self.device_mesh["data_parallel"])
                self._sharded = True
        elif t.activation_checkpointing and t.strategy != "fsdp":
            # HF's own checkpointing: unlike checkpoint wrappers it keeps parameter names (PEFT export).
            self.model.llm._base().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        # Lightning cannot clip by norm under FSDP1 (it raises), so train.py passes None for
        # fsdp/fsdp2 and the clipping happens here.
        if self.recipe.trainer.strategy in ("fsdp", "fsdp2"):
            if self.recipe.optim.grad_clip:
                from depictqa.strategies import clip_sharded_gradients

                clip_sharded_gradients(self.trainer, self, float(self.recipe.optim.grad_clip))
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                            gradient_clip_algorithm=gradient_clip_algorithm)

    def elapsed_seconds(self) -> float:
        """Training time of this run so far, including that of the processes it resumed from."""
        if self._clock_start is None:
            self._clock_start = time.monotonic()
        return self.elapsed_before + time.monotonic() - self._clock_start

    def on_train_start(self) -> None:
        self.elapsed_seconds()  # the clock starts with training, not when the task was built
        if self._resume_state is None:
            return
        from depictqa.callbacks import restore_training_state

        restore_training_state(self.trainer, *self._resume_state)
        self._resume_state = None


def log_answer_table(loggers: list[Any], columns: tuple[str, ...], rows: list[tuple[Any, ...]], step: int) -> None:
    """``val/answers``: one table row per answer (the images column as W&B images)."""
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":  # no wandb import for runs that do not use it
            continue
        import wandb

        data = [[wandb.Image(cell) if c == "images" else cell for c, cell in zip(columns, row)] for row in rows]
        logger.log_table(key="val/answers", columns=list(columns), data=data, step=step)
