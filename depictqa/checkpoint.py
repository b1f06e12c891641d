"""The checkpoint directory: what a trained model is, with nothing pickled.

::

    recipe.yaml              the resolved recipe the model was built from
    trainable.safetensors    trainable weights outside the adapter (projector, trained encoder/LLM)
    adapter/                 the LoRA adapter as a standard PEFT adapter folder (LoRA runs only), with a
                             short README saying how it is meant to be loaded
    tokenizer/               the tokenizer, when it is not the base model's own
    state/                   optimizer + loop state for ``depictqa fit --resume`` (safetensors + JSON),
                             and the training objectives' weights (``objectives.safetensors``)

Training objectives are not part of the model: an inference checkpoint does not need them, and
:func:`load_pretrained` ignores them; :func:`load_objectives` restores them for a resumed run (or
for anyone who asks).

Checkpoints written before conditioners and objectives were plug-ins load: their recipe keys are
rewritten by :func:`depictqa.config.migrate`, ``relative_stats.*`` weights become
``conditioners.0.*`` and the training-only ``distortion_head.*`` / ``lm_distortion_head.*`` are
dropped (:data:`LEGACY_PREFIXES`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from depictqa.config import flatten, load_recipe, save_recipe
from depictqa.model import DepictQAModel

RECIPE, WEIGHTS, ADAPTER, TOKENIZER, STATE = "recipe.yaml", "trainable.safetensors", "adapter", "tokenizer", "state"


class CheckpointError(ValueError):
    """A directory that is not a depictqa checkpoint."""


def _custom_tokenizer(recipe: DictConfig, tokenizer: Any = None) -> bool:
    """Whether the checkpoint must carry its tokenizer: one trained on the data, or one that is not
    the base model's own (``fit --init`` from an imported release trains with the release's)."""
    spec, path = recipe.model.llm.get("tokenizer"), recipe.model.llm.get("path")
    if isinstance(spec, DictConfig) or (spec is None and path is None):
        return True
    return tokenizer is not None and path is not None and getattr(tokenizer, "name_or_path", path) != path


# Wrapper modules FSDP1 and activation checkpointing insert into parameter names.
_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def clean_name(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


# weight-name prefixes of checkpoints from before the plug-in stages -> today's (None: dropped)
LEGACY_PREFIXES = {"relative_stats.": "conditioners.0.", "distortion_head.": None, "lm_distortion_head.": None}
OBJECTIVES = "objectives.safetensors"


def gather_module(module: torch.nn.Module, root: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of ``module``'s state dict as a full CPU tensor (plain, DDP, FSDP1 or FSDP2, as
    :func:`gather_weights`; under FSDP every rank must call it)."""
    return _gathered(lambda: dict(module.state_dict(keep_vars=True)), root)


def gather_weights(model: DepictQAModel, root: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The weights a checkpoint holds (``trainable_state_dict`` plus LoRA weights) as full CPU tensors.

    Works on a plain, DDP, FSDP1 or FSDP2 model (``root``: the module FSDP wraps or shards; FSDP1 is
    told apart by its wrapper modules, FSDP2 by its DTensor parameters). Under
    FSDP every rank must call it (it all-gathers); ranks other than 0 may get an empty dict.
    """
    def wanted() -> dict[str, torch.Tensor]:
        lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
        return {**model.trainable_state_dict(), **lora}

    return _gathered(wanted, root)


def _gathered(wanted: Any, root: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    fsdp1 = root is not None and _has_fsdp1(root)
    if fsdp1:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        # Gathers unit by unit; rank 0 gets full CPU tensors, the other ranks their shards back.
        with FSDP.summon_full_params(root, writeback=False, rank0_only=True, offload_to_cpu=True):
            if torch.distributed.get_rank() != 0:
                return {}
            return {clean_name(n): t.detach().to("cpu").clone().contiguous() for n, t in wanted().items()}
    out = {}
    for name, tensor in wanted().items():  # same order on every rank: the all-gathers pair up
        if isinstance(tensor, DTensor):
            tensor = tensor.full_tensor()
        out[clean_name(name)] = tensor.detach().to("cpu").contiguous()
    return out


def _has_fsdp1(module: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return any(isinstance(m, FSDP) for m in module.modules())


def save_pretrained(model: DepictQAModel, recipe: DictConfig, directory: str | os.PathLike,
                    weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the checkpoint layout above (without ``state/``) to ``directory``.

    ``weights``: what :func:`gather_weights` returned, for a sharded model (read from ``model``
    when omitted).
    """
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, out / RECIPE)
    if weights is None:
        weights = gather_weights(model)
    lora_prefix = "llm.model."
    lora = {k[len(lora_prefix):]: v for k, v in weights.items() if "lora_" in k and k.startswith(lora_prefix)}
    plain = {k: v for k, v in weights.items() if "lora_" not in k}
    save_file(plain, str(out / WEIGHTS), metadata={"format": "depictqa", "version": "1"})
    if getattr(model.llm, "is_lora", False):
        # PEFT picks the adapter's tensors out of the state dict it is given (full, not sharded).
        model.llm.model.save_pretrained(str(out / ADAPTER), state_dict=lora)
        from depictqa.model_card import adapter_card

        (out / ADAPTER / "README.md").write_text(adapter_card(recipe))  # not PEFT's empty template
    if _custom_tokenizer(recipe, model.tokenizer):
        model.tokenizer.save_pretrained(str(out / TOKENIZER))
    return out


def load_pretrained(directory: str | os.PathLike, device: str | torch.device | None = None,
                    overrides: list[str] | None = None, trust_remote_code: bool = False,
                    revision: str | None = None) -> DepictQAModel:
    """Rebuild the model from a checkpoint directory (safetensors and JSON only).

    ``directory``: a checkpoint folder, or the hub id ``owner/name`` of one (as ``depictqa export``
    writes it), fetched into the Hugging Face cache (``revision``: a branch, tag or commit).

    A checkpoint's recipe that asks for ``trust_remote_code`` (Python files shipped with a model
    folder) is refused unless the caller passes ``trust_remote_code=True`` (``--trust-remote-code``
    on the command line): loading a checkpoint someone handed you must not run their code."""
    ckpt = local_folder(directory, revision)
    if not (ckpt / RECIPE).is_file() or not (ckpt / WEIGHTS).is_file():
        raise CheckpointError(f"{directory} is not a depictqa checkpoint (needs {RECIPE} and {WEIGHTS})")
    extra = list(overrides or [])
    if (ckpt / TOKENIZER).is_dir():
        extra.append(f"model.llm.tokenizer={(ckpt / TOKENIZER).resolve()}")
    _check_remote_code(ckpt, trust_remote_code)
    from depictqa.config import RecipeError

    try:
        # a model trained elsewhere loads without its training shards or accelerator
        recipe = load_recipe(ckpt / RECIPE, overrides=extra, check_local=False)
    except RecipeError as err:
        raise CheckpointError(f"{ckpt / RECIPE} does not load: {err}") from None
    from depictqa.build import build_model

    model = build_model(recipe)
    load_trainable(model, ckpt)
    model.eval()
    return model.to(device) if device is not None else model


def local_folder(directory: str | os.PathLike, revision: str | None = None) -> Path:
    """``directory`` itself, or the hub checkpoint it names downloaded (:class:`CheckpointError` if neither)."""
    from depictqa.hub import checkpoint_folder

    try:
        return checkpoint_folder(directory, revision)
    except FileNotFoundError as err:
        raise CheckpointError(str(err)) from None


def _check_remote_code(ckpt: Path, trusted: bool) -> None:
    """Refuse (or, when trusted, warn about) a checkpoint recipe that turns on trust_remote_code."""
    try:
        raw = OmegaConf.to_container(OmegaConf.load(ckpt / RECIPE), resolve=False)
    except Exception as err:  # yaml raises its own types
        raise CheckpointError(f"{ckpt / RECIPE} is not valid YAML ({type(err).__name__})") from None
    flat = flatten(raw)
    where = [k for k, v in flat.items() if k.split(".")[-1] == "trust_remote_code" and v not in (False, None, "false")]
    if not where:
        return
    if not trusted:
        raise CheckpointError(f"{ckpt / RECIPE} sets {', '.join(where)}: loading it would run Python code shipped with "
                              "its model folder; pass trust_remote_code=True (--trust-remote-code) only if you trust it")
    import warnings

    paths = [str(v) for k, v in flat.items() if k.endswith(".path") and isinstance(v, str)]
    warnings.warn(f"{ckpt}: running remote code as its recipe asks ({', '.join(where)}; code: "
                  f"{', '.join(_remote_code_files(paths)) or 'none found in ' + (', '.join(paths) or 'any named folder')})",
                  UserWarning, stacklevel=3)


def _remote_code_files(folders: list[str]) -> list[str]:
    """The Python files a model folder's ``config.json`` ``auto_map`` points at."""
    files = []
    for folder in folders:
        config = Path(folder) / "config.json"
        try:
            auto_map = json.loads(config.read_text()).get("auto_map", {}) if config.is_file() else {}
        except ValueError:
            continue
        for ref in auto_map.values():
            for item in ref if isinstance(ref, list) else [ref]:
                if isinstance(item, str) and "." in item:
                    files.append(str(Path(folder) / (item.split("--")[-1].rsplit(".", 1)[0] + ".py")))
    return sorted(set(files))


def load_trainable(model: DepictQAModel, ckpt: Path) -> None:
    weights = _renamed(_read_safetensors(ckpt / WEIGHTS))
    missing = set(model.trainable_state_dict()) - set(weights) - _lora_names(model)
    if missing:
        raise CheckpointError(f"{ckpt}: {WEIGHTS} lacks {len(missing)} trainable tensor(s), e.g. {sorted(missing)[0]}")
    model.load_state_dict(weights, strict=False)
    if (ckpt / ADAPTER).is_dir():
        from peft import set_peft_model_state_dict

        adapter = ckpt / ADAPTER / "adapter_model.safetensors"
        if not adapter.is_file():
            raise CheckpointError(f"{ckpt / ADAPTER} has no adapter_model.safetensors")
        result = set_peft_model_state_dict(model.llm.model, _read_safetensors(adapter))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise CheckpointError(f"{adapter}: adapter keys do not fit the model, e.g. {unexpected[0]}")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or :class:`CheckpointError` naming it when it is cut short or not one."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types (and OSError)
        raise CheckpointError(f"{path} is damaged or not a safetensors file ({type(err).__name__}: {err})") from None


def fingerprint(directory: str | os.PathLike) -> str:
    """A short hash of a checkpoint's weights (``trainable.safetensors`` and the adapter), to tell
    two checkpoints apart whatever their folder is called."""
    import hashlib

    digest = hashlib.blake2b(digest_size=12)
    for path in (Path(directory) / WEIGHTS, Path(directory) / ADAPTER / "adapter_model.safetensors"):
        if path.is_file():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _renamed(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of an older checkpoint under today's names (:data:`LEGACY_PREFIXES`)."""
    out = {}
    for name, tensor in weights.items():
        old = next((p for p in LEGACY_PREFIXES if name.startswith(p)), None)
        if old is None:
            out[name] = tensor
        elif LEGACY_PREFIXES[old] is not None:
            out[LEGACY_PREFIXES[old] + name[len(old):]] = tensor
    return out


def save_objectives(directory: str | os.PathLike, weights: dict[str, torch.Tensor]) -> None:
    """The training objectives' weights under ``state/`` (nothing when there are none)."""
    from safetensors.torch import save_file

    if weights:
        state = Path(directory) / STATE
        state.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in weights.items()}, str(state / OBJECTIVES))


def load_objectives(objectives: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Restore the objectives saved by :func:`save_objectives` (strict: a recipe whose objectives
    differ from the checkpoint's is refused, naming a tensor)."""
    path = Path(directory) / STATE / OBJECTIVES
    wanted = objectives.state_dict()
    if not wanted:
        return
    if not path.is_file():
        raise CheckpointError(f"{directory}: the recipe has training objectives but the checkpoint holds none "
                              f"({STATE}/{OBJECTIVES})")
    got = _read_safetensors(path)
    missing, extra = sorted(set(wanted) - set(got)), sorted(set(got) - set(wanted))
    shapes = sorted(k for k in set(wanted) & set(got) if wanted[k].shape != got[k].shape)
    if missing or extra or shapes:
        problem = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra else
                   f"{shapes[0]} is {tuple(got[shapes[0]].shape)}, the recipe's {tuple(wanted[shapes[0]].shape)}")
        raise CheckpointError(f"{path} does not fit the recipe's objectives: {problem}")
    objectives.load_state_dict(got)


def _lora_names(model: DepictQAModel) -> set[str]:
    return {n for n, _ in model.named_parameters() if "lora_" in n}


def save_state(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = Path(directory) / STATE
    state.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(state / "optimizer.safetensors"))
    (state / "trainer.json").write_text(json.dumps(info, indent=1))


def load_state(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = Path(directory) / STATE
    if not (state / "trainer.json").is_file():
        raise CheckpointError(f"{directory} holds no training state to resume from ({STATE}/trainer.json)")
    try:
        info = json.loads((state / "trainer.json").read_text())
    except ValueError:
        raise CheckpointError(f"{state / 'trainer.json'} is damaged (not JSON)") from None
    return _read_safetensors(state / "optimizer.safetensors"), info


def check_complete(directory: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` unless ``directory`` holds a whole resumable checkpoint (every
    file present and readable); the message names the newest complete checkpoint beside it."""
    ckpt = Path(directory)
    problem = _damage(ckpt)
    if problem is None:
        return
    siblings = sorted((p for p in ckpt.resolve().parent.glob("step-*") if p.resolve() != ckpt.resolve()), reverse=True)
    good = next((p for p in siblings if _damage(p) is None), None)
    hint = f"; the newest complete checkpoint beside it is {good}" if good else ""
    raise CheckpointError(f"{directory} cannot be resumed: {problem}{hint}")


def _damage(ckpt: Path) -> str | None:
    """What is missing or unreadable in a resumable checkpoint, or None."""
    from safetensors import safe_open

    if not ckpt.is_dir():
        return "no such folder"
    for name in (RECIPE, WEIGHTS, f"{STATE}/trainer.json", f"{STATE}/optimizer.safetensors"):
        path = ckpt / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            if name.endswith(".safetensors"):
                with safe_open(str(path), "pt") as f:
                    list(f.keys())
            elif name.endswith(".json"):
                json.loads(path.read_text())
            else:
                OmegaConf.load(path)
        except Exception as err:  # safetensors, json and yaml raise their own types
            return f"{name} is damaged ({type(err).__name__})"
    return None


def recipe_of(directory: str | os.PathLike) -> DictConfig:
    path = local_folder(directory) / RECIPE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a depictqa checkpoint (no {RECIPE})")
    return OmegaConf.load(path)
