"""Lightning strategy and precision from the recipe.

- ``auto``: one device. ``ddp``: the multi-GPU default (a 7B LoRA model fits one GPU).
- ``fsdp``: Lightning's ``FSDPStrategy`` (FSDP1), the LLM decoder layers and vision blocks as wrap
  units (from the parts' ``wrap_classes()``). FSDP1 flattens parameters per unit and needs one
  dtype per unit, so PEFT's fp32 LoRA weights on a bf16 base require ``bf16-true`` precision;
  the recipe default for fsdp is therefore ``bf16-true``.
- ``fsdp2``: Lightning's ``ModelParallelStrategy`` (per-parameter sharding, which lets bf16 base
  and fp32 LoRA weights coexist under ``bf16-mixed``); the task shards decoder layers in
  ``configure_model``.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig


def precision_for(recipe: DictConfig) -> str:
    if recipe.trainer.precision:
        return recipe.trainer.precision
    if recipe.trainer.strategy == "fsdp":
        return "bf16-true"
    on_gpu = torch.cuda.is_available() and recipe.trainer.accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def make_strategy(recipe: DictConfig, model: torch.nn.Module) -> Any:
    name = recipe.trainer.strategy
    if name in ("auto", "ddp_spawn", "deepspeed"):
        return name
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        # Frozen base weights never get gradients; the trainable set is fixed, so no unused search.
        return DDPStrategy(find_unused_parameters=False)
    wrap = set(model.llm.wrap_classes()) | set(model.encoder.wrap_classes())
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        ckpt = wrap if recipe.trainer.activation_checkpointing else None
        return FSDPStrategy(auto_wrap_policy=wrap, activation_checkpointing_policy=ckpt,
                            use_orig_params=True, state_dict_type="full")
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy(data_parallel_size="auto", tensor_parallel_size=1, save_distributed_checkpoint=False)
