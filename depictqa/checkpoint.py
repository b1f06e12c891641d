"""The checkpoint directory: what a trained model is, with nothing pickled.

::

    recipe.yaml              the resolved recipe the model was built from
    trainable.safetensors    trainable weights outside the adapter (projector, trained encoder/LLM)
    adapter/                 the LoRA adapter as a standard PEFT adapter folder (LoRA runs only)
    tokenizer/               the tokenizer, when it is not the base model's own
    state/                   optimizer + loop state for ``depictqa fit --resume`` (safetensors + JSON)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from depictqa.config import load_recipe, save_recipe
from depictqa.model import DepictQAModel

RECIPE, WEIGHTS, ADAPTER, TOKENIZER, STATE = "recipe.yaml", "trainable.safetensors", "adapter", "tokenizer", "state"


class CheckpointError(ValueError):
    """A directory that is not a depictqa checkpoint."""


def _custom_tokenizer(recipe: DictConfig) -> bool:
    spec = recipe.model.llm.get("tokenizer")
    return isinstance(spec, DictConfig) or (spec is None and recipe.model.llm.get("path") is None)


def save_pretrained(model: DepictQAModel, recipe: DictConfig, directory: str | os.PathLike) -> Path:
    """Write the checkpoint layout above (without ``state/``) to ``directory``."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, out / RECIPE)
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.trainable_state_dict().items()}
    save_file(weights, str(out / WEIGHTS), metadata={"format": "depictqa", "version": "1"})
    if getattr(model.llm, "is_lora", False):
        model.llm.model.save_pretrained(str(out / ADAPTER))
    if _custom_tokenizer(recipe):
        model.tokenizer.save_pretrained(str(out / TOKENIZER))
    return out


def load_pretrained(directory: str | os.PathLike, device: str | torch.device | None = None,
                    overrides: list[str] | None = None) -> DepictQAModel:
    """Rebuild the model from a checkpoint directory (safetensors and JSON only)."""
    ckpt = Path(directory)
    if not (ckpt / RECIPE).is_file() or not (ckpt / WEIGHTS).is_file():
        raise CheckpointError(f"{directory} is not a depictqa checkpoint (needs {RECIPE} and {WEIGHTS})")
    extra = list(overrides or [])
    if (ckpt / TOKENIZER).is_dir():
        extra.append(f"model.llm.tokenizer={(ckpt / TOKENIZER).resolve()}")
    recipe = load_recipe(ckpt / RECIPE, overrides=extra)
    from depictqa.build import build_model

    model = build_model(recipe)
    load_trainable(model, ckpt)
    model.eval()
    return model.to(device) if device is not None else model


def load_trainable(model: DepictQAModel, ckpt: Path) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(ckpt / WEIGHTS))
    missing = set(model.trainable_state_dict()) - set(weights) - _lora_names(model)
    if missing:
        raise CheckpointError(f"{ckpt}: {WEIGHTS} lacks {len(missing)} trainable tensor(s), e.g. {sorted(missing)[0]}")
    model.load_state_dict(weights, strict=False)
    if (ckpt / ADAPTER).is_dir():
        from peft import set_peft_model_state_dict

        adapter = ckpt / ADAPTER / "adapter_model.safetensors"
        if not adapter.is_file():
            raise CheckpointError(f"{ckpt / ADAPTER} has no adapter_model.safetensors")
        result = set_peft_model_state_dict(model.llm.model, load_file(str(adapter)))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise CheckpointError(f"{adapter}: adapter keys do not fit the model, e.g. {unexpected[0]}")


def _lora_names(model: DepictQAModel) -> set[str]:
    return {n for n, _ in model.named_parameters() if "lora_" in n}


def save_state(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = Path(directory) / STATE
    state.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(state / "optimizer.safetensors"))
    (state / "trainer.json").write_text(json.dumps(info, indent=1))


def load_state(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load_file

    state = Path(directory) / STATE
    if not (state / "trainer.json").is_file():
        raise CheckpointError(f"{directory} holds no training state to resume from ({STATE}/trainer.json)")
    return load_file(str(state / "optimizer.safetensors")), json.loads((state / "trainer.json").read_text())


def recipe_of(directory: str | os.PathLike) -> DictConfig:
    path = Path(directory) / RECIPE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a depictqa checkpoint (no {RECIPE})")
    return OmegaConf.load(path)
